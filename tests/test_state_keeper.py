"""SnapshotKeeper: follows the store, debounces bursts, fails static through outages and resets."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

import pytest

from geodns.state.keeper import SnapshotKeeper
from geodns.state.memory import MemoryStore
from geodns.state.model import AdminState, Snapshot
from geodns.state.redis import RedisStore
from geodns.state.store import StateStore
from tests.redis_server import RedisServer
from tests.test_state_store import SPECS, observation

SEED = Snapshot.from_specs(SPECS)
FAST = dict(resync_interval=5.0, min_backoff=0.05, max_backoff=0.3)


async def eventually(condition: Callable[[], bool], timeout: float = 1.0) -> float:
    """Wait until ``condition()`` holds; return how long it took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.01)
    return time.monotonic() - started


def drained(keeper: SnapshotKeeper) -> bool:
    return keeper.snapshot.clusters["eu-west-1"].admin is AdminState.DRAINED


class Recorder:
    def __init__(self) -> None:
        self.snapshots: list[Snapshot] = []

    def __call__(self, snapshot: Snapshot) -> None:
        self.snapshots.append(snapshot)


async def test_start_loads_and_follows_changes() -> None:
    store = MemoryStore()
    await store.seed(SPECS)
    seen = Recorder()
    keeper = SnapshotKeeper(store, SEED, on_change=seen, **FAST)
    assert keeper.staleness() == math.inf and not keeper.connected
    await keeper.start()
    assert keeper.connected and keeper.snapshot.version == 1 and keeper.last_sync is not None
    assert keeper.staleness() < 1.0
    await store.set_admin("eu-west-1", AdminState.DRAINED)
    assert await eventually(lambda: drained(keeper)) < 0.5
    assert [s.version for s in seen.snapshots] == [1, 2]
    await keeper.stop()


async def test_a_burst_of_writes_becomes_few_loads() -> None:
    store = MemoryStore()
    await store.seed(SPECS)
    seen = Recorder()
    keeper = SnapshotKeeper(store, SEED, on_change=seen, **FAST)
    await keeper.start()
    await asyncio.sleep(0.1)
    for w in range(30):
        await store.set_weight("eu-west-1", w)
        await asyncio.sleep(0.001)
    await eventually(lambda: keeper.snapshot.version == 31)
    assert keeper.snapshot.clusters["eu-west-1"].weight == 29
    assert len(seen.snapshots) <= 4
    await keeper.stop()


async def test_resync_picks_up_what_is_not_published() -> None:
    store = MemoryStore()
    await store.seed(SPECS)
    await store.report([observation(rtt_ms=10.0)])
    keeper = SnapshotKeeper(store, SEED, resync_interval=0.2)
    await keeper.start()
    await store.report([observation(rtt_ms=12.0)])  # noise: no version bump
    assert store.version == 2
    key = ("eu-west-1", "192.0.2.1")
    await eventually(lambda: keeper.snapshot.observations[key][0].rtt_ms == 12.0, timeout=1.0)
    await keeper.stop()


async def test_an_older_version_is_taken_only_when_it_persists() -> None:
    store = MemoryStore()
    await store.seed(SPECS)
    newer = Snapshot(version=10, clusters=SEED.clusters)
    keeper = SnapshotKeeper(store, newer, **FAST)
    assert await keeper.sync() is False and keeper.snapshot is newer
    assert await keeper.sync() is True and keeper.snapshot.version == 1


async def test_unseeded_store_keeps_the_seed_and_reseeds() -> None:
    store = MemoryStore()
    seen = Recorder()
    keeper = SnapshotKeeper(store, SEED, on_change=seen, reseed=lambda: store.seed(SPECS), **FAST)
    await keeper.start()
    await eventually(lambda: keeper.snapshot.version == 1)
    assert all(s.clusters for s in seen.snapshots)
    await keeper.stop()


async def test_two_servers_see_a_drain_within_a_second(redis_server: RedisServer) -> None:
    admin, a, b = (RedisStore(redis_server.url) for _ in range(3))
    await admin.seed(SPECS)
    keepers = [SnapshotKeeper(s, SEED, **FAST) for s in (a, b)]
    for k in keepers:
        await k.start()
    await asyncio.sleep(0.1)  # let both subscribe
    await admin.set_admin("eu-west-1", AdminState.DRAINED)
    assert await eventually(lambda: all(drained(k) for k in keepers)) < 1.0
    for k in keepers:
        await k.stop()
    for s in (admin, a, b):
        await s.close()


