"""GSLB answers end to end: ECS clients from several countries, drains, Redis shared and lost."""

from __future__ import annotations

import time
from pathlib import Path

import dns.edns
import dns.message
import dns.query
import dns.rcode
import pytest

from geodns.config.load import load_config
from geodns.errors import ConfigError
from geodns.process.server import Settings
from geodns.state.model import AdminState, Observation
from geodns.state.redis import RedisStore
from tests.dnsserver import GEOIP_TEST_DB, GSLB_ZONE, RunningServer, write
from tests.redis_server import RedisServer

APP = "app.gslb.example.com."
SG, LONDON, US = "214.0.0.0", "81.2.69.142", "216.160.83.56"

ZONE = (
    GSLB_ZONE
    + """\
app  IN TXT "served by geodns"
www  IN CNAME app
"""
)


def config_text(
    tmp_path: Path,
    store: str = "memory://",
    policy: str = "[healthy, geo, weighted]",
    fallback: str = "all",
    extra: str = "",
    unlocated: str | None = None,
) -> str:
    return f"""
server: {{dns_listen: ["127.0.0.1:0"], http_listen: null}}
store: "{store}"
zones: ["{write(tmp_path / "gslb.example.com.zone", ZONE)}"]
geoip:
  database: "{GEOIP_TEST_DB}"
  networks: [{{cidr: "10.20.0.0/16", region: eu-west}}]
  unlocated: {unlocated or "null"}
regions:
  us-east:      {{lat: 39.0, lon: -77.5, continent: NA, countries: [US, CA]}}
  eu-west:      {{lat: 53.3, lon: -6.3,  continent: EU, countries: [GB, IE]}}
  ap-southeast: {{lat: 1.35, lon: 103.8, continent: AS, countries: [SG]}}
clusters:
  us-east-1:      {{region: us-east, endpoints: ["192.0.2.10", "2001:db8::10"]}}
  eu-west-1:      {{region: eu-west, endpoints: ["198.51.100.10", "2001:db8:1::10"]}}
  ap-southeast-1: {{region: ap-southeast, endpoints: ["203.0.113.10"]}}
records:
  app.gslb.example.com:
    ttl: 30
    clusters: [us-east-1, eu-west-1, ap-southeast-1]
    policy: {policy}
    fallback: {fallback}
{extra}"""


def start(tmp_path: Path, **kw) -> RunningServer:
    return RunningServer(Settings(config_path=write(tmp_path / "geodns.yaml", config_text(tmp_path, **kw))))


def ask(server, subnet: str | None, prefix: int = 24, rdtype: str = "A", name: str = APP):
    options = [dns.edns.ECSOption(subnet, prefix)] if subnet else None
    q = dns.message.make_query(name, rdtype, use_edns=0, options=options)
    return dns.query.udp(q, server.host, port=server.port, timeout=3)


def addresses(resp) -> set[str]:
    return {r.to_text() for rr in resp.answer for r in rr if rr.rdtype in (1, 28)}


def scope(resp) -> int | None:
    for option in resp.options:
        if isinstance(option, dns.edns.ECSOption):
            return option.scopelen
    return None


@pytest.fixture
def server(tmp_path):
    s = start(tmp_path)
    yield s
    s.stop()


def test_each_place_gets_its_region(server):
    sg = ask(server, SG)
    assert addresses(sg) == {"203.0.113.10"}
    assert scope(sg) == 24 and sg.answer[0].ttl == 30
    london = ask(server, LONDON, 32)
    assert addresses(london) == {"198.51.100.10"}
    assert scope(london) == 31  # the GeoIP network, not the /32 we sent
    assert addresses(ask(server, US, 29)) == {"192.0.2.10"}
    assert addresses(ask(server, "10.20.30.0")) == {"198.51.100.10"}  # the operator's CIDR map


def test_families_and_other_types(server):
    assert addresses(ask(server, LONDON, 32, "AAAA")) == {"2001:db8:1::10"}
    sg6 = ask(server, SG, rdtype="AAAA")  # ap-southeast has no IPv6: NODATA, not NXDOMAIN
    assert sg6.rcode() == dns.rcode.NOERROR and sg6.answer == [] and sg6.authority
    txt = ask(server, SG, rdtype="TXT")  # other types come from the zone file
    assert {r.to_text() for r in txt.answer[0]} == {'"served by geodns"'}
    via_cname = ask(server, SG, name="www.gslb.example.com.")
    assert addresses(via_cname) == {"203.0.113.10"}


def test_unknown_client_gets_an_answer(server):
    resp = ask(server, "8.8.8.0")
    assert len(addresses(resp)) == 1
    no_ecs = dns.query.udp(dns.message.make_query(APP, "A"), server.host, port=server.port, timeout=3)
    assert len(addresses(no_ecs)) == 1  # 127.0.0.1 is nowhere: any cluster, never nothing


