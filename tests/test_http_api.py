"""The admin API over real HTTP against a running server: reads, writes that move DNS answers, errors, auth."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from geodns.http.auth import is_loopback
from geodns.process.server import Settings
from tests.dnsserver import RunningServer, write
from tests.redis_server import RedisServer
from tests.test_gslb_dns import LONDON, SG, US, addresses, ask, config_text

EU, USE, AP = "198.51.100.10", "192.0.2.10", "203.0.113.10"


# -- helpers shared by the other HTTP test modules ------------------------------------------------
def start_server(tmp_path: Path, server: str = "", **kw) -> RunningServer:
    """The GSLB test config (three clusters, MaxMind test DB) with HTTP on a free port."""
    text = config_text(tmp_path, **kw).replace("http_listen: null", f'http_listen: "127.0.0.1:0"{server}')
    return RunningServer(Settings(config_path=write(tmp_path / "geodns.yaml", text)))


def base_url(running: RunningServer) -> str:
    host, port = running.server.http.addresses[0][:2]
    return f"http://{host}:{port}"


def http(
    running: RunningServer,
    method: str,
    path: str,
    body=None,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
):
    """(status, JSON or text) for one real HTTP request."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    h = dict(headers or {})
    if data is not None:
        h.setdefault("Content-Type", "application/json")
    if token:
        h["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(base_url(running) + path, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            status, payload, ctype = resp.status, resp.read(), resp.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        status, payload, ctype = exc.code, exc.read(), exc.headers.get("Content-Type", "")
    text = payload.decode()
    return status, json.loads(text) if "json" in ctype else text


@pytest.fixture(scope="module")
def api_server(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("api"))
    yield server
    server.stop()


# -- health ----------------------------------------------------------------------------------------
def test_healthz_and_readyz(api_server):
    assert http(api_server, "GET", "/healthz") == (200, "ok\n")
    assert http(api_server, "GET", "/readyz") == (200, "ok\n")
    assert http(api_server, "GET", "/readyz", headers={"Accept": "application/json"}) == (
        200,
        {"ready": True, "reason": "ok"},
    )


def test_store_down_means_not_ready_and_writes_get_503(tmp_path):
    redis = RedisServer(tmp_path / "redis")  # never started: the store is unreachable
    server = start_server(tmp_path, ", ready_max_staleness: 1s", store=f"redis://127.0.0.1:{redis.port}/0")
    try:
        status, reason = http(server, "GET", "/readyz")
        assert status == 503 and "state store unreachable" in reason and "snapshot version 0" in reason
        assert addresses(ask(server, SG)) == {AP}  # fail static: still answering from the config
        status, body = http(server, "POST", "/api/v1/clusters/eu-west-1/drain")
        assert status == 503 and "store unavailable" in body["error"]
        assert http(server, "GET", "/api/v1/status")[1]["store"]["connected"] is False
    finally:
        server.stop()


# -- reads -----------------------------------------------------------------------------------------
def test_clusters_list_endpoints_weights_and_states(api_server):
    status, body = http(api_server, "GET", "/api/v1/clusters")
    assert status == 200
    clusters = {c["name"]: c for c in body["clusters"]}
    assert set(clusters) == {"us-east-1", "eu-west-1", "ap-southeast-1"}
    eu = clusters["eu-west-1"]
    assert eu["region"] == "eu-west" and eu["weight"] == 100 and eu["admin"] == "active" and eu["state"] == "up"
    assert [e["address"] for e in eu["endpoints"]] == [EU, "2001:db8:1::10"]
    assert {e["state"] for e in eu["endpoints"]} == {"unknown"}  # no checker has judged them yet
    assert eu["records"] == ["app.gslb.example.com"]
    status, one = http(api_server, "GET", "/api/v1/clusters/eu-west-1")
    assert status == 200 and one["name"] == "eu-west-1" and one["version"] == body["version"]


def test_unknown_cluster_is_404_json(api_server):
    assert http(api_server, "GET", "/api/v1/clusters/nope") == (404, {"error": "unknown cluster 'nope'"})
    status, body = http(api_server, "POST", "/api/v1/clusters/nope/drain")
    assert status == 404 and body == {"error": "unknown cluster 'nope'"}
    status, body = http(api_server, "GET", "/api/v1/no-such-thing")
    assert status == 404 and "error" in body


def test_explain_traces_each_filter(api_server):
    status, body = http(api_server, "GET", f"/api/v1/explain?name=app.gslb.example.com&client={LONDON}/32")
    assert status == 200
    assert body["client"]["location"]["country"] == "GB" and body["client"]["ecs_source"] == 32
    steps = {s["filter"]: s for s in body["steps"]}
    assert list(steps) == ["healthy", "geo", "weighted"]
    assert steps["geo"]["in"] == ["us-east-1", "eu-west-1", "ap-southeast-1"] and steps["geo"]["out"] == ["eu-west-1"]
    assert steps["geo"]["dropped"] == ["us-east-1", "ap-southeast-1"]
    assert steps["geo"]["why"] == "country GB matches region eu-west" and steps["healthy"]["why"] == "all up"
    assert body["answer"] == [EU] and body["clusters"] == ["eu-west-1"] and body["type"] == "A"
    assert body["candidates"]["eu-west-1"]["state"] == "up"
    status, body = http(api_server, "GET", f"/api/v1/explain?name=app.gslb.example.com.&type=AAAA&client={US}")
    assert status == 200 and body["answer"] == ["2001:db8::10"] and body["client"]["ecs_source"] is None


@pytest.mark.parametrize(
    "query, status, words",
    [
        ("name=www.gslb.example.com&client=1.2.3.4", 404, "not a GSLB record"),
        ("name=app.gslb.example.com", 400, "client"),
        ("name=app.gslb.example.com&client=not-an-ip", 400, "IP address"),
        ("name=app.gslb.example.com&client=1.2.3.4/33", 400, "prefix"),
        ("name=app.gslb.example.com&client=1.2.3.4&type=MX", 400, "A or AAAA"),
    ],
)
def test_explain_errors(api_server, query, status, words):
    got, body = http(api_server, "GET", f"/api/v1/explain?{query}")
    assert got == status and words in body["error"]


def test_traffic_says_where_each_place_goes(api_server):
    status, body = http(api_server, "GET", "/api/v1/traffic")
    assert status == 200
    rows = {p["place"]: p for p in body["records"][0]["places"]}
    assert rows["London"]["shares"] == {"eu-west-1": 1.0}
    assert rows["Singapore"]["primary"] == "ap-southeast-1" and rows["New York"]["primary"] == "us-east-1"
    assert rows["London"]["aaaa"] == {"shares": {"eu-west-1": 1.0}, "primary": "eu-west-1", "fallback": False}
    assert rows["Singapore"]["aaaa"]["shares"] == {} and rows["Singapore"]["why_aaaa"] is None  # no IPv6: NODATA
    london_geo = next(s for s in rows["London"]["why"] if s["filter"] == "geo")
    assert london_geo["out"] == ["eu-west-1"] and london_geo["why"] == "country GB matches region eu-west"


def test_traffic_shares_are_the_exact_weights(tmp_path):
    """Without geo every place gets the weighted split; the shares are exact, not sampled."""
    running = start_server(tmp_path, policy="[healthy, weighted]")
    try:
        assert http(running, "PUT", "/api/v1/clusters/us-east-1/weight", {"weight": 300})[0] == 200
        rows = {p["place"]: p for p in http(running, "GET", "/api/v1/traffic")[1]["records"][0]["places"]}
        for place in ("London", "Tokyo", "us-east (region)"):
            assert rows[place]["shares"] == {"us-east-1": 0.6, "eu-west-1": 0.2, "ap-southeast-1": 0.2}
    finally:
        running.stop()


# -- writes move DNS answers -----------------------------------------------------------------------
def test_drain_and_undrain_move_answers_at_once(api_server):
    assert addresses(ask(api_server, LONDON, 32)) == {EU}
    status, body = http(api_server, "POST", "/api/v1/clusters/eu-west-1/drain")
    assert status == 200 and body["admin"] == "drained" and body["state"] == "drained"
    try:
        assert addresses(ask(api_server, LONDON, 32)) == {USE}  # no waiting: the write waited for the keeper
    finally:
        status, body = http(api_server, "POST", "/api/v1/clusters/eu-west-1/undrain")
    assert status == 200 and body["admin"] == "active"
    assert addresses(ask(api_server, LONDON, 32)) == {EU}


def test_endpoint_drain_force_down_and_weight(api_server):
    status, body = http(api_server, "POST", f"/api/v1/clusters/eu-west-1/force-down?endpoint={EU}")
    assert status == 200 and body["admin"] == "active"
    assert {e["address"]: e["admin"] for e in body["endpoints"]}[EU] == "forced-down"
    try:
        assert EU not in addresses(ask(api_server, LONDON, 32))
    finally:
        assert http(api_server, "POST", "/api/v1/clusters/eu-west-1/undrain", {"endpoint": EU})[0] == 200
    status, body = http(api_server, "PUT", "/api/v1/clusters/us-east-1/weight", {"weight": 7})
    assert status == 200 and body["weight"] == 7
    status, body = http(api_server, "PUT", "/api/v1/clusters/us-east-1/weight", {"weight": 3, "endpoint": USE})
    assert status == 200 and {e["address"]: e["weight"] for e in body["endpoints"]}[USE] == 3
    assert http(api_server, "PUT", "/api/v1/clusters/us-east-1/weight", {"weight": 100})[0] == 200


@pytest.mark.parametrize(
    "method, path, body, status, words",
    [
        ("PUT", "/api/v1/clusters/us-east-1/weight", {"weight": -1}, 400, "between 0 and 1000000"),
        ("PUT", "/api/v1/clusters/us-east-1/weight", {"weight": "heavy"}, 400, "integer"),
        ("PUT", "/api/v1/clusters/us-east-1/weight", {}, 400, "weight"),
        ("PUT", "/api/v1/clusters/us-east-1/weight", {"weight": 1, "endpoint": "192.0.2.99"}, 404, "no endpoint"),
        ("POST", "/api/v1/clusters/us-east-1/drain", {"endpoint": "nonsense"}, 400, "not an IP address"),
        ("POST", "/api/v1/clusters/us-east-1/endpoints", {"address": "192.0.2.10"}, 409, "already has"),
        ("POST", "/api/v1/clusters/us-east-1/endpoints", {"address": "x"}, 400, "not an IP address"),
        ("DELETE", "/api/v1/clusters/us-east-1/endpoints/192.0.2.99", None, 404, "no endpoint"),
        (
            "POST",
            "/api/v1/clusters",
            {"name": "x", "region": "mars", "endpoints": ["192.0.2.1"]},
            400,
            "unknown region",
        ),
        (
            "POST",
            "/api/v1/clusters",
            {"name": "us-east-1", "region": "us-east", "endpoints": ["192.0.2.1"]},
            409,
            "already exists",
        ),
        ("POST", "/api/v1/clusters", {"name": "x", "region": "us-east", "endpoints": []}, 400, "endpoints"),
        ("DELETE", "/api/v1/clusters/nope", None, 404, "unknown cluster"),
    ],
)
def test_write_errors_are_json_with_the_right_status(api_server, method, path, body, status, words):
    got, reply = http(api_server, method, path, body)
    assert got == status, reply
    assert words in reply["error"]


def test_bad_json_body_is_400(api_server):
    status, body = http(api_server, "PUT", "/api/v1/clusters/us-east-1/weight", raw=b"{weight: 5")
    assert status == 400 and "not valid JSON" in body["error"]
    status, body = http(api_server, "PUT", "/api/v1/clusters/us-east-1/weight", raw=b"[5]")
    assert status == 400 and "JSON object" in body["error"]


def test_register_and_remove_endpoints_and_clusters(api_server):
    status, body = http(
        api_server, "POST", "/api/v1/clusters/ap-southeast-1/endpoints", {"address": "203.0.113.11", "weight": 50}
    )
    assert status == 201 and "203.0.113.11" in [e["address"] for e in body["endpoints"]]
    seen = set()
    for _ in range(40):
        seen |= addresses(ask(api_server, SG))
    assert seen == {AP, "203.0.113.11"}  # endpoints are weighted too (100:50)
    status, body = http(api_server, "DELETE", "/api/v1/clusters/ap-southeast-1/endpoints?address=203.0.113.11")
    assert status == 200 and [e["address"] for e in body["endpoints"]] == [AP]
    assert {a for _ in range(10) for a in addresses(ask(api_server, SG))} == {AP}

    status, body = http(
        api_server,
        "POST",
        "/api/v1/clusters",
        {
            "name": "us-east-2",
            "region": "us-east",
            "endpoints": ["192.0.2.20", {"address": "192.0.2.21"}],
            "weight": 10,
        },
    )
    assert status == 201 and body["name"] == "us-east-2" and body["records"] == []
    assert "us-east-2" in [c["name"] for c in http(api_server, "GET", "/api/v1/clusters")[1]["clusters"]]
    status, body = http(api_server, "DELETE", "/api/v1/clusters/us-east-2")
    assert status == 200 and body["removed"] == "us-east-2"
    assert http(api_server, "GET", "/api/v1/clusters/us-east-2")[0] == 404


# -- reload ---------------------------------------------------------------------------------------
def test_reload_rejects_a_broken_config_and_keeps_answering(tmp_path):
    server = start_server(tmp_path)
    config = tmp_path / "geodns.yaml"
    good = config.read_text()
    try:
        assert http(server, "POST", "/api/v1/reload")[0] == 200
        config.write_text(good.replace("ttl: 30", "ttl: thirty").replace("ap-southeast-1]", "ap-southeast-9]"))
        status, body = http(server, "POST", "/api/v1/reload")
        assert status == 422 and "running config stays" in body["error"]
        assert any(f"{config}:" in p and "records.app.gslb.example.com.ttl" in p for p in body["problems"])
        assert any("unknown cluster 'ap-southeast-9'" in p for p in body["problems"])
        assert body["reloads"] == {"ok": 1, "failed": 1}
        assert addresses(ask(server, SG)) == {AP} and addresses(ask(server, LONDON, 32)) == {EU}
        config.write_text(good)
        status, body = http(server, "POST", "/api/v1/reload")
        assert status == 200 and body["reloaded"] is True and body["records"] == ["app.gslb.example.com"]
    finally:
        server.stop()


# -- who may do what ---------------------------------------------------------------------------------
def test_token_rules(tmp_path, monkeypatch):
    server = start_server(tmp_path, ', admin_token: "s3cret"')
    try:
        assert http(server, "GET", "/api/v1/clusters")[0] == 200  # reads: open on loopback
        status, body = http(server, "POST", "/api/v1/clusters/eu-west-1/drain")
        assert status == 401 and "Bearer" in body["error"]
        status, body = http(server, "POST", "/api/v1/clusters/eu-west-1/drain", token="wrong")
        assert status == 403 and "does not match" in body["error"]
        status, body = http(server, "POST", "/api/v1/clusters/eu-west-1/drain", token="s3cret")
        assert status == 200 and body["admin"] == "drained"
        assert http(server, "POST", "/api/v1/clusters/eu-west-1/undrain", token="s3cret")[0] == 200
        assert http(server, "POST", "/api/v1/reload")[0] == 401
        assert http(server, "GET", "/metrics")[0] == 200  # metrics stay open
    finally:
        server.stop()


def test_env_token_and_loopback_only_without_one(api_server, monkeypatch):
    # No token configured: loopback writes go through, but not from a page on another site
    # (Origin) or under a name that is not this machine (Host, as in DNS rebinding).
    assert http(api_server, "POST", "/api/v1/clusters/us-east-1/undrain")[0] == 200
    status, body = http(
        api_server, "POST", "/api/v1/clusters/us-east-1/drain", headers={"Origin": "http://evil.example"}
    )
    assert status == 403 and "loopback" in body["error"]
    status, body = http(api_server, "GET", "/api/v1/clusters", headers={"Host": "rebind.evil.example:8053"})
    assert status == 403
    assert http(api_server, "GET", "/metrics", headers={"Host": "rebind.evil.example:8053"})[0] == 200
    monkeypatch.setenv("GEODNS_ADMIN_TOKEN", "from-env")
    assert http(api_server, "POST", "/api/v1/clusters/us-east-1/undrain")[0] == 401
    assert http(api_server, "POST", "/api/v1/clusters/us-east-1/undrain", token="from-env")[0] == 200


@pytest.mark.parametrize(
    "address, loopback",
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("10.0.0.1", False),
        ("192.0.2.1", False),
        ("2001:db8::1", False),
        (None, False),
        ("", False),
        ("bogus", False),
    ],
)
def test_what_counts_as_loopback(address, loopback):
    assert is_loopback(address) is loopback
