"""Check options in the config: defaults keep the old behaviour, every problem is reported with its key path."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from geodns.config.checks import status_ranges
from geodns.config.load import config_from_text
from geodns.config.model import CheckSpec
from geodns.errors import ConfigError
from geodns.state import codec
from geodns.state.model import Cluster, Endpoint


def config(check: str, tmp_path: Path):
    text = f"""\
regions:
  eu-west: {{lat: 53.3, lon: -6.3, continent: EU}}
clusters:
  eu-west-1:
    region: eu-west
    endpoints: ["192.0.2.10"]
    check: {check}
"""
    return config_from_text(text, "geodns.yaml", tmp_path)


def problems(check: str, tmp_path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        config(check, tmp_path)
    return [str(p) for p in info.value.problems]


def test_defaults_keep_the_old_behaviour(tmp_path: Path) -> None:
    spec = (
        config("{type: http, url: 'http://127.0.0.1:18081/healthz', interval: 2s, timeout: 1s}", tmp_path)
        .clusters["eu-west-1"]
        .check
    )
    assert spec == CheckSpec(url="http://127.0.0.1:18081/healthz", interval=2.0, timeout=1.0)
    assert (spec.method, spec.expect_status, spec.body, spec.tls_verify, spec.ca_file, spec.jitter) == (
        "GET",
        ((200, 399),),
        None,
        True,
        None,
        0.1,
    )


def test_every_option(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("not checked at load\n")
    spec = (
        config(
            """
      type: https
      port: 8443
      path: /ready
      host: app.example.com
      method: head
      expect_status: [200, "2xx", "300-302"]
      body: healthy
      ca_file: ca.pem
      rise: 3
      fall: 1
      jitter: 0.5
""",
            tmp_path,
        )
        .clusters["eu-west-1"]
        .check
    )
    assert spec == CheckSpec(
        type="https",
        port=8443,
        path="/ready",
        host="app.example.com",
        method="HEAD",
        expect_status=((200, 200), (200, 299), (300, 302)),
        body="healthy",
        ca_file=str(tmp_path / "ca.pem"),
        rise=3,
        fall=1,
        jitter=0.5,
    )
    tcp = config('{type: tcp, port: 6379, send: "PING\\r\\n", expect: PONG}', tmp_path).clusters["eu-west-1"].check
    assert (tcp.type, tcp.port, tcp.send, tcp.expect) == ("tcp", 6379, "PING\r\n", "PONG")
    assert config("{type: tcp, url: 'tcp://127.0.0.1:6000'}", tmp_path).clusters["eu-west-1"].check.port is None


def test_every_problem_is_reported_with_line_and_key_path(tmp_path: Path) -> None:
    found = problems(
        """
      type: http
      url: ftp://x/
      method: "GET /"
      expect_status: [200, "600", "3xx-4xx"]
      tls_verify: "no"
      ca_file: missing.pem
      send: hello
      jitter: 2
      path: healthz
""",
        tmp_path,
    )
    text = "\n".join(found)
    for expected in (
        "geodns.yaml:9: clusters.eu-west-1.check.url: 'ftp://x/': a http check URL looks like",
        "check.method: must be an HTTP method",
        "check.expect_status: '600': status codes are 100-599",
        "check.tls_verify: must be true or false",
        "check.ca_file: ",
        "is not a readable file",
        "check.send: applies to tcp checks only",
        "check.jitter: must be between 0.0 and 1.0",
        "check.path: must be a path starting with '/'",
    ):
        assert expected in text, (expected, found)
    assert len(found) == 8, found


def test_tcp_and_tls_combinations(tmp_path: Path) -> None:
    found = problems("{type: tcp, body: x, host: a.example}", tmp_path)
    assert any("check.body: applies to http and https checks, not tcp" in p for p in found)
    assert any("check.host: applies to http and https checks, not tcp" in p for p in found)
    assert any("check: a tcp check needs port (or url: tcp://HOST:PORT)" in p for p in found)
    assert problems("{type: tcp, url: 'tcp://127.0.0.1'}", tmp_path) == [
        "geodns.yaml:7: clusters.eu-west-1.check.url: 'tcp://127.0.0.1': a tcp URL needs a port"
    ]
    (tmp_path / "ca.pem").write_text("x")
    assert any(
        "check.ca_file: has no effect with tls_verify: false" in p
        for p in problems("{type: https, tls_verify: false, ca_file: ca.pem}", tmp_path)
    )


def test_status_ranges() -> None:
    assert status_ranges(204) == ((204, 204),)
    assert status_ranges(["2xx", " 301 - 302 ", "404"]) == ((200, 299), (301, 302), (404, 404))
    assert status_ranges([[200, 204]]) == ((200, 204),)
    for bad in ([], True, "abc", "399-300", [[1, 2, 3]], 99):
        with pytest.raises(ValueError):
            status_ranges(bad)


def test_spec_survives_the_stores_json() -> None:
    spec = CheckSpec(
        type="https",
        expect_status=[200, "300-302"],
        body="ok",
        tls_verify=False,
        jitter=0.3,
        send=None,
        host="app.example.com",
    )
    cluster = Cluster(name="c", region="r", endpoints=(Endpoint(ipaddress.ip_address("192.0.2.1")),), check=spec)
    again = codec.load_cluster(codec.dump_cluster(cluster), "c")
    assert again == cluster and hash(again.check) == hash(spec)


@pytest.mark.parametrize(
    "text, default, expected",
    [
        ("127.0.0.1:53", None, ("127.0.0.1", "53")),
        ("[2001:db8::1]:53", None, ("2001:db8::1", "53")),
        ("[2001:db8::1]", 26379, ("2001:db8::1", "26379")),
        ("[2001:db8::1]", None, ("2001:db8::1", "")),
        ("[2001:db8::1]x", None, ("2001:db8::1", "")),
        ("sentinel-1", 26379, ("sentinel-1", "26379")),
        ("sentinel-1", None, ("sentinel-1", "")),
        ("app.example.com:8443", None, ("app.example.com", "8443")),
    ],
)
def test_split_host_port_is_one_rule_for_every_address(text, default, expected):
    from geodns.config.values import split_host_port

    assert split_host_port(text, default) == expected