def test_unknown_clients_go_where_geoip_unlocated_says(tmp_path):
    """``geoip.unlocated: us-east``: every client the database does not place, with ECS or
    without (127.0.0.1 is nowhere too), gets us-east's answer, query after query."""
    server = start(tmp_path, unlocated="us-east")
    try:
        for subnet in ["8.8.8.0", "198.18.7.0", None] * 8:
            assert addresses(ask(server, subnet)) == {"192.0.2.10"}, subnet
        assert addresses(ask(server, SG)) == {"203.0.113.10"}  # a located client is where it is
    finally:
        server.stop()


def test_drain_moves_singapore_to_the_next_nearest(server):
    server.call(server.server.store.set_admin("ap-southeast-1", AdminState.DRAINED))
    deadline = time.monotonic() + 1.0
    while addresses(ask(server, SG)) != {"198.51.100.10"} and time.monotonic() < deadline:
        time.sleep(0.02)
    assert addresses(ask(server, SG)) == {"198.51.100.10"}  # eu-west is nearer to SG than us-east
    assert addresses(ask(server, LONDON, 32)) == {"198.51.100.10"}
    server.call(server.server.store.set_admin("ap-southeast-1", AdminState.ACTIVE))
    deadline = time.monotonic() + 1.0
    while addresses(ask(server, SG)) != {"203.0.113.10"} and time.monotonic() < deadline:
        time.sleep(0.02)
    assert addresses(ask(server, SG)) == {"203.0.113.10"}


@pytest.mark.parametrize(
    "fallback,expected",
    [
        ("all", {"192.0.2.10", "198.51.100.10", "203.0.113.10"}),
        ("none", set()),
        ("eu-west-1", {"198.51.100.10"}),
    ],
)
def test_fallback_when_nothing_is_healthy(tmp_path, fallback, expected):
    server = start(tmp_path, fallback=fallback)
    try:
        now = time.time()
        down = [
            Observation("checker-1", "eu-west", cluster, address, False, None, now, now + 60)
            for cluster, address in (
                ("us-east-1", "192.0.2.10"),
                ("us-east-1", "2001:db8::10"),
                ("eu-west-1", "198.51.100.10"),
                ("eu-west-1", "2001:db8:1::10"),
                ("ap-southeast-1", "203.0.113.10"),
            )
        ]
        server.call(server.server.store.report(down))
        deadline = time.monotonic() + 1.0
        while server.server.engine.responder.counters.fallbacks == 0 and time.monotonic() < deadline:
            ask(server, SG)
            time.sleep(0.02)
        resp = ask(server, SG)
        assert resp.rcode() == dns.rcode.NOERROR
        assert addresses(resp) == expected
        assert server.server.engine.responder.counters.fallbacks > 0
    finally:
        server.stop()


def test_weighted_spreads_by_weight(tmp_path):
    server = start(tmp_path, policy="[healthy, weighted]")
    try:
        server.call(server.server.store.set_weight("us-east-1", 0))
        server.call(server.server.store.set_weight("ap-southeast-1", 300))
        time.sleep(0.2)
        seen: dict[str, int] = {}
        for _ in range(400):
            for a in addresses(ask(server, SG)):
                seen[a] = seen.get(a, 0) + 1
        assert "192.0.2.10" not in seen  # weight 0: standby
        assert 200 < seen.get("203.0.113.10", 0) < 390  # about 3/4
        assert scope(ask(server, SG)) == 0  # no filter looked at the client
    finally:
        server.stop()


def test_records_outside_zones_are_rejected(tmp_path):
    text = config_text(tmp_path).replace("app.gslb.example.com:", "app.elsewhere.example:")
    with pytest.raises(ConfigError) as err:
        RunningServer(Settings(config_path=write(tmp_path / "bad.yaml", text)))
    assert "records.app.elsewhere.example: not inside any served zone" in str(err.value)
    assert f"{tmp_path / 'bad.yaml'}:" in str(err.value)


