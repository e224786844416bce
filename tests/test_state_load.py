"""Load readings in the store (issue 17): both backends, expiry, and Redis's key and validation."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import redis.asyncio as aioredis

from geodns.state import table
from geodns.state.model import LoadReport
from geodns.state.redis import RedisStore
from geodns.state.store import StateError, StateStore
from tests.redis_server import RedisServer, redis_server  # noqa: F401  (fixture)
from tests.test_state_store import SPECS, next_version, seeded, store, stores  # noqa: F401  (fixtures)


def reading(
    load: float, source: str = "chk-1", cluster: str = "eu-west-1", endpoint: str = "", ttl: float = 30.0
) -> LoadReport:
    now = time.time()
    return LoadReport(source, cluster, endpoint, load, now, now + ttl)


async def test_load_readings_land_in_the_snapshot_per_source(seeded: StateStore) -> None:
    before = (await seeded.load()).version
    after = await seeded.report_load([reading(0.5), reading(0.7, source="chk-2"), reading(0.9, endpoint="192.0.2.1")])
    snap = await seeded.load()
    assert after == snap.version == before + 1
    assert sorted(r.load for r in snap.loads[("eu-west-1", "")]) == [0.5, 0.7]
    assert [r.load for r in snap.loads[("eu-west-1", "192.0.2.1")]] == [0.9]
    # A source's new reading replaces its old one.
    await seeded.report_load([reading(0.6)])
    assert sorted(r.load for r in (await seeded.load()).loads[("eu-west-1", "")]) == [0.6, 0.7]


async def test_an_expired_reading_is_gone_not_zero(seeded: StateStore) -> None:
    await seeded.report_load([reading(0.8, ttl=0.2)])
    assert ("eu-west-1", "") in (await seeded.load()).loads
    await asyncio.sleep(0.3)
    assert ("eu-west-1", "") not in (await seeded.load()).loads


async def test_only_a_notable_checker_move_is_published(seeded: StateStore) -> None:
    feed = seeded.changes()
    start = await next_version(feed)
    assert await seeded.report_load([reading(0.50)]) == start + 1
    assert await next_version(feed) == start + 1
    assert await seeded.report_load([reading(0.51)]) == start + 1  # noise: carried by the next resync
    snap = await seeded.load()
    assert snap.version == start + 1 and [r.load for r in snap.loads[("eu-west-1", "")]] == [0.51]
    await seeded.report_load([reading(0.51, source=table.ADMIN_SOURCE)])  # an operator's always is
    assert await next_version(feed) == start + 2
    await feed.aclose()


def test_operator_readings_are_checked() -> None:
    from geodns.state.model import Cluster
    from tests.test_state_store import SPECS as specs

    cluster = Cluster.from_spec(specs[0])
    report = table.load_report(cluster, 0.83, "90s", now=1000.0)
    assert (report.source, report.endpoint, report.load, report.expires) == ("admin", "", 0.83, 1090.0)
    assert table.load_report(cluster, 1, 5, endpoint="2001:DB8::1").endpoint == "2001:db8::1"
    for load, ttl, message in (
        (-0.1, 60, "load must be between 0 and 1000"),
        (float("nan"), 60, "load must be"),
        ("high", 60, "load must be a number"),
        (True, 60, "load must be a number"),
        (0.5, 0, "ttl must be greater than zero"),
        (0.5, "2d", "ttl '2d' is not a duration"),
        (0.5, 86401, "ttl must be more than 0 and at most 86400s"),
    ):
        with pytest.raises(ValueError, match=message):
            table.load_report(cluster, load, ttl)
    with pytest.raises(StateError, match="has no endpoint 192.0.2.99"):
        table.load_report(cluster, 0.5, 60, endpoint="192.0.2.99")


@pytest.fixture
async def raw(redis_server: RedisServer):
    client = aioredis.from_url(redis_server.url, decode_responses=True)
    yield client
    await client.aclose()


async def test_redis_keeps_readings_in_one_hash_and_validates_them_on_read(
    redis_server: RedisServer, raw: aioredis.Redis
) -> None:
    store = RedisStore(redis_server.url + "?prefix=gd:")
    await store.seed(SPECS)
    await store.report_load([reading(0.4), reading(0.9, source="admin", endpoint="192.0.2.1", ttl=0.2)])
    stored = await raw.hgetall("gd:loads")
    assert set(stored) == {"eu-west-1||chk-1", "eu-west-1|192.0.2.1|admin"}
    assert json.loads(stored["eu-west-1||chk-1"])["load"] == 0.4
    assert 0 < await raw.pttl("gd:loads") <= 30_000
    # Written by someone else: bad values are left out and named, the good one stays.
    now = time.time()
    await raw.hset(
        "gd:loads",
        mapping={
            "eu-west-1||evil": json.dumps({"load": -3, "at": now, "expires": now + 60}),
            "eu-west-1||nan": '{"load": NaN, "at": 1, "expires": 1e300}',
            "eu-west-1|not-an-ip|x": json.dumps({"load": 0.1, "at": now, "expires": now + 60}),
            "garbage": "{}",
        },
    )
    snap = await store.load()
    assert [r.source for r in snap.loads[("eu-west-1", "")]] == ["chk-1"]
    assert "load must be between 0 and 1000" in snap.problems["loads:eu-west-1||evil"]
    assert "load must be" in snap.problems["loads:eu-west-1||nan"]
    assert "endpoint:" in snap.problems["loads:eu-west-1|not-an-ip|x"]
    assert "field must be cluster|endpoint|source" in snap.problems["loads:garbage"]
    # The next write prunes what expired and what no longer decodes.
    await asyncio.sleep(0.3)
    await store.report_load([reading(0.45)])
    assert set(await raw.hkeys("gd:loads")) == {"eu-west-1||chk-1"}
    await store.close()
