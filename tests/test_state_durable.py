"""Operator intent survives Redis losing data, and the store is read as carefully as the config.

Real ``redis-server`` processes (own port, killed and restarted empty), real
servers answering over UDP, dnspython as the client, ``/readyz`` and
``/metrics`` over HTTP: what an operator and a resolver would see.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis as redis_sync

from geodns.config.model import ClusterSpec, EndpointSpec
from geodns.process.server import Settings
from geodns.state.model import AdminState
from geodns.state.redis import RedisStore
from tests.dnsserver import RunningServer, write
from tests.redis_server import RedisServer
from tests.test_gslb_dns import LONDON, SG, US, addresses, ask, config_text
from tests.test_http_api import http

AP, EU, USE = "203.0.113.10", "198.51.100.10", "192.0.2.10"
PREFIX = "d:"
EXTRA = ClusterSpec("extra-1", "us-east", (EndpointSpec(ipaddress.ip_address("192.0.2.77")),))  # added at runtime


def poll(condition: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s")
        time.sleep(0.05)


def start(tmp_path: Path, url: str, name: str = "a", **settings) -> RunningServer:
    text = config_text(tmp_path / name, store=url).replace("http_listen: null", 'http_listen: "127.0.0.1:0"')
    return RunningServer(Settings(config_path=write(tmp_path / name / "geodns.yaml", text), **settings))


def raw(redis: RedisServer) -> redis_sync.Redis:
    return redis_sync.Redis(host="127.0.0.1", port=redis.port, decode_responses=True)


def nudge(client: redis_sync.Redis) -> None:
    """What any write publishes, so the servers load now rather than at their 5 s resync."""
    client.publish(PREFIX + "changes", 0)


def store_table(url: str):
    async def load():
        store = RedisStore(url)
        try:
            return await store.load()
        finally:
            await store.close()

    return asyncio.run(load())


def steady(servers: list[RunningServer], subnet: str, prefix: int, expected: set[str], count: int = 30) -> None:
    for _ in range(count):
        for s in servers:
            assert addresses(ask(s, subnet, prefix)) == expected


@pytest.fixture
def redis(tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


# -- item 1: a Redis restarted empty gets the operators' table back, not the config's ---------------


def test_runtime_changes_survive_redis_restarting_empty(tmp_path, redis, caplog):
    url = f"{redis.url}?prefix={PREFIX}"
    a = start(tmp_path, url, "a")
    b = start(tmp_path, url, "b")
    try:
        admin = a.server.store
        a.call(admin.set_admin("ap-southeast-1", AdminState.DRAINED))  # SG -> eu-west
        a.call(admin.set_weight("eu-west-1", 0, endpoint="2001:db8:1::10"))
        a.call(admin.remove_cluster("us-east-1"))  # US -> eu-west
        a.call(admin.add_cluster(EXTRA))
        for s in (a, b):
            poll(lambda s=s: addresses(ask(s, SG)) == {EU} and addresses(ask(s, US, 29)) == {EU}, what="changes")

        caplog.set_level(logging.WARNING)
        redis.kill()
        redis.start()  # same port, nothing persisted: empty
        poll(lambda: store_table(url).version > 0, what="the store seeded again")
        table = store_table(url).clusters
        assert table["ap-southeast-1"].admin is AdminState.DRAINED
        assert [e.weight for e in table["eu-west-1"].endpoints] == [100, 0]
        assert "us-east-1" not in table and "extra-1" in table  # removed stays removed
        for s in (a, b):
            poll(
                lambda s=s: s.server.keeper.connected and s.server.keeper.snapshot.version == store_table(url).version,
                what="both servers on the restored table",
            )
        steady([a, b], SG, 24, {EU})  # the drain holds: never back to ap-southeast
        steady([a, b], US, 29, {EU})
        restored = [r.getMessage() for r in caplog.records if "event=store-restored" in r.getMessage()]
        assert restored and "ap-southeast-1: drained" in restored[0] and "us-east-1: removed at runtime" in restored[0]
        assert "extra-1: added at runtime" in restored[0]
    finally:
        a.stop()
        b.stop()
    reset = start(tmp_path, url, "c", reset_state=True)  # --reset-state: the config still wins
    try:
        assert addresses(ask(reset, SG)) == {AP} and addresses(ask(reset, US, 29)) == {USE}
        assert set(raw(redis).smembers(PREFIX + "clusters")) == {"us-east-1", "eu-west-1", "ap-southeast-1"}
    finally:
        reset.stop()


def test_maxmemory_policy_that_can_evict_the_table_is_warned_about(tmp_path, redis, caplog):
    raw(redis).config_set("maxmemory-policy", "allkeys-lru")
    caplog.set_level(logging.WARNING)
    a = start(tmp_path, f"{redis.url}?prefix={PREFIX}")
    a.stop()
    assert any("event=store-risk" in r.getMessage() and "allkeys-lru" in r.getMessage() for r in caplog.records)


# -- item 5: lost or bad keys ------------------------------------------------------------------------


def test_an_evicted_cluster_key_keeps_answering_and_is_reported(tmp_path, redis):
    url = f"{redis.url}?prefix={PREFIX}"
    a = start(tmp_path, url)
    client = raw(redis)
    try:
        a.call(a.server.store.set_weight("ap-southeast-1", 7))  # runtime state the last good value holds
        poll(lambda: a.server.keeper.snapshot.clusters["ap-southeast-1"].weight == 7, what="the weight loaded")
        client.delete(PREFIX + "cluster:ap-southeast-1")  # as an allkeys-* eviction would
        nudge(client)
        poll(lambda: http(a, "GET", "/readyz")[0] == 503, what="/readyz 503")
        status, reason = http(a, "GET", "/readyz")
        assert reason.startswith("store data invalid: cluster:ap-southeast-1: missing")
        assert "unreachable" not in reason
        steady([a], SG, 24, {AP})  # still the last good value: not NODATA
        assert a.server.keeper.snapshot.clusters["ap-southeast-1"].weight == 7
        metrics = http(a, "GET", "/metrics")[1]
        assert 'geodns_store_invalid_entries{entry="cluster:ap-southeast-1"} 1.0' in metrics

        assert a.reload()  # a reload writes the last good value back
        assert json.loads(client.get(PREFIX + "cluster:ap-southeast-1"))["weight"] == 7
        poll(lambda: http(a, "GET", "/readyz") == (200, "ok\n"), what="ready again")
    finally:
        a.stop()


def test_a_lost_index_and_version_are_rebuilt(tmp_path, redis):
    url = f"{redis.url}?prefix={PREFIX}"
    a = start(tmp_path, url)
    client = raw(redis)
    try:
        a.call(a.server.store.add_cluster(EXTRA))
        client.delete(PREFIX + "clusters", PREFIX + "version")
        nudge(client)
        poll(
            lambda: (
                set(client.smembers(PREFIX + "clusters")) == {"us-east-1", "eu-west-1", "ap-southeast-1", "extra-1"}
            ),
            what="the index rebuilt",
        )
        poll(
            lambda: set(a.server.keeper.snapshot.clusters) == {"us-east-1", "eu-west-1", "ap-southeast-1", "extra-1"},
            what="the server on the rebuilt table",
        )
        steady([a], SG, 24, {AP})
        steady([a], LONDON, 32, {EU})
        assert http(a, "GET", "/readyz") == (200, "ok\n")

        client.delete(PREFIX + "clusters")  # the index alone, version kept
        nudge(client)
        poll(lambda: client.scard(PREFIX + "clusters") == 4, what="the index rebuilt again")
        steady([a], SG, 24, {AP})
    finally:
        a.stop()


def test_a_lost_index_is_mended_by_a_restart_even_when_no_data_changed(tmp_path, redis):
    url = f"{redis.url}?prefix={PREFIX}"
    a = start(tmp_path, url, "a")
    a.stop()
    client = raw(redis)
    client.delete(PREFIX + "clusters", PREFIX + "version")
    b = start(tmp_path, url, "b")  # no snapshot: seeds from config
    try:
        assert client.scard(PREFIX + "clusters") == 3
        assert addresses(ask(b, SG)) == {AP} and addresses(ask(b, LONDON, 32)) == {EU}
    finally:
        b.stop()


BAD = [
    # (what is written as cluster:eu-west-1, what /readyz must name)
    ({"weight": -100}, "weight: must be between 0 and 1000000, not -100"),
    ({"weight": 10**400}, "weight: must be between 0 and 1000000"),
    ({"region": "mars"}, "region: unknown region 'mars'"),
    ({"endpoints": []}, "endpoints: must be a non-empty list"),
    ({"min_healthy": -1}, "min_healthy: must be between 1 and 1000000, not -1"),
    ({"name": "us-east-1"}, "name: 'us-east-1' does not match its key 'eu-west-1'"),
    (
        {"endpoints": [{"address": "not-an-ip"}]},
        "endpoints[0].address: 'not-an-ip' is not an IP address or a host name",
    ),
    ({"admin": "sideways"}, "admin: must be one of active, drained"),
    ("{not json", "not valid JSON"),
]


def test_invalid_values_are_rejected_by_name_and_the_last_good_value_kept(tmp_path, redis):
    url = f"{redis.url}?prefix={PREFIX}"
    a = start(tmp_path, url)
    client = raw(redis)
    key = PREFIX + "cluster:eu-west-1"
    good = client.get(key)
    try:
        for change, reason in BAD:
            text = change if isinstance(change, str) else json.dumps({**json.loads(good), **change})
            client.set(key, text)
            nudge(client)
            poll(lambda: http(a, "GET", "/readyz")[0] == 503, what=f"/readyz 503 for {change!r}")
            status, why = http(a, "GET", "/readyz")
            assert why.startswith("store data invalid: cluster:eu-west-1: ") and reason in why, (change, why)
            steady([a], LONDON, 32, {EU}, count=5)  # the last good eu-west-1 still answers
            steady([a], US, 29, {USE}, count=5)  # and nothing replaced us-east-1
            if "region" not in reason:  # the store cannot know the config's regions; the rest it checks
                status, body = http(a, "POST", "/api/v1/clusters/eu-west-1/drain")
                assert status == 400 and "cluster:eu-west-1 is invalid" in body["error"]  # never built on bad data
            client.set(key, good)
            nudge(client)
            poll(lambda: http(a, "GET", "/readyz") == (200, "ok\n"), what=f"ready again after {change!r}")
    finally:
        a.stop()


def test_a_garbage_version_or_change_message_is_bad_data_not_a_broken_feed(tmp_path, redis, caplog):
    """A version key that is not an integer made every keeper load fail with a traceback (the change
    feed read it with ``int()``), so the server never loaded again, /readyz stayed 200 and admin
    writes were 500s; a non-integer message on the change channel broke the feed the same way."""
    url = f"{redis.url}?prefix={PREFIX}"
    a = start(tmp_path, url)
    client = raw(redis)
    caplog.set_level(logging.WARNING)
    try:
        a.call(a.server.store.set_admin("ap-southeast-1", AdminState.DRAINED))  # runtime state to keep
        poll(lambda: addresses(ask(a, SG)) == {EU}, what="the drain")

        client.publish(PREFIX + "changes", "not-a-number")
        client.set(PREFIX + "version", "garbage")
        poll(lambda: (client.get(PREFIX + "version") or "").isdigit(), what="the version repaired")
        poll(
            lambda: (
                a.server.keeper.connected and a.server.keeper.snapshot.version == int(client.get(PREFIX + "version"))
            ),
            what="the server on the repaired table",
        )
        steady([a], SG, 24, {EU})  # the drain held throughout
        status, body = http(a, "PUT", "/api/v1/clusters/eu-west-1/weight", {"weight": 7})
        assert status == 200 and body["weight"] == 7, body  # admin writes work again
        assert json.loads(client.get(PREFIX + "cluster:ap-southeast-1"))["admin"] == "drained"
        failures = [
            r.getMessage()
            for r in caplog.records
            if "state keeper failed" in r.getMessage() or "http-error" in r.getMessage()
        ]
        assert not failures, failures[:1]
    finally:
        a.stop()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_second_server_refused_its_address_leaves_the_shared_table_alone(tmp_path, redis, workers):
    """``geodns serve --reset-state`` started by mistake on an address already served exited with status 2
    ("one server per address") but only after it had reset the shared table: the first server's drain was
    gone and traffic went back to the drained cluster.  It must fail before it touches the store."""
    import subprocess
    import sys

    from tests.test_cli import REPO

    url = f"{redis.url}?prefix={PREFIX}"
    a = start(tmp_path, url, "a")
    client = raw(redis)
    try:
        a.call(a.server.store.set_admin("ap-southeast-1", AdminState.DRAINED))
        poll(lambda: addresses(ask(a, SG)) == {EU}, what="the drain")
        version = client.get(PREFIX + "version")
        second = subprocess.run(
            [
                sys.executable,
                "-m",
                "geodns",
                "serve",
                "--config",
                str(tmp_path / "a" / "geodns.yaml"),
                "--reset-state",
                "--dns-listen",
                f"127.0.0.1:{a.port}",
                "--http-listen",
                "127.0.0.1:0",
                "--workers",
                workers,
            ],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=60,
        )
        assert second.returncode == 2, second.stderr
        assert f"127.0.0.1:{a.port} is already in use" in second.stderr
        assert json.loads(client.get(PREFIX + "cluster:ap-southeast-1"))["admin"] == "drained"
        assert client.get(PREFIX + "version") == version  # not a single write
        steady([a], SG, 24, {EU})
    finally:
        a.stop()


def test_an_admin_write_to_an_evicted_cluster_is_refused_naming_the_missing_key(tmp_path, redis):
    """It was a 404 "unknown cluster 'ap-southeast-1'" that listed ap-southeast-1 among the known ones."""
    url = f"{redis.url}?prefix={PREFIX}"
    a = start(tmp_path, url)
    client = raw(redis)
    try:
        client.delete(PREFIX + "cluster:ap-southeast-1")
        nudge(client)
        poll(lambda: http(a, "GET", "/readyz")[0] == 503, what="/readyz 503")
        status, body = http(a, "PUT", "/api/v1/clusters/ap-southeast-1/weight", {"weight": 5})
        assert status == 400, body
        assert "cluster:ap-southeast-1 is missing (evicted or deleted)" in body["error"], body
        assert client.get(PREFIX + "cluster:ap-southeast-1") is None  # nothing built on the missing key
        assert a.reload()  # the way out the error names
        status, body = http(a, "PUT", "/api/v1/clusters/ap-southeast-1/weight", {"weight": 5})
        assert status == 200 and body["weight"] == 5, body
    finally:
        a.stop()
