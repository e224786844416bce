"""Hostile or broken admin API bodies get a 4xx with a JSON reason, never a 500, and change nothing.

Before, a non-UTF-8 body and a 30,000-deep JSON body were 500s with a traceback,
``weight: 10**400`` was stored (and then ``/metrics`` answered 500), and 60 kB
cluster names and probe strings were accepted.  The API now checks bodies with
the config's own converters.  A real server, real HTTP.
"""

from __future__ import annotations

import json

import pytest

from tests.test_http_api import http, start_server

HUGE = 10**400
BIG = "x" * 60_000
DEEP = b"[" * 30_000 + b"]" * 30_000


@pytest.fixture(scope="module")
def api_server(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("api-input"))
    yield server
    server.stop()


def table(server) -> dict:
    """Cluster name -> (weight, priority, min_healthy, endpoints with weight and probe)."""
    status, body = http(server, "GET", "/api/v1/clusters")
    assert status == 200
    return {
        c["name"]: (
            c["weight"],
            c["priority"],
            c["min_healthy"],
            [(e["address"], e["weight"], e["probe"]) for e in c["endpoints"]],
        )
        for c in body["clusters"]
    }


WEIGHT = "/api/v1/clusters/us-east-1/weight"
NEW = {"name": "us-east-2", "region": "us-east", "endpoints": ["192.0.2.20"]}


@pytest.mark.parametrize(
    "method, path, raw, status, words",
    [
        ("PUT", WEIGHT, b'{"weight": 5, "endpoint": "\xff\xfe"}', 400, "not UTF-8"),
        ("POST", "/api/v1/clusters/us-east-1/drain", b"\xc3\x28", 400, "not UTF-8"),
        ("PUT", WEIGHT, DEEP, 400, "nested deeper"),
        ("PUT", WEIGHT, b'{"weight": ' + DEEP + b"}", 400, "nested deeper"),
        (
            "POST",
            "/api/v1/clusters",
            b'{"name": "a", "x": ' + b'{"y":' * 9_000 + b"1" + b"}" * 9_001,
            400,
            "nested deeper",
        ),
        ("PUT", WEIGHT, b'{"weight": ' + b"[" * 900 + b"1" + b"]" * 900 + b"}", 400, "nested deeper than 8"),
        ("PUT", WEIGHT, json.dumps({"weight": 1, "pad": "y" * 70_000}).encode(), 413, "larger than 65536 bytes"),
        ("PUT", WEIGHT, json.dumps({"weight": HUGE}).encode(), 400, '"weight" must be between 0 and 1000000'),
        ("POST", "/api/v1/clusters", json.dumps({**NEW, "name": BIG}).encode(), 400, '"name" must be 1-63 letters'),
        ("POST", "/api/v1/clusters", json.dumps({**NEW, "name": "us east/2"}).encode(), 400, "must be 1-63 letters"),
        ("POST", "/api/v1/clusters", json.dumps({**NEW, "weight": HUGE}).encode(), 400, "between 0 and 1000000"),
        ("POST", "/api/v1/clusters", json.dumps({**NEW, "priority": 2_000_000}).encode(), 400, '"priority" must be'),
        ("POST", "/api/v1/clusters", json.dumps({**NEW, "min_healthy": HUGE}).encode(), 400, '"min_healthy" must be'),
        (
            "POST",
            "/api/v1/clusters",
            json.dumps({**NEW, "endpoints": [{"address": "192.0.2.20", "weight": HUGE}]}).encode(),
            400,
            'endpoints[0]: "weight" must be between 0 and 1000000',
        ),
        (
            "POST",
            "/api/v1/clusters/us-east-1/endpoints",
            json.dumps({"address": "192.0.2.99", "probe": BIG}).encode(),
            400,
            '"probe" must be at most 2048 characters',
        ),
        (
            "POST",
            "/api/v1/clusters/us-east-1/endpoints",
            json.dumps({"address": "192.0.2.99", "weight": HUGE}).encode(),
            400,
            '"weight" must be between 0 and 1000000',
        ),
    ],
)
def test_bad_bodies_are_refused_with_a_json_reason(api_server, method, path, raw, status, words):
    before = table(api_server)
    got, body = http(api_server, method, path, raw=raw)
    assert got == status, body
    assert isinstance(body, dict) and words in body["error"], body
    assert table(api_server) == before  # nothing was changed
    metrics_status, metrics = http(api_server, "GET", "/metrics")
    assert metrics_status == 200 and "geodns_" in metrics


