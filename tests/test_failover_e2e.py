"""Traffic leaves a failing cluster and comes back: real ingresses, real checkers, real DNS.

Timings are measured and printed; the bounds asserted are the promise
(fall x interval + 1 s) plus scheduling slack, never tight.
"""

from __future__ import annotations

import time
from pathlib import Path

import dns.edns
import dns.message
import dns.query
import pytest

from geodns.process.server import Settings
from geodns.state.redis import RedisStore
from geodns.tooling.drill.scenarios import netns_reason
from tests.dnsserver import GEOIP_TEST_DB, GSLB_ZONE, RunningServer, write
from tests.processes import Child, SimIngress, sim_ingresses
from tests.redis_server import RedisServer

APP = "app.gslb.example.com."
SG = "214.0.0.0"
INTERVAL, RISE, FALL = 0.5, 2, 2
PROMISE = FALL * INTERVAL + 1.0
ADDRESS = {"us-east-1": "192.0.2.10", "eu-west-1": "198.51.100.10", "ap-southeast-1": "203.0.113.10"}


def config(tmp_path: Path, sims: dict[str, SimIngress], store: str, embedded: str) -> Path:
    clusters = "".join(
        f"""  {name}:
    region: {name[:-2]}
    endpoints: [{{address: "{ADDRESS[name]}", probe: "{sims[name].probe}"}}]
    check: {{type: http, path: /healthz, interval: {INTERVAL}s, timeout: 0.3s, rise: {RISE}, fall: {FALL}}}
"""
        for name in ADDRESS
    )
    return write(
        tmp_path / "geodns.yaml",
        f"""
server: {{dns_listen: ["127.0.0.1:0"], http_listen: null}}
store: "{store}"
zones: ["{write(tmp_path / "gslb.example.com.zone", GSLB_ZONE)}"]
geoip: {{database: "{GEOIP_TEST_DB}"}}
checker: {{embedded: {embedded}, region: ap-southeast}}
regions:
  us-east:      {{lat: 39.0, lon: -77.5, continent: NA, countries: [US]}}
  eu-west:      {{lat: 53.3, lon: -6.3,  continent: EU, countries: [GB]}}
  ap-southeast: {{lat: 1.35, lon: 103.8, continent: AS, countries: [SG]}}
clusters:
{clusters}records:
  app.gslb.example.com: {{ttl: 5, clusters: [us-east-1, eu-west-1, ap-southeast-1], policy: [healthy, geo, weighted]}}
""",
    )


def answer(server) -> str:
    q = dns.message.make_query(APP, "A", use_edns=0, options=[dns.edns.ECSOption(SG, 24)])
    resp = dns.query.udp(q, server.host, port=server.port, timeout=3)
    return ",".join(sorted(r.to_text() for rr in resp.answer for r in rr))


def wait_answer(server, expected: str, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if answer(server) == expected:
            return time.monotonic() - started
        time.sleep(0.02)
    raise AssertionError(f"answer still {answer(server)!r}, not {expected!r}, after {timeout:.1f}s")


@pytest.fixture
def sims(tmp_path):
    with sim_ingresses(ADDRESS, tmp_path) as started:
        yield started


def test_embedded_checker_moves_traffic_away_and_back(tmp_path, sims):
    server = RunningServer(Settings(config_path=config(tmp_path, sims, "memory://", "auto")))
    try:
        assert server.server.checker is not None
        wait_answer(server, ADDRESS["ap-southeast-1"], 3)
        sims["ap-southeast-1"].set_mode("503")
        away = wait_answer(server, ADDRESS["eu-west-1"], PROMISE + 1.5)
        sims["ap-southeast-1"].set_mode("up")
        back = wait_answer(server, ADDRESS["ap-southeast-1"], RISE * INTERVAL + 2.5)
        print(
            f"\nfailure -> answer moved in {away:.2f}s (fall x interval = {FALL * INTERVAL:.1f}s); "
            f"recovery -> back in {back:.2f}s (rise x interval = {RISE * INTERVAL:.1f}s)"
        )
        assert away <= PROMISE + 0.5
    finally:
        server.stop()


def test_flapping_ingress_does_not_flap_the_answer(tmp_path, sims):
    server = RunningServer(Settings(config_path=config(tmp_path, sims, "memory://", "on")))
    try:
        wait_answer(server, ADDRESS["ap-southeast-1"], 3)
        time.sleep(RISE * INTERVAL + 0.5)  # up by verdict, not only as "unknown"
        sims["ap-southeast-1"].set_mode("flap")
        seen = set()
        deadline = time.monotonic() + 6 * INTERVAL
        while time.monotonic() < deadline:
            seen.add(answer(server))
            time.sleep(0.05)
        assert sims["ap-southeast-1"].state()["failures"] >= 2  # it really did fail in between
        assert seen == {ADDRESS["ap-southeast-1"]}
    finally:
        server.stop()


def test_two_checkers_in_redis_one_partitioned(tmp_path, sims):
    """Checker us-east sees the ingresses; checker eu-west runs in a network namespace of its
    own (it reaches Redis over a unix socket, and no ingress at all): a partition."""
    reason = netns_reason()
    if reason:
        pytest.skip(reason)
    redis = RedisServer(tmp_path / "redis").start()
    cfg = config(tmp_path, sims, redis.url, "off")
    server = checker_a = checker_b = None
    try:
        server = RunningServer(Settings(config_path=cfg))
        checker_a = Child(
            ["check", "--config", str(cfg), "--store", redis.url, "--checker-id", "a", "--region", "us-east"],
            tmp_path / "checker-a.log",
        )
        checker_b = Child(
            ["check", "--config", str(cfg), "--store", redis.unix_url, "--checker-id", "b", "--region", "eu-west"],
            tmp_path / "checker-b.log",
            prefix=["unshare", "-n"],
        )
        wait_answer(server, ADDRESS["ap-southeast-1"], 5)

        store = RedisStore(redis.url)
        try:
            deadline = time.monotonic() + 5
            votes = {}
            while time.monotonic() < deadline:
                snapshot = server.call(store.load())
                votes = {(o.checker, o.endpoint): o.up for obs in snapshot.observations.values() for o in obs}
                if (
                    ("a", ADDRESS["ap-southeast-1"]) in votes
                    and ("b", ADDRESS["ap-southeast-1"]) in votes
                    and votes[("a", ADDRESS["ap-southeast-1"])] is True
                ):
                    break
                time.sleep(0.1)
        finally:
            server.call(store.close())
        assert votes[("a", ADDRESS["ap-southeast-1"])] is True
        assert all(votes[("b", address)] is None for address in ADDRESS.values()), votes  # suspect: no vote
        assert "event=checker-suspect" in checker_b.output() or "suspect" in checker_b.output()

        # The partitioned checker changes nothing a client sees.
        deadline = time.monotonic() + 4 * INTERVAL
        while time.monotonic() < deadline:
            assert answer(server) == ADDRESS["ap-southeast-1"]
            time.sleep(0.05)

        # A real failure, seen by the healthy checker, still moves traffic.
        sims["ap-southeast-1"].set_mode("503")
        away = wait_answer(server, ADDRESS["eu-west-1"], PROMISE + 2.5)
        sims["ap-southeast-1"].set_mode("up")
        back = wait_answer(server, ADDRESS["ap-southeast-1"], RISE * INTERVAL + 3.5)
        print(f"\nwith one checker partitioned: away in {away:.2f}s, back in {back:.2f}s")
    finally:
        for child in (checker_a, checker_b):
            if child is not None:
                assert child.stop() == 0, child.output()
        if server is not None:
            server.stop()
        redis.stop()
