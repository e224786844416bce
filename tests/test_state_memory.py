"""What only the memory backend has; the shared contract is in test_state_store.py."""

from __future__ import annotations

import asyncio

import pytest

from geodns.state.memory import MemoryStore
from geodns.state.model import AdminState
from tests.test_state_store import SPECS, next_version, observation


async def test_feed_wakes_every_waiting_reader() -> None:
    store = MemoryStore()
    await store.seed(SPECS)
    feeds = [store.changes() for _ in range(3)]
    assert [await next_version(f) for f in feeds] == [1, 1, 1]
    waits = [asyncio.ensure_future(next_version(f)) for f in feeds]
    await asyncio.sleep(0)
    await store.set_admin("eu-west-1", AdminState.DRAINED)
    assert await asyncio.gather(*waits) == [2, 2, 2]
    for f in feeds:
        await f.aclose()


async def test_feed_coalesces_a_burst_for_a_slow_reader() -> None:
    store = MemoryStore()
    await store.seed(SPECS)
    feed = store.changes()
    assert await next_version(feed) == 1
    for w in range(5):
        await store.set_weight("eu-west-1", w)
    assert await next_version(feed) == 6
    with pytest.raises(asyncio.TimeoutError):
        await next_version(feed, timeout=0.05)
    await feed.aclose()


async def test_close_ends_the_feed() -> None:
    store = MemoryStore()
    feed = store.changes()
    assert await next_version(feed) == 0
    waiting = asyncio.ensure_future(next_version(feed))
    await asyncio.sleep(0)
    await store.close()
    with pytest.raises(StopAsyncIteration):
        await waiting


async def test_expired_observations_are_forgotten_not_just_hidden() -> None:
    store = MemoryStore()
    await store.seed(SPECS)
    await store.report([observation("gone", ttl=0.05)])
    await asyncio.sleep(0.1)
    await store.report([observation("alive")])
    assert set(store._observations) == {"alive"}
