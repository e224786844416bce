"""The checker against real ingresses and real stores: rise/fall timing, flapping, suspect mode,
reconciliation with the table, several checkers in Redis, expiry.

Timing is measured and printed; assertions on it are deliberately loose.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
import types
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import pytest
import redis.asyncio as aioredis

from geodns.config.model import CheckSpec, ClusterSpec, EndpointSpec
from geodns.health.checker import Checker
from geodns.state.keeper import SnapshotKeeper
from geodns.state.memory import MemoryStore
from geodns.state.model import Observation, Snapshot
from geodns.state.redis import RedisStore
from geodns.state.store import StateStore
from tests.redis_server import RedisServer
from tests.test_health_probe import Ingress

INTERVAL = 0.2
SPEC = CheckSpec(interval=INTERVAL, timeout=0.15, rise=2, fall=2, body="healthy")
A, B, C, D = "192.0.2.1", "192.0.2.2", "192.0.2.3", "198.51.100.4"


def cluster(
    name: str, endpoints: dict[str, Ingress], spec: CheckSpec | None = SPEC, region: str = "eu-west"
) -> ClusterSpec:
    """A cluster whose answer addresses are documentation IPs, each probed at its loopback ingress."""
    return ClusterSpec(
        name=name,
        region=region,
        check=spec,
        endpoints=tuple(
            EndpointSpec(ipaddress.ip_address(address), probe=ingress.url) for address, ingress in endpoints.items()
        ),
    )


class RecordingStore(MemoryStore):
    """A MemoryStore that also keeps every observation it was sent, to check what was never said."""

    def __init__(self) -> None:
        super().__init__()
        self.reported: list[Observation] = []

    async def report(self, observations: Sequence[Observation]) -> None:
        self.reported.extend(observations)
        await super().report(observations)


@contextlib.asynccontextmanager
async def running(store: StateStore, checker_id: str = "chk-1", vantage: str = "eu-west") -> AsyncIterator[Checker]:
    """A checker following ``store`` through a SnapshotKeeper, as `geodns serve` and `geodns check` run it."""
    keeper = SnapshotKeeper(store, Snapshot.from_specs(()), resync_interval=1.0, debounce=0.01)
    await keeper.start()
    checker = Checker(store, checker_id, vantage, table_source=keeper, flush_interval=0.1, poll_interval=0.05)
    await checker.start()
    try:
        yield checker
    finally:
        await checker.stop()
        await keeper.stop()


@contextlib.asynccontextmanager
async def ingresses(count: int) -> AsyncIterator[list[Ingress]]:
    servers = [await Ingress().start() for _ in range(count)]
    try:
        yield servers
    finally:
        for server in servers:
            await server.close()


async def verdicts(store: StateStore, checker: str = "chk-1") -> dict[str, bool | None]:
    """endpoint -> the latest fresh verdict of ``checker``."""
    snapshot = await store.load()
    return {
        endpoint: obs.up
        for (_cluster, endpoint), observations in snapshot.observations.items()
        for obs in observations
        if obs.checker == checker
    }


async def until(condition: Callable[[], Awaitable[bool]], timeout: float = 3.0) -> float:
    """Wait until ``await condition()`` holds; return how long it took."""
    started = time.monotonic()
    while not await condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.02)
    return time.monotonic() - started


def changes(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "event=health-change" in r.getMessage()]


async def test_a_failing_ingress_goes_down_after_fall_intervals_and_comes_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="geodns.health")
    store = MemoryStore()
    async with ingresses(2) as (a, b):
        await store.seed([cluster("eu-west-1", {A: a, B: b})])
        async with running(store) as checker:
            await until(lambda: _eq(verdicts(store), {A: True, B: True}))
            a.mode = "503"
            took = await until(lambda: _eq(verdicts(store), {A: False, B: True}))
            print(f"\nfailure to 'down' in the store: {took:.2f}s (fall x interval = {2 * INTERVAL:.2f}s)")
            assert INTERVAL * 0.75 <= took <= 2 * INTERVAL + 1.0
            assert (
                'event=health-change endpoint=192.0.2.1 cluster=eu-west-1 old=up new=down reason="HTTP 503"'
                in "\n".join(changes(caplog))
            )
            assert not checker.suspect  # one of two failing is news about that one, not about us

            a.mode = "ok"
            took = await until(lambda: _eq(verdicts(store), {A: True, B: True}))
            print(f"recovery to 'up' in the store: {took:.2f}s (rise x interval = {2 * INTERVAL:.2f}s)")
            assert took <= 2 * INTERVAL + 1.0

            await a.stop()
            await until(lambda: _eq(verdicts(store), {A: False, B: True}))
            status = checker.status()[("eu-west-1", A)]
            assert (status.state, status.reason, status.target) == ("down", "connection refused", a.url)
            assert checker.status()[("eu-west-1", B)].rtt_ms is not None

    # The two start-up changes may come in either order.
    lines = [line.split(" checker=")[0] for line in changes(caplog)]
    assert sorted(lines[:2]) == [
        f'event=health-change endpoint={e} cluster=eu-west-1 old=unknown new=up reason="ok"' for e in (A, B)
    ]
    assert lines[2:] == [
        f'event=health-change endpoint={A} cluster=eu-west-1 old=up new=down reason="HTTP 503"',
        f'event=health-change endpoint={A} cluster=eu-west-1 old=down new=up reason="ok"',
        f'event=health-change endpoint={A} cluster=eu-west-1 old=up new=down reason="connection refused"',
    ]


async def _eq(value: Awaitable[object], expected: object) -> bool:
    return await value == expected


async def test_a_flapping_ingress_never_changes_state(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="geodns.health")
    store = MemoryStore()
    async with ingresses(2) as (a, b):
        await store.seed([cluster("eu-west-1", {A: a, B: b})])
        async with running(store) as checker:
            await until(lambda: _eq(verdicts(store), {A: True, B: True}))
            before = checker.status()[("eu-west-1", A)].probes
            logged = len(changes(caplog))
            a.mode = "flap"  # ok, 503, ok, 503, ...
            started = time.monotonic()
            while time.monotonic() - started < 2.0:
                assert (await verdicts(store))[A] is True
                await asyncio.sleep(0.05)
            probes = checker.status()[("eu-west-1", A)].probes - before
            assert len(changes(caplog)) == logged
            # No drift, no bursts: about one probe per interval.
            print(f"\n{probes} probes in 2.0s at a {INTERVAL}s interval")
            assert 2.0 / INTERVAL - 3 <= probes <= 2.0 / INTERVAL + 2


async def test_every_endpoint_failing_makes_the_checker_suspect(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="geodns.health")
    store = RecordingStore()
    async with ingresses(3) as (a, b, c):
        await store.seed([cluster("eu-west-1", {A: a, B: b}), cluster("us-east-1", {C: c}, region="us-east")])
        async with running(store) as checker:
            await until(lambda: _eq(verdicts(store), {A: True, B: True, C: True}))
            assert checker.readiness() == (True, "ok")
            store.reported.clear()
            for ingress in (a, b, c):  # as if this checker were cut off
                await ingress.stop()
            await until(lambda: _eq(verdicts(store), {A: None, B: None, C: None}))
            assert checker.suspect
            ready, why = checker.readiness()
            assert not ready and why.startswith("suspect (partitioned?): every endpoint failing, 2 places lost")
            assert "event=checker-suspect checker=chk-1 vantage=eu-west endpoints=3" in caplog.text
            await asyncio.sleep(3 * INTERVAL)  # failures keep coming; still no vote
            assert await verdicts(store) == {A: None, B: None, C: None}
            assert all(obs.up is not False for obs in store.reported), "a suspect checker voted down"
            assert {s.state for s in checker.status().values()} == {"down"}

            await b.start()  # anything up again: votes count again
            await until(lambda: _eq(verdicts(store), {A: False, B: True, C: False}))
            assert not checker.suspect and checker.readiness() == (True, "ok")
            assert "event=checker-trusted checker=chk-1" in caplog.text
            latest = {o.endpoint: o for o in store.reported}
            assert (latest[A].reason, latest[B].reason) == ("connection refused", None)
            assert latest[A].down_since is not None and latest[B].down_since is None


async def test_ready_once_every_endpoint_was_probed_and_reported() -> None:
    store = RecordingStore()
    async with ingresses(2) as (a, b):
        await store.seed([cluster("eu-west-1", {A: a, B: b})])
        async with running(store) as checker:
            assert checker.readiness() == (False, "no probe round yet: 0 of 2 endpoints probed and reported")
            await until(lambda: _true(checker.readiness()[0]))
            assert {o.endpoint for o in store.reported} == {A, B}
            assert checker.stats.reports["ok"] >= 1 and checker.stats.last_report_ok is not None


async def test_one_endpoint_failing_alone_is_not_suspect() -> None:
    store = MemoryStore()
    async with ingresses(1) as (a,):
        await store.seed([cluster("eu-west-1", {A: a})])
        async with running(store) as checker:
            await until(lambda: _eq(verdicts(store), {A: True}))
            a.mode = "hang"
            await until(lambda: _eq(verdicts(store), {A: False}))
            assert not checker.suspect and checker.status()[("eu-west-1", A)].reason.startswith("timeout after")


async def test_one_dead_place_is_an_outage_even_for_a_lone_checker(caplog: pytest.LogCaptureFixture) -> None:
    """Both endpoints of the only checked cluster die: one place lost is an outage, voted down (it used
    to make the checker suspect, so the dead cluster stayed in the answers)."""
    caplog.set_level(logging.INFO, logger="geodns.health")
    store = RecordingStore()
    async with ingresses(2) as (a, b):
        await store.seed([cluster("eu-west-1", {A: a, B: b})])
        async with running(store) as checker:
            await until(lambda: _eq(verdicts(store), {A: True, B: True}))
            await a.stop()
            await b.stop()
            await until(lambda: _eq(verdicts(store), {A: False, B: False}))
            await asyncio.sleep(3 * INTERVAL)  # failures keep coming; the votes stand
            assert await verdicts(store) == {A: False, B: False}
            assert not checker.suspect
            assert "event=checker-suspect" not in caplog.text


async def test_a_place_already_down_does_not_make_a_new_outage_look_like_a_partition() -> None:
    """us-east died first (seen while eu-west answered); then eu-west dies too.  Only one place was
    lost *at once*, so it is an outage like any other, not "two places lost: it must be me"."""
    store = MemoryStore()
    async with ingresses(2) as (a, c):
        await store.seed([cluster("eu-west-1", {A: a}), cluster("us-east-1", {C: c}, region="us-east")])
        async with running(store) as checker:
            await until(lambda: _eq(verdicts(store), {A: True, C: True}))
            await c.stop()
            await until(lambda: _eq(verdicts(store), {A: True, C: False}))
            await a.stop()
            await until(lambda: _eq(verdicts(store), {A: False, C: False}))
            await asyncio.sleep(3 * INTERVAL)
            assert await verdicts(store) == {A: False, C: False}
            assert not checker.suspect


async def test_a_down_vote_waits_for_news_from_elsewhere() -> None:
    """fall: 1 and a fast check on A, a slow one on C in another place, both cut at once: A's first
    failure must not be voted before the checker knows whether it reaches anything at all."""
    store = RecordingStore()
    fast = CheckSpec(interval=INTERVAL, timeout=0.15, rise=1, fall=1, jitter=0.0)
    slow = CheckSpec(interval=1.5, timeout=0.15, rise=1, fall=1, jitter=0.0)
    async with ingresses(2) as (a, c):
        await store.seed(
            [cluster("eu-west-1", {A: a}, spec=fast), cluster("us-east-1", {C: c}, spec=slow, region="us-east")]
        )
        async with running(store) as checker:
            await until(lambda: _eq(verdicts(store), {A: True, C: True}))
            seen = c.requests
            await until(lambda: _true(c.requests > seen))  # C was just probed: its next probe is 1.5 s away
            store.reported.clear()
            await a.stop()
            await c.stop()
            await until(lambda: _true(checker.status()[("eu-west-1", A)].state == "down"))
            assert (await verdicts(store))[A] is None  # withheld, not cast
            await until(lambda: _true(checker.suspect), timeout=4.0)  # C failed too: everything lost, 2 places
            assert await verdicts(store) == {A: None, C: None}
            assert all(obs.up is not False for obs in store.reported), "a partition's first casualty was voted down"

            await c.start()  # reached again: A's down vote now stands
            await until(lambda: _eq(verdicts(store), {A: False, C: True}), timeout=4.0)
            assert not checker.suspect


async def test_the_checker_follows_the_table_without_restarting_other_checks() -> None:
    store = MemoryStore()
    async with ingresses(3) as (a, b, c):
        await store.seed([cluster("eu-west-1", {A: a, B: b})])
        async with running(store) as checker:
            await until(lambda: _eq(verdicts(store), {A: True, B: True}))
            key_a = ("eu-west-1", A)
            task_a = checker._checks[key_a].task
            probes_a = checker.status()[key_a].probes

            # An endpoint registered at runtime gets probed; the others keep their task and counters.
            await store.add_endpoint("eu-west-1", EndpointSpec(ipaddress.ip_address(C), probe=c.url))
            await until(lambda: _eq(verdicts(store), {A: True, B: True, C: True}))
            assert checker._checks[key_a].task is task_a
            assert checker.status()[key_a].probes > probes_a
            assert checker.status()[key_a].successes == checker.status()[key_a].probes

            # A deregistered one stops being probed.
            await store.remove_endpoint("eu-west-1", C)
            await until(lambda: _true(("eu-west-1", C) not in checker.status()))
            seen = c.requests
            await asyncio.sleep(3 * INTERVAL)
            assert c.requests == seen

            # A cluster added at runtime gets probed; changing its check restarts only its tasks.
            await store.add_cluster(cluster("us-east-1", {D: c}, region="us-east"))
            await until(lambda: _eq(verdicts(store), {A: True, B: True, D: True}))
            key_d = ("us-east-1", D)
            task_d = checker._checks[key_d].task
            slower = CheckSpec(interval=0.3, timeout=0.15, rise=2, fall=2)
            await store.seed([cluster("us-east-1", {D: c}, spec=slower, region="us-east")])
            await until(lambda: _true(checker._checks[key_d].spec == slower))
            assert checker._checks[key_d].task is not task_d
            assert checker.status()[key_d].state == "up"  # the verdict outlives the spec change
            assert checker._checks[key_a].task is task_a

            # A cluster without a check is not probed.
            await store.seed([cluster("us-east-1", {D: c}, spec=None, region="us-east")])
            await until(lambda: _true(key_d not in checker.status()))
            assert set(checker.status()) == {key_a, ("eu-west-1", B)}


async def _true(value: bool) -> bool:
    return value


async def test_two_checkers_in_redis_and_their_observations_expire(redis_server: RedisServer) -> None:
    url = redis_server.url + "?prefix=h:"
    stores = [RedisStore(url), RedisStore(url), RedisStore(url)]
    admin, store_eu, store_us = stores
    raw = aioredis.from_url(redis_server.url)
    try:
        async with ingresses(2) as (a, b):
            await admin.seed([cluster("eu-west-1", {A: a, B: b})])
            async with running(store_us, "chk-us", "us-east"):
                async with running(store_eu, "chk-eu", "eu-west"):

                    async def both_up() -> bool:
                        snapshot = await admin.load()
                        return all(
                            {(o.checker, o.vantage, o.up) for o in snapshot.observations.get(("eu-west-1", e), ())}
                            == {("chk-eu", "eu-west", True), ("chk-us", "us-east", True)}
                            for e in (A, B)
                        )

                    await until(both_up)
                    snapshot = await admin.load()
                    for obs in snapshot.observations[("eu-west-1", A)]:
                        assert obs.rtt_ms is not None and 0 < obs.rtt_ms < 150
                        assert obs.expires - obs.at == pytest.approx(1.35, abs=0.2)  # max(3 x 0.2, 0.2 + 0.15 + 1)
                    assert await raw.exists("h:obs:chk-eu") == 1
                # chk-eu stopped: its votes expire on their own; chk-us keeps reporting.
                stopped = time.monotonic()

                async def only_us() -> bool:
                    snapshot = await admin.load()
                    return {o.checker for obs in snapshot.observations.values() for o in obs} == {"chk-us"}

                await until(only_us, timeout=4.0)
                print(f"\nstopped checker's observations gone after {time.monotonic() - stopped:.2f}s")
                assert time.monotonic() - stopped >= 0.5
                await until(lambda: _eq(raw.exists("h:obs:chk-eu"), 0), timeout=2.0)
    finally:
        await raw.aclose()
        for store in stores:
            await store.close()


async def test_a_probe_that_outlives_stop_ends_quietly(monkeypatch: pytest.MonkeyPatch) -> None:
    """stop() waits only so long; a probe that swallowed its cancellation must then end, not crash."""
    import geodns.health.checker as checker_module
    from geodns.health.probe import ProbeResult

    monkeypatch.setattr(checker_module, "STOP_TIMEOUT", 0.05)
    started, release = asyncio.Event(), asyncio.Event()
    sessions: list[object] = []

    async def stubborn(target: object, spec: CheckSpec, session: object, resolver: object = None) -> ProbeResult:
        sessions.append(session)
        assert session is not None and not session.closed  # type: ignore[attr-defined]
        started.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await release.wait()  # as a library that swallows the cancellation would
        return ProbeResult(False, None, "timeout")

    monkeypatch.setattr(checker_module, "probe", stubborn)
    store = MemoryStore()
    spec = CheckSpec(interval=0.05, timeout=0.04, jitter=0.0)
    await store.seed(
        [ClusterSpec(name="c", region="eu-west", check=spec, endpoints=(EndpointSpec(ipaddress.ip_address(A)),))]
    )
    checker = Checker(
        store, "chk-1", "eu-west", table_source=types.SimpleNamespace(snapshot=await store.load()), flush_interval=0.05
    )
    await checker.start()
    await asyncio.wait_for(started.wait(), 2.0)
    task = next(t for t in asyncio.all_tasks() if t.get_name() == f"check c {A}")
    await checker.stop()
    assert not task.done()  # still stuck in the probe
    release.set()
    await asyncio.wait_for(task, 2.0)  # ends on its own, without an exception
    assert len(sessions) == 1  # and never probes again


async def test_a_probe_that_raises_counts_as_a_failure_and_the_check_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug inside a probe must show as a failing endpoint with a reason, never as a silently dead check."""
    import geodns.health.checker as checker_module

    calls = 0

    async def broken(target: object, spec: CheckSpec, session: object, resolver: object = None):
        nonlocal calls
        calls += 1
        raise LookupError("a library bug")

    monkeypatch.setattr(checker_module, "probe", broken)
    store = MemoryStore()
    spec = CheckSpec(interval=0.05, timeout=0.04, jitter=0.0, rise=1, fall=2)
    await store.seed(
        [ClusterSpec(name="c", region="eu-west", check=spec, endpoints=(EndpointSpec(ipaddress.ip_address(A)),))]
    )
    checker = Checker(
        store, "chk-1", "eu-west", table_source=types.SimpleNamespace(snapshot=await store.load()), flush_interval=0.05
    )
    await checker.start()
    try:
        await until(lambda: _true(calls >= 4), timeout=3.0)
        status = checker.status()[("c", A)]
        assert status.state == "down"
        assert status.reason == "error: LookupError"
    finally:
        await checker.stop()