@pytest.mark.parametrize("value", ["-1", "25000", ".nan", "far"])
def test_latency_reach_must_be_a_distance(tmp_path, value):
    text = config_text(tmp_path, policy="[healthy, latency]").replace(
        "    fallback: all\n", f"    fallback: all\n    latency_reach_km: {value}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path / "bad.yaml", text))
    assert "records.app.gslb.example.com.latency_reach_km: must be a distance in km from 0 to 20038" in str(err.value)
    good = load_config(
        write(tmp_path / "good.yaml", text.replace(f"latency_reach_km: {value}", "latency_reach_km: 500"))
    )
    assert next(iter(good.records.values())).latency_reach_km == 500.0


# -- Redis shared by two servers ---------------------------------------------------------------
def _wait_for(server, subnet, expected, timeout=1.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if addresses(ask(server, subnet)) == expected:
            return time.monotonic() - started
        time.sleep(0.02)
    raise AssertionError(f"{addresses(ask(server, subnet))} != {expected} after {timeout}s")


def test_two_servers_one_redis_drain_outage_and_resync(tmp_path):
    redis = RedisServer(tmp_path / "redis").start()
    url = f"{redis.url}?prefix=t1:"
    a = b = None
    admin = RedisStore(url)
    try:
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        a, b = start(tmp_path / "a", store=url), start(tmp_path / "b", store=url)
        for s in (a, b):
            assert addresses(ask(s, SG)) == {"203.0.113.10"}
        a.call(admin.set_admin("ap-southeast-1", AdminState.DRAINED))
        took = [_wait_for(s, SG, {"198.51.100.10"}) for s in (a, b)]
        print(f"drain visible on both servers after {max(took) * 1000:.0f} ms")

        redis.kill()  # outage: both answer the last good state
        for _ in range(20):
            for s in (a, b):
                resp = ask(s, SG)
                assert resp.rcode() == dns.rcode.NOERROR and addresses(resp) == {"198.51.100.10"}
        deadline = time.monotonic() + 5  # noticing the outage is not the promise here
        while (a.server.keeper.connected or b.server.keeper.connected) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not a.server.keeper.connected and not b.server.keeper.connected

        redis.restart()  # empty again: the servers re-seed and resync
        deadline = time.monotonic() + 10
        while not (a.server.keeper.connected and b.server.keeper.connected) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert a.server.keeper.connected and b.server.keeper.connected
        admin2 = RedisStore(url)
        try:
            a.call(admin2.set_admin("eu-west-1", AdminState.DRAINED))
            for s in (a, b):
                _wait_for(s, LONDON, {"192.0.2.10"}, timeout=3.0)
        finally:
            a.call(admin2.close())
    finally:
        for s in (a, b):
            if s is not None:
                s.stop()
        redis.stop()


def test_server_started_while_redis_is_down_answers_from_config(tmp_path):
    redis = RedisServer(tmp_path / "redis")  # never started
    server = start(tmp_path, store=f"redis://127.0.0.1:{redis.port}/0")
    try:
        assert addresses(ask(server, SG)) == {"203.0.113.10"}
        assert addresses(ask(server, LONDON, 32)) == {"198.51.100.10"}
    finally:
        server.stop()


def test_restart_keeps_runtime_drain_unless_reset(tmp_path):
    redis = RedisServer(tmp_path / "redis").start()
    url = f"{redis.url}?prefix=t2:"
    config = write(tmp_path / "geodns.yaml", config_text(tmp_path, store=url))
    try:
        first = RunningServer(Settings(config_path=config))
        first.call(first.server.store.set_admin("ap-southeast-1", AdminState.DRAINED))
        _wait_for(first, SG, {"198.51.100.10"})
        first.stop()
        again = RunningServer(Settings(config_path=config))  # same config: the drain stays
        try:
            assert addresses(ask(again, SG)) == {"198.51.100.10"}
        finally:
            again.stop()
        reset = RunningServer(Settings(config_path=config, reset_state=True))
        try:
            assert addresses(ask(reset, SG)) == {"203.0.113.10"}
        finally:
            reset.stop()
    finally:
        redis.stop()


def test_a_server_says_how_it_serves_udp_and_answers_either_way(tmp_path, monkeypatch, caplog):
    """The compiled UDP loop is optional at install: the server says in its log which one serves
    (a warning without it) and answers the same through either."""
    import geodns.dns.listener

    answers = {}
    for compiled in (True, False):
        if not compiled:
            monkeypatch.setattr(geodns.dns.listener, "AVAILABLE", False)  # as where nothing was built
        caplog.clear()
        with caplog.at_level("INFO", logger="geodns"):
            server = start(tmp_path / str(compiled))
            try:
                answers[compiled] = [addresses(ask(server, *asked)) for asked in [(SG, 24), (US, 29)] * 2]
            finally:
                server.stop()
        listening = [r.getMessage() for r in caplog.records if "event=listening transport=udp+tcp" in r.getMessage()]
        slow = [r for r in caplog.records if "event=udp-slow-path" in r.getMessage()]
        if compiled and geodns.dns.listener.AVAILABLE:
            assert listening and all("udp=compiled" in m for m in listening) and not slow
        elif not compiled:
            assert listening and all("udp=asyncio" in m for m in listening)
            assert slow and slow[0].levelname == "WARNING"
    assert answers[True] == answers[False] == [{"203.0.113.10"}, {"192.0.2.10"}] * 2
