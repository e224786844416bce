"""The geodns command as a user runs it: a real process, real signals, dig where installed."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest

from tests.conftest import OTHER_ZONE, REPO
from tests.dnsserver import write

ZONE = "gslb.example.com."


def geodns(*args, timeout=30):
    return subprocess.run(
        [sys.executable, "-m", "geodns", *args], capture_output=True, text=True, timeout=timeout, cwd=REPO
    )


class Proc:
    """`geodns serve` in a child process; the DNS and HTTP ports are read from its log."""

    def __init__(self, *args):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "geodns", "serve", "--dns-listen", "127.0.0.1:0", *args],
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        self.lines: list[str] = []
        self.port = None
        self.http_port = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.lines.append(line)
            m = re.search(r"transport=udp\+tcp address=127\.0\.0\.1:(\d+)", line)
            if m:
                self.port = int(m.group(1))
            m = re.search(r"transport=http address=127\.0\.0\.1:(\d+)", line)
            if m:
                self.http_port = int(m.group(1))
            if "event=started" in line:
                return
        self.stop()
        raise AssertionError("geodns serve did not start:\n" + "".join(self.lines))

    def ask(self, name, rdtype="A"):
        return dns.query.udp(dns.message.make_query(name, rdtype), "127.0.0.1", port=self.port, timeout=3)

    def read_until(self, needle: str, timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            self.lines.append(line)
            if needle in line:
                return line
        raise AssertionError(f"{needle!r} not logged:\n" + "".join(self.lines))

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise
        return self.proc.returncode


def test_serve_embedded_defaults_and_clean_sigterm():
    proc = Proc("--http-listen", "127.0.0.1:0")
    try:
        resp = proc.ask("www." + ZONE)
        assert {r.to_text() for r in resp.answer[0]} == {"192.0.2.80"}
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{proc.http_port}/healthz", timeout=3) as r:
            assert r.status == 200
    finally:
        assert proc.stop() == 0
    assert any("event=stopping" in line for line in proc.lines + [proc.proc.stderr.read()])


def test_sigint_also_stops_cleanly(tmp_path):
    zone = write(tmp_path / "other.test.zone", OTHER_ZONE)
    proc = Proc("--zone", str(zone), "--http-listen", "off")
    assert proc.http_port is None
    proc.proc.send_signal(signal.SIGINT)
    assert proc.proc.wait(10) == 0


def test_sighup_reloads_and_a_broken_zone_keeps_the_old_one(tmp_path):
    zone = write(tmp_path / "other.test.zone", OTHER_ZONE)
    proc = Proc("--zone", str(zone), "--http-listen", "off")
    try:
        assert {r.to_text() for r in proc.ask("www.other.test.").answer[0]} == {"198.51.100.80"}
        write(zone, OTHER_ZONE.replace("198.51.100.80", "198.51.100.81"))
        proc.proc.send_signal(signal.SIGHUP)
        proc.read_until("event=reloaded")
        assert {r.to_text() for r in proc.ask("www.other.test.").answer[0]} == {"198.51.100.81"}
        write(zone, OTHER_ZONE + "bad IN A 300.1.2.3\n")
        proc.proc.send_signal(signal.SIGHUP)
        line = proc.read_until("event=reload-rejected")
        assert f"{zone}:7:" in line and "300.1.2.3" in line
        proc.read_until("event=reload-failed")
        assert {r.to_text() for r in proc.ask("www.other.test.").answer[0]} == {"198.51.100.81"}
    finally:
        assert proc.stop() == 0


def test_serve_refuses_to_start_on_a_broken_zone(tmp_path):
    zone = write(tmp_path / "broken.zone", OTHER_ZONE + "www IN CNAME elsewhere.\n")
    result = geodns("serve", "--zone", str(zone), "--dns-listen", "127.0.0.1:0", "--http-listen", "off")
    assert result.returncode == 2
    assert f"{zone}:7:" in result.stderr


def test_validate_ok_and_every_error_with_its_line(tmp_path):
    for shipped in ("config/geodns.yaml", "config/demo.yaml"):
        good = geodns("validate", "--config", shipped)
        assert good.returncode == 0, good.stdout + good.stderr
        assert "gslb.example.com." in good.stdout
    zone = write(tmp_path / "bad.zone", OTHER_ZONE + "x IN A 1.2.3\ny IN AAA ::1\nz IN MX mail\n")
    bad = geodns("validate", "--zone", str(zone))
    assert bad.returncode == 1
    lines = bad.stdout.strip().splitlines()
    assert [line.split(": ", 1)[0] for line in lines] == [f"{zone}:7", f"{zone}:8", f"{zone}:9"]


@pytest.mark.parametrize(
    "text, line, words",
    [
        ('server:\n  dns_listen: ["127.0.0.1:5353"\nzones: []\n', 3, "did not find expected ',' or ']'"),
        ('server:\n  nsid: "x\n', 3, "quoted scalar"),
        ("a: b\n c: d\n", 2, "mapping values are not allowed"),
    ],
)
def test_validate_yaml_syntax_errors_name_the_line(tmp_path, text, line, words):
    config = write(tmp_path / "geodns.yaml", text)
    result = geodns("validate", "--config", str(config))
    assert result.returncode == 1
    assert result.stdout.startswith(f"{config}:{line}: YAML syntax: ") and words in result.stdout


def test_validate_config_errors_name_file_line_and_key(tmp_path):
    config = write(
        tmp_path / "geodns.yaml",
        """