async def test_outage_then_empty_restart_with_reseed(redis_server: RedisServer) -> None:
    stores = [RedisStore(redis_server.url) for _ in range(2)]
    await stores[0].seed(SPECS)
    await stores[0].set_admin("eu-west-1", AdminState.DRAINED)
    recorders = [Recorder(), Recorder()]
    keepers = [
        SnapshotKeeper(s, SEED, on_change=r, reseed=lambda s=s: s.seed(SPECS), **FAST)
        for s, r in zip(stores, recorders)
    ]
    for k in keepers:
        await k.start()
    assert all(drained(k) and k.connected for k in keepers)
    errors_before = [k.errors for k in keepers]

    redis_server.kill()
    await eventually(lambda: not any(k.connected for k in keepers), timeout=2.0)
    staleness = [k.staleness() for k in keepers]
    await asyncio.sleep(0.3)
    for k, before, errors in zip(keepers, staleness, errors_before):
        assert k.staleness() > before + 0.25 and k.errors > errors
        assert drained(k) and k.snapshot.version == 2  # the last good snapshot, still served

    redis_server.start()  # same port, empty: the table is gone
    await eventually(lambda: all(k.connected and k.staleness() < 0.5 for k in keepers), timeout=3.0)
    await eventually(lambda: all(k.snapshot.version == 1 for k in keepers))
    for k, rec in zip(keepers, recorders):
        assert not drained(k)  # re-seeded from config
        assert all(s.clusters for s in rec.snapshots)  # never swapped to an empty table
    await stores[0].set_admin("eu-west-1", AdminState.DRAINED)
    await eventually(lambda: all(drained(k) for k in keepers))  # and following changes again
    for k in keepers:
        await k.stop()
    for s in stores:
        await s.close()


async def test_empty_restart_without_reseed_keeps_the_last_snapshot(redis_server: RedisServer) -> None:
    store = RedisStore(redis_server.url)
    await store.seed(SPECS)
    for w in range(5):
        await store.set_weight("us-east-1", w)
    keeper = SnapshotKeeper(store, SEED, **FAST)
    await keeper.start()
    assert keeper.snapshot.version == 6

    redis_server.restart()
    await eventually(lambda: not keeper.connected, timeout=2.0)
    await eventually(lambda: keeper.connected, timeout=3.0)
    staleness = keeper.staleness()
    await asyncio.sleep(0.2)
    assert keeper.snapshot.version == 6 and keeper.staleness() > staleness  # serving, but stale

    other = RedisStore(redis_server.url)
    await other.seed(SPECS)  # an operator (or a peer) seeds it
    await eventually(lambda: keeper.snapshot.version == 1)
    assert keeper.staleness() < 0.5
    await keeper.stop()
    await store.close()
    await other.close()


async def test_server_started_while_redis_is_down(tmp_path) -> None:
    server = RedisServer(tmp_path)  # not started yet
    store = RedisStore(server.url)
    keeper = SnapshotKeeper(store, SEED, reseed=lambda: store.seed(SPECS), **FAST)
    await keeper.start()
    try:
        assert keeper.snapshot is SEED and not keeper.connected and keeper.errors >= 1
        server.start()
        await eventually(lambda: keeper.connected and keeper.snapshot.version == 1, timeout=3.0)
        assert keeper.snapshot.clusters == SEED.clusters
    finally:
        await keeper.stop()
        await store.close()
        server.stop()


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_stop_is_clean(kind: str, tmp_path) -> None:
    server = RedisServer(tmp_path).start() if kind == "redis" else None
    store: StateStore = RedisStore(server.url) if server else MemoryStore()
    try:
        await store.seed(SPECS)
        keeper = SnapshotKeeper(store, SEED, **FAST)
        await keeper.start()
        await asyncio.sleep(0.05)
        await keeper.stop()
        await keeper.stop()  # idempotent
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert not others
    finally:
        await store.close()
        if server:
            server.stop()


async def test_a_load_drift_too_small_to_publish_reaches_the_snapshot_at_the_next_sync() -> None:
    """Small load moves are not published (table.LOAD_NOTABLE); the next load of the table must take
    them even though the version, the clusters and the observations are the same."""
    from geodns.state.model import LoadReport

    store = MemoryStore()
    await store.seed(SPECS)
    keeper = SnapshotKeeper(store, SEED, **FAST)
    await keeper.start()
    now = time.time()
    await store.report_load([LoadReport("chk-1", "eu-west-1", "", 0.50, now, now + 60)])
    await keeper.sync()
    version = keeper.snapshot.version
    await store.report_load([LoadReport("chk-1", "eu-west-1", "", 0.51, now + 1, now + 61)])  # under 0.02
    assert (await store.load()).version == version  # not published
    await keeper.sync()
    assert [r.load for r in keeper.snapshot.loads[("eu-west-1", "")]] == [0.51]
    await keeper.stop()
