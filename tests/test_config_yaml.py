"""The config is YAML 1.2 core: no yes/no/on/off booleans, no octal by leading zero, no sexagesimal.

Under PyYAML's YAML 1.1 rules ``countries: [NO, SE]`` read Norway as False,
``ttl: 010`` served TTL 8, ``ttl: 1:30`` served TTL 90 and ``nsid: off`` sent
the NSID "False"; ``.inf``/``.nan`` passed the number checks.  These tests
run the real loader, a real server and the ``geodns validate`` command.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dns.edns
import dns.message
import dns.query

from geodns.config.load import load_config
from geodns.process.server import Settings
from tests.conftest import REPO
from tests.dnsserver import RunningServer, write
from tests.test_gslb_dns import APP, config_text


def validate(config: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "geodns", "validate", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )


def yaml_config(tmp_path: Path, record_extra: str = "", server_extra: str = "", nordic: bool = False) -> Path:
    """The GSLB test config with some keys written as an operator might (and Norway, Sweden in eu-west)."""
    text = (
        config_text(tmp_path)
        .replace("http_listen: null}", f"http_listen: null{server_extra}}}")
        .replace("    ttl: 30\n", record_extra)
    )
    if nordic:
        text = text.replace("countries: [GB, IE]", "countries: [GB, IE, NO, SE]")
    return write(tmp_path / "geodns.yaml", text)


def test_norway_off_and_a_leading_zero_mean_what_they_say(tmp_path):
    config_path = yaml_config(tmp_path, record_extra="    ttl: 010\n", server_extra=", nsid: off", nordic=True)
    config = load_config(config_path)
    assert config.regions["eu-west"].countries == ("GB", "IE", "NO", "SE")
    assert config.server.nsid == b"off"
    record = next(iter(config.records.values()))
    assert record.ttl == 10
    result = validate(config_path)
    assert result.returncode == 0, result.stdout + result.stderr

    server = RunningServer(Settings(config_path=config_path))
    try:
        query = dns.message.make_query(APP, "A", use_edns=0, options=[dns.edns.GenericOption(dns.edns.NSID, b"")])
        resp = dns.query.udp(query, server.host, port=server.port, timeout=3)
        assert resp.answer and resp.answer[0].ttl == 10
        assert [o.to_wire() for o in resp.options if o.otype == dns.edns.NSID] == [b"off"]
    finally:
        server.stop()


def test_true_and_false_are_the_only_booleans(tmp_path):
    config_path = yaml_config(tmp_path, server_extra=", debug_txt: yes, query_log: {enabled: on}")
    result = validate(config_path)
    assert result.returncode == 1
    assert f"{config_path}:2: server.debug_txt: must be true or false, not 'yes'" in result.stdout
    assert f"{config_path}:2: server.query_log.enabled: must be true or false, not 'on'" in result.stdout
    assert load_config(yaml_config(tmp_path, server_extra=", debug_txt: True")).server.debug_txt is True
    off = write(
        tmp_path / "off.yaml",
        config_path.read_text()
        .replace("http_listen: null", "http_listen: off")
        .replace("debug_txt: yes, query_log: {enabled: on}", "debug_txt: false"),
    )
    assert load_config(off).server.http_listen is None  # as `serve --http-listen off` says


def test_sexagesimal_and_non_finite_numbers_are_rejected_by_key(tmp_path):
    config_path = yaml_config(
        tmp_path,
        record_extra="    ttl: 1:30\n    latency_tolerance: {pct: .inf, ms: .nan}\n",
        server_extra=", tcp_idle_timeout: .inf",
    )
    result = validate(config_path)
    assert result.returncode == 1
    out = result.stdout
    lines = config_path.read_text().splitlines()
    ttl_line = next(i for i, line in enumerate(lines, 1) if "ttl: 1:30" in line)
    record = "records.app.gslb.example.com"
    assert f"{config_path}:{ttl_line}: {record}.ttl: must be an integer between 0 and 86400, not '1:30'" in out
    assert f"{config_path}:{ttl_line + 1}: {record}.latency_tolerance.pct: must be a finite number >= 0, not inf" in out
    assert f"{config_path}:{ttl_line + 1}: {record}.latency_tolerance.ms: must be a finite number >= 0, not nan" in out
    assert f"{config_path}:2: server.tcp_idle_timeout: must be a finite duration" in out


def test_bases_and_exponents_of_yaml_1_2(tmp_path):
    config = load_config(
        yaml_config(tmp_path, record_extra="    ttl: 0x1e\n    answers: 0o2\n", server_extra=", udp_payload: +1232")
    )
    record = next(iter(config.records.values()))
    assert (record.ttl, record.answers, config.server.udp_payload) == (30, 2, 1232)
    result = validate(yaml_config(tmp_path, record_extra="    ttl: 1e3\n"))
    assert result.returncode == 1 and "records.app.gslb.example.com.ttl: must be an integer" in result.stdout
