"""What only the Redis backend has: its key schema, prefixes, key expiry, outages, load consistency."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time

import pytest
import redis.asyncio as aioredis

from geodns.state.model import AdminState
from geodns.state.redis import RedisStore
from geodns.state.store import StoreUnavailable
from tests.redis_server import RedisServer, free_port
from tests.test_state_store import SPECS, next_version, observation


@pytest.fixture
async def raw(redis_server: RedisServer):
    client = aioredis.from_url(redis_server.url, decode_responses=True)
    yield client
    await client.aclose()


async def test_key_schema(redis_server: RedisServer, raw: aioredis.Redis) -> None:
    store = RedisStore(redis_server.url + "?prefix=gd:")
    await store.seed(SPECS)
    await store.set_admin("eu-west-1", AdminState.DRAINED, endpoint="192.0.2.1")
    await store.report([observation("chk-1")])
    assert set(await raw.keys("*")) == {
        "gd:version",
        "gd:clusters",
        "gd:cluster:eu-west-1",
        "gd:cluster:us-east-1",
        "gd:checkers",
        "gd:obs:chk-1",
    }
    assert await raw.get("gd:version") == "3"
    assert await raw.smembers("gd:clusters") == {"eu-west-1", "us-east-1"}
    cluster = json.loads(await raw.get("gd:cluster:eu-west-1"))
    assert cluster["region"] == "eu-west" and cluster["check"]["interval"] == 2.0
    assert cluster["endpoints"][0] == {"address": "192.0.2.1", "weight": 100, "admin": "drained", "probe": None}
    obs = json.loads(await raw.hget("gd:obs:chk-1", "eu-west-1|192.0.2.1"))
    assert obs["up"] is True and obs["vantage"] == "eu-west" and obs["rtt_ms"] == 10.0
    assert await raw.zscore("gd:checkers", "chk-1") == pytest.approx(obs["expires"])
    await store.close()


async def test_default_prefix_and_other_url_options_pass_through(
    redis_server: RedisServer, raw: aioredis.Redis
) -> None:
    store = RedisStore(redis_server.url + "?socket_keepalive=true")
    assert store.prefix == "geodns:" and store.channel == "geodns:changes"
    await store.seed(SPECS)
    assert await raw.get("geodns:version") == "1"
    await store.close()


async def test_prefixes_keep_deployments_apart(redis_server: RedisServer) -> None:
    a, b = RedisStore(redis_server.url + "?prefix=a:"), RedisStore(redis_server.url + "?prefix=b:")
    await a.seed(SPECS)
    feed = b.changes()
    assert await next_version(feed) == 0
    await a.set_weight("eu-west-1", 1)
    with pytest.raises(asyncio.TimeoutError):
        await next_version(feed, timeout=0.3)
    assert (await b.load()).version == 0
    await feed.aclose()
    await a.close()
    await b.close()


async def test_a_silent_checker_leaves_nothing_behind(redis_server: RedisServer, raw: aioredis.Redis) -> None:
    store = RedisStore(redis_server.url)
    await store.seed(SPECS)
    await store.report([observation("gone", ttl=0.3), observation("gone", endpoint="2001:db8::1", ttl=0.2)])
    assert 0 < await raw.pttl("geodns:obs:gone") <= 300
    await asyncio.sleep(0.4)
    assert not await raw.exists("geodns:obs:gone")
    await store.report([observation("alive")])  # any report prunes dead checkers
    assert await raw.zrange("geodns:checkers", 0, -1) == ["alive"]
    await store.close()


async def test_expired_fields_of_a_live_checker_are_pruned(redis_server: RedisServer, raw: aioredis.Redis) -> None:
    store = RedisStore(redis_server.url)
    await store.seed(SPECS)
    await store.report([observation("c", endpoint="192.0.2.1", ttl=0.2), observation("c", endpoint="2001:db8::1")])
    await asyncio.sleep(0.3)
    await store.report([observation("c", endpoint="2001:db8::1")])
    assert await raw.hkeys("geodns:obs:c") == ["eu-west-1|2001:db8::1"]
    await store.close()


async def test_unreachable_redis_raises_store_unavailable_quickly() -> None:
    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0")
    started = time.monotonic()
    for call in (
        store.connect(),
        store.load(),
        store.seed(SPECS),
        store.set_weight("x", 1),
        store.report([observation()]),
    ):
        with pytest.raises(StoreUnavailable, match="unreachable"):
            await call
    with pytest.raises(StoreUnavailable):
        await next_version(store.changes())
    assert time.monotonic() - started < 2.0
    await store.close()


async def test_feed_breaks_on_outage_and_the_store_recovers(redis_server: RedisServer) -> None:
    store = RedisStore(redis_server.url)
    await store.seed(SPECS)
    feed = store.changes()
    assert await next_version(feed) == 1
    redis_server.kill()
    with pytest.raises(StoreUnavailable):
        await next_version(feed, timeout=2.0)
    with pytest.raises(StoreUnavailable):
        await store.load()
    redis_server.start()  # same port, empty
    assert (await store.load()).version == 0
    assert await store.seed(SPECS) == 1
    await store.close()


async def test_close_ends_the_feed(redis_server: RedisServer) -> None:
    store = RedisStore(redis_server.url)
    feed = store.changes()
    assert await next_version(feed) == 0
    await store.close()
    with pytest.raises(StopAsyncIteration):
        await next_version(feed, timeout=2.0)


async def test_load_is_consistent_under_concurrent_writes(redis_server: RedisServer) -> None:
    """Each loaded snapshot's data is exactly the data written at its version."""
    writer, reader = RedisStore(redis_server.url), RedisStore(redis_server.url)
    await writer.seed(SPECS)
    weight_at = {1: SPECS[0].weight}
    done = False

    async def write() -> None:
        nonlocal done
        for w in range(1, 150):
            weight_at[await writer.set_weight("eu-west-1", w)] = w
        done = True

    async def read() -> list:
        seen = []
        while not done:
            seen.append(await reader.load())
        return seen

    _, snapshots = await asyncio.gather(write(), read())
    assert len(snapshots) > 10
    for snapshot in snapshots:
        assert snapshot.clusters["eu-west-1"].weight == weight_at[snapshot.version]
    await writer.close()
    await reader.close()


