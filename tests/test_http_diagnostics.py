"""Operator diagnostics outside the API: the opt-in TXT debug record, sampled query logs, structured log lines."""

from __future__ import annotations

import io
import json
import logging

import dns.edns
import dns.message
import dns.query
import dns.rcode
import pytest

from geodns import logs
from geodns.config.load import load_config
from geodns.errors import ConfigError
from tests.dnsserver import write
from tests.test_gslb_dns import LONDON, ask, config_text, scope
from tests.test_http_api import start_server

DEBUG_NAME = "_geodns.app.gslb.example.com."


def debug_query(server, name=DEBUG_NAME, rdtype="TXT", subnet=LONDON, prefix=32):
    q = dns.message.make_query(name, rdtype, use_edns=0, options=[dns.edns.ECSOption(subnet, prefix)])
    return dns.query.udp(q, server.host, port=server.port, timeout=3)


def txt_lines(response) -> list[str]:
    return sorted(b"".join(r.strings).decode() for rr in response.answer for r in rr)


def test_debug_txt_describes_the_decision_for_the_asker(tmp_path):
    server = start_server(tmp_path, ", debug_txt: true")
    try:
        response = debug_query(server)
        assert response.rcode() == dns.rcode.NOERROR and response.answer[0].ttl == 0
        lines = txt_lines(response)
        assert lines[0] == f"01 client ecs {LONDON}/32 located GB/EU via geoip prefix /31"
        assert lines[1] == (
            "02 healthy: in us-east-1,eu-west-1,ap-southeast-1 out us-east-1,eu-west-1,ap-southeast-1 (all up)"
        )
        assert lines[2] == (
            "03 geo: in us-east-1,eu-west-1,ap-southeast-1 out eu-west-1 "
            "dropped us-east-1,ap-southeast-1 (country GB matches region eu-west)"
        )
        assert lines[3].startswith("04 weighted: in eu-west-1 out eu-west-1 (one candidate")
        assert lines[4] == "05 answer A 198.51.100.10 AAAA 2001:db8:1::10 clusters eu-west-1"
        version = server.server.keeper.snapshot.version
        assert lines[5] == f"06 snapshot version {version} record app.gslb.example.com. scope /31"
        assert scope(response) == 32  # about this very client: the whole source prefix
        singapore = txt_lines(debug_query(server, "_GeoDNS.App.gslb.example.com.", subnet="214.0.0.0", prefix=24))
        assert "clusters ap-southeast-1" in singapore[4]
        nodata = debug_query(server, rdtype="A")
        assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer and nodata.authority
    finally:
        server.stop()


def test_debug_txt_is_off_by_default(tmp_path):
    server = start_server(tmp_path)
    try:
        assert debug_query(server).rcode() == dns.rcode.NXDOMAIN
    finally:
        server.stop()


def test_query_log_samples_at_info_when_enabled(tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="geodns.querylog")
    (tmp_path / "on").mkdir()
    (tmp_path / "off").mkdir()
    on = start_server(tmp_path / "on", ", query_log: {enabled: true, sample: 1.0}")
    off = start_server(tmp_path / "off")
    try:
        ask(off, LONDON, 32)
        assert not [r for r in caplog.records if r.name == "geodns.querylog"]
        ask(on, LONDON, 32)
        records = [r for r in caplog.records if r.name == "geodns.querylog"]
        assert len(records) == 1 and records[0].levelno == logging.INFO
        pairs = logs.parse_pairs(records[0].getMessage())
        assert pairs["event"] == "query" and pairs["client"] == "127.0.0.1" and pairs["ecs"] == f"{LONDON}/32"
        assert (pairs["qname"], pairs["qtype"], pairs["rcode"]) == ("app.gslb.example.com.", "A", "NOERROR")
        assert pairs["transport"] == "udp" and pairs["clusters"] == "eu-west-1" and int(pairs["us"]) >= 0
    finally:
        on.stop()
        off.stop()


@pytest.mark.parametrize(
    "server, problem",
    [
        ("debug_txt: 1", "server.debug_txt: must be true or false, not 1"),
        ("query_log: {enabled: true, sample: 2}", "server.query_log.sample: must be between 0.0 and 1.0, not 2"),
        ("query_log: {enabled: true, rate: 0.5}", "server.query_log.rate: unknown key"),
        ("query_log: true", "server.query_log: must be a mapping"),
        ("ready_max_staleness: soon", "server.ready_max_staleness: 'soon' is not a duration"),
    ],
)
def test_new_server_keys_are_validated_with_their_path(tmp_path, server, problem):
    text = config_text(tmp_path).replace("http_listen: null", f"http_listen: null, {server}")
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path / "geodns.yaml", text))
    assert any(
        problem in str(p) and str(p).startswith(f"{tmp_path / 'geodns.yaml'}:2:") for p in info.value.problems
    ), [str(p) for p in info.value.problems]


def test_new_server_keys_load(tmp_path):
    text = config_text(tmp_path).replace(
        "http_listen: null", "http_listen: null, debug_txt: true, query_log: {enabled: true}, ready_max_staleness: 2m"
    )
    server = load_config(write(tmp_path / "geodns.yaml", text)).server
    assert server.debug_txt is True and server.query_log.enabled and server.query_log.sample == 0.01
    assert server.ready_max_staleness == 120.0


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    touched = ("geodns.dns", "geodns.server", "asyncio", "aiohttp.access")
    levels = {name: logging.getLogger(name).level for name in touched}
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    for name, lvl in levels.items():
        logging.getLogger(name).setLevel(lvl)


def test_levels_per_component_and_key_value_lines(restore_logging):
    out = io.StringIO()
    logs.setup("warning", [logs.parse_component_level("geodns.dns=debug")], "kv", stream=out)
    logging.getLogger("geodns.dns").debug("event=udp-error client=%s", "192.0.2.1")
    logging.getLogger("geodns.server").info("event=started zones=x")  # below warning: dropped
    logging.getLogger("geodns.server").warning("event=seed-deferred reason=%r", "store down")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert (
        lines[0].startswith("ts=") and "level=DEBUG component=geodns.dns event=udp-error client=192.0.2.1" in lines[0]
    )
    assert "level=WARNING component=geodns.server event=seed-deferred reason='store down'" in lines[1]


def test_json_lines_carry_the_pairs_as_fields(restore_logging):
    out = io.StringIO()
    logs.setup("info", (), "json", stream=out)
    logging.getLogger("geodns.server").info("event=reload-rejected problem=%r", "a.yaml:3: ttl: must be an integer")
    logging.getLogger("geodns.server").info("plain words, no pairs")
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["component"] == "geodns.server" and first["level"] == "INFO" and first["event"] == "reload-rejected"
    assert first["problem"] == "a.yaml:3: ttl: must be an integer"
    assert second["msg"] == "plain words, no pairs"


@pytest.mark.parametrize("text", ["geodns.dns", "=debug", "geodns.dns=loud"])
def test_bad_component_levels_are_refused(text):
    with pytest.raises(ValueError, match="COMPONENT=LEVEL"):
        logs.parse_component_level(text)