server:
  dns_listen: ["127.0.0.1:99999"]
regions:
  eu: {lat: 53, lon: -6, continent: EU}
clusters:
  a: {region: mars, endpoints: ["192.0.2.1"]}
records:
  app.gslb.example.com: {clusters: [a, b], policy: [geo, telepathy]}
geoip:
  unlocated: atlantis
""",
    )
    result = geodns("validate", "--config", str(config))
    assert result.returncode == 1
    out = result.stdout
    assert f"{config}:3: server.dns_listen[0]:" in out
    assert f"{config}:7: clusters.a.region: unknown region 'mars'" in out
    assert f"{config}:9: records.app.gslb.example.com.clusters[1]: unknown cluster 'b'" in out
    assert "telepathy" in out
    assert f"{config}:11: geoip.unlocated: unknown region 'atlantis' (not under regions)" in out


@pytest.mark.skipif(shutil.which("dig") is None, reason="dig is not installed (apt-get install bind9-dnsutils)")
def test_dig_end_to_end():
    proc = Proc("--http-listen", "off")
    try:
        out = subprocess.run(
            ["dig", "@127.0.0.1", "-p", str(proc.port), "www." + ZONE, "A", "+norec"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
        assert "status: NOERROR" in out
        assert re.search(r"flags: qr aa;", out)
        assert re.search(r"www\.gslb\.example\.com\.\s+300\s+IN\s+A\s+192\.0\.2\.80", out)
        nx = subprocess.run(
            ["dig", "@127.0.0.1", "-p", str(proc.port), "nope." + ZONE, "+nsid"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
        assert "status: NXDOMAIN" in nx and "SOA" in nx and "NSID: " in nx
        tc = subprocess.run(
            ["dig", "@127.0.0.1", "-p", str(proc.port), ZONE, "NS", "+tcp"], capture_output=True, text=True, timeout=10
        ).stdout
        assert "ns1.gslb.example.com." in tc
    finally:
        proc.stop()


def test_readme_configuration_example_is_valid():
    """The README's 'every key' example must stay a config geodns accepts."""
    from geodns.config.load import config_from_text

    text = (REPO / "README.md").read_text()
    section = text[text.index("## Configuration") :]
    block = section[section.index("```yaml") + len("```yaml") :]
    block = block[: block.index("```")]
    config = config_from_text(block, "README.md", REPO / "config")
    assert config.records and config.clusters["eu-west-1"].endpoints[1].probe == "127.0.0.1:18082"


def test_sighup_reopens_the_geoip_database_as_geoipupdate_replaces_it(tmp_path):
    """geoipupdate writes a new file and renames it over the old one; a reload must take it, and a
    download that does not open must be refused with the running database kept (README, deploying)."""
    import json
    import urllib.request

    data = REPO / "tests" / "data" / "geo"
    database = tmp_path / "GeoLite2-City.mmdb"
    shutil.copy(data / "GeoIP2-City-Test.mmdb", database)
    shipped = (REPO / "config" / "geodns.yaml").read_text()
    config = tmp_path / "geodns.yaml"
    config.write_text(
        shipped.replace("geoip/GeoIP2-City-Test.mmdb", str(database))
        .replace("../zones/", str(REPO / "zones") + "/")
        .replace('"127.0.0.1:8053"', '"127.0.0.1:0"')
    )

    def located(proc: Proc) -> str | None:
        url = f"http://127.0.0.1:{proc.http_port}/api/v1/explain?name=app.gslb.example.com&client=214.0.0.1"
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())["client"]["location"]["country"]

    def replace_with(source: Path) -> None:
        fresh = tmp_path / "download.tmp"
        shutil.copy(source, fresh)
        os.replace(fresh, database)

    proc = Proc("--config", str(config))
    try:
        assert located(proc) == "SG"  # 214.0.0.0/24 is Singapore in this file
        replace_with(data / "GeoIP2-City-Test-Invalid-Node-Count.mmdb")
        proc.proc.send_signal(signal.SIGHUP)
        line = proc.read_until("event=reload-rejected")
        assert str(database) in line
        assert located(proc) == "SG"  # the running database stays
        replace_with(data / "GeoIP2-Country-Test.mmdb")  # a file without that network
        proc.proc.send_signal(signal.SIGHUP)
        proc.read_until("event=reloaded")
        assert located(proc) is None
    finally:
        assert proc.stop() == 0