async def test_an_observation_carries_its_reason_and_down_since(redis_server: RedisServer, raw: aioredis.Redis) -> None:
    """Why an endpoint fails and since when travel through Redis; an older writer's JSON (without
    them) still loads, and a bad value is refused like any other field."""
    store = RedisStore(redis_server.url + "?prefix=r:")
    await store.seed(SPECS)
    now = time.time()
    down = dataclasses.replace(observation("chk-1", up=False, rtt_ms=None), reason="HTTP 503", down_since=now - 30)
    await store.report([down, observation("chk-2")])
    stored = json.loads(await raw.hget("r:obs:chk-1", "eu-west-1|192.0.2.1"))
    assert (stored["reason"], stored["down_since"]) == ("HTTP 503", pytest.approx(now - 30))
    assert "reason" not in json.loads(await raw.hget("r:obs:chk-2", "eu-west-1|192.0.2.1"))  # unset: not written
    loaded = {o.checker: o for o in (await store.load()).observations[("eu-west-1", "192.0.2.1")]}
    assert (loaded["chk-1"].reason, loaded["chk-1"].down_since) == ("HTTP 503", pytest.approx(now - 30))
    assert (loaded["chk-2"].reason, loaded["chk-2"].down_since) == (None, None)

    bad = {"vantage": "eu-west", "up": False, "rtt_ms": None, "at": now, "expires": now + 30}
    await raw.hset("r:obs:chk-1", "eu-west-1|192.0.2.1", json.dumps({**bad, "down_since": "yesterday"}))
    await raw.hset("r:obs:chk-3", "eu-west-1|192.0.2.1", json.dumps({**bad, "reason": 503}))
    await raw.zadd("r:checkers", {"chk-3": now + 30})
    snapshot = await store.load()
    assert "down_since: must be a unix time" in snapshot.problems["obs:chk-1"]
    assert "reason: must be a string" in snapshot.problems["obs:chk-3"]
    assert {o.checker for o in snapshot.observations[("eu-west-1", "192.0.2.1")]} == {"chk-2"}
    await store.close()