def test_the_bounds_are_the_configs(api_server):
    """Weight 1,000,000 and a 63-character name go in; one more of either does not."""
    name = "c" * 63
    try:
        status, body = http(api_server, "PUT", WEIGHT, {"weight": 1_000_001})
        assert status == 400 and "between 0 and 1000000, not 1000001" in body["error"]
        status, body = http(api_server, "PUT", WEIGHT, {"weight": 1_000_000})
        assert status == 200 and body["weight"] == 1_000_000
        status, body = http(api_server, "POST", "/api/v1/clusters", {**NEW, "name": name + "c"})
        assert status == 400 and "1-63 letters" in body["error"]
        status, body = http(api_server, "POST", "/api/v1/clusters", {**NEW, "name": name, "priority": 1_000_000})
        assert status == 201 and body["name"] == name and body["priority"] == 1_000_000
        assert http(api_server, "GET", "/metrics")[0] == 200
    finally:
        http(api_server, "PUT", WEIGHT, {"weight": 100})
        http(api_server, "DELETE", f"/api/v1/clusters/{name}")


def test_the_config_checks_names_and_probes_alike(tmp_path):
    """The converters the API uses are the config's: a config with the same values is refused, by line."""
    from geodns.config.load import config_from_text
    from geodns.errors import ConfigError

    text = (
        "regions:\n  eu: {lat: 53.3, lon: -6.3, continent: EU}\n"
        "clusters:\n"
        f'  {"c" * 64}: {{region: eu, endpoints: ["192.0.2.1"]}}\n'
        f'  ok-1: {{region: eu, endpoints: [{{address: "192.0.2.2", probe: "{"p" * 2049}"}}]}}\n'
    )
    with pytest.raises(ConfigError) as info:
        config_from_text(text, "geodns.yaml", tmp_path)
    found = [str(p) for p in info.value.problems]
    assert found[0].startswith(f"geodns.yaml:4: clusters.{'c' * 64}: bad name: must be 1-63 letters")
    assert found[1] == "geodns.yaml:5: clusters.ok-1.endpoints[0].probe: must be at most 2048 characters, not 2049"
    assert len(found) == 2


def test_a_body_cut_off_midway_is_no_internal_error(api_server, caplog):
    """A client that promises 100 bytes, sends 12 and hangs up made a 500 and a traceback in the log."""
    import logging
    import socket

    from tests.test_http_api import base_url

    host, port = base_url(api_server).rsplit("/", 1)[1].rsplit(":", 1)
    caplog.set_level(logging.INFO, logger="geodns")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"PUT /api/v1/clusters/us-east-1/weight HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"weight": 1'
        )
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(65536):  # until the server has closed it
            pass
    status, body = http(api_server, "GET", "/api/v1/clusters/us-east-1")
    assert status == 200 and body["weight"] == 100
    assert not [r for r in caplog.records if "http-error" in r.getMessage()]


def test_a_body_of_exactly_the_limit_is_read(api_server):
    body = json.dumps({"weight": 100, "endpoint": "192.0.2.10"}).encode()
    padded = body[:-1] + b" " * (65536 - len(body)) + b"}"
    assert len(padded) == 65536
    status, reply = http(api_server, "PUT", WEIGHT, raw=padded)
    assert status == 200, reply
    status, reply = http(api_server, "PUT", WEIGHT, raw=padded[:-1] + b" }")
    assert status == 413 and "larger than 65536 bytes" in reply["error"]


@pytest.mark.parametrize(
    "encoding, raw",
    [
        ("gzip", b'{"weight": 7}'),  # says gzip, is not
        ("deflate", b"\x78\x9c garbage"),
    ],
)
def test_a_body_that_does_not_decode_as_its_content_encoding_is_a_400(api_server, caplog, encoding, raw):
    """``Content-Encoding: gzip`` on a body that is not gzip made a 500 and a traceback in the log."""
    import logging

    caplog.set_level(logging.INFO, logger="geodns")
    before = table(api_server)
    status, body = http(api_server, "PUT", WEIGHT, raw=raw, headers={"Content-Encoding": encoding})
    assert status == 400, body
    assert isinstance(body, dict) and "could not be read" in body["error"], body
    assert table(api_server) == before
    assert not [r for r in caplog.records if "http-error" in r.getMessage()]


def test_a_gzip_body_is_read(api_server):
    """The fix must not refuse a well-formed compressed body."""
    import gzip

    status, body = http(
        api_server, "PUT", WEIGHT, raw=gzip.compress(b'{"weight": 100}'), headers={"Content-Encoding": "gzip"}
    )
    assert status == 200 and body["weight"] == 100, body
