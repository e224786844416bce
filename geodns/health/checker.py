"""The checker: one task per endpoint check, rise/fall, batched observations, suspect mode.

What it probes follows the table, not the config: it reads ``table_source.snapshot``
(a ``SnapshotKeeper`` in practice, which the caller starts and stops) every
``poll_interval`` and reconciles its tasks when the clusters change -- a new
endpoint gets a task, a removed one loses it, a changed check spec or target
restarts only that endpoint's task (keeping its health, so a spec edit does not
turn a down endpoint "unknown").  Clusters without a ``check`` are not probed;
their endpoints have no verdict and the DNS side answers them by its ``unknown``
policy (up by default).

Scheduling: each task probes at ``start + n * interval`` where ``start`` is now
plus a random offset within ``jitter * interval`` drawn once, so checks never
drift and never fire in lock-step.  A semaphore bounds concurrent probes; a
task that falls behind (waiting for a slot) skips the slots it missed rather
than bursting.

Reporting: every probe result queues the endpoint's observation; a flusher
writes the queue with one ``store.report()`` every ``flush_interval``, or at
once when a verdict changes.  Each observation expires after
``max(3 * interval, interval + timeout + 1)`` seconds, so a checker that dies
stops counting within a few intervals.  The observation carries the state after
hysteresis: ``up`` True/False, or None while still ``unknown``, with why the
endpoint last failed (``reason``, until it is up again) and, for a down vote,
since when this checker holds it down (``down_since``).  ``stats`` counts
probes by outcome, their durations and the reports; ``readiness()`` says whether
a full round has reached the store (``geodns check``'s /readyz).

Partition or outage (see ``places``): a down verdict is cast only once the
checker has reached something since that endpoint began failing, so a
partition's first casualty is never voted out.  When the latest probe of every
endpoint failed, the places lost at once decide: two or more, or one that
every other checker sees up, is a partition -- the checker goes
*suspect* and reports ``up=None`` for every endpoint (the DNS side's quorum
counts only verdicts, so ``None`` is no vote) until a probe succeeds or, for one
place, until another checker stops seeing it up.  One place lost, with nobody
else seeing it up, is an outage: its endpoints are voted down, so a lone
checker takes a dead cluster out instead of failing open on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from dataclasses import dataclass
from typing import Protocol

import aiohttp

from ..config.model import CheckSpec
from ..state.model import LoadReport, Observation, Snapshot
from ..state.store import StateStore, StoreUnavailable
from .hysteresis import DOWN, Health, advance
from .places import confirmed, judge_loss, lost_at_once, lost_everything, others_see_up, place_of
from .probe import HostResolver, ProbeResult, new_session, probe
from .stats import CheckerStats
from .target import Target, TargetError, check_for, resolve_target

log = logging.getLogger(__name__)

CheckKey = tuple[str, str]  # (cluster, endpoint address as text)

STOP_TIMEOUT = 2.0  # seconds stop() waits for tasks, and then for the last flush


class TableSource(Protocol):
    """Anything with a current ``snapshot`` attribute; ``SnapshotKeeper`` is one."""

    @property
    def snapshot(self) -> Snapshot: ...


@dataclass(frozen=True, slots=True)
class EndpointStatus:
    """One endpoint as this checker sees it, for the admin API and metrics."""

    cluster: str
    endpoint: str
    target: str | None  # what is dialled; None when the probe target is invalid
    state: str  # unknown | up | down
    successes: int  # consecutive
    failures: int  # consecutive
    rtt_ms: float | None  # smoothed
    reason: str  # the latest probe's reason (or why it cannot be probed)
    probes: int
    last_probe_at: float | None  # unix seconds
    failure: str = ""  # why it last failed, until it is up again ("HTTP 503")
    down_since: float | None = None  # unix seconds the state became down; None unless down


def expiry(spec: CheckSpec) -> float:
    """How long an observation counts: a few intervals, and always longer than one probe cycle."""
    return max(3 * spec.interval, spec.interval + spec.timeout + 1.0)


class _Check:
    """One endpoint's check: its spec and target, its health, and the task that probes it."""

    __slots__ = (
        "key",
        "place",
        "spec",
        "target",
        "error",
        "health",
        "task",
        "last_at",
        "failing_since",
        "down_since",
        "reported",
        "load",
    )

    def __init__(
        self, key: CheckKey, place: str, spec: CheckSpec, target: Target | None, error: str | None, health: Health
    ) -> None:
        self.key = key
        self.place = place
        self.spec = spec
        self.target = target
        self.error = error
        self.health = health
        self.task: asyncio.Task[None] | None = None
        self.last_at: float | None = None
        self.failing_since: float | None = None  # when the current failing streak's first probe ended
        self.down_since: float | None = None  # when the state became down (None unless down)
        self.reported = False  # an observation of it reached the store
        self.load: float | None = None  # read from the latest response, if the check says where


class Checker:
    def __init__(
        self,
        store: StateStore,
        checker_id: str,
        vantage: str,
        *,
        table_source: TableSource,
        max_concurrency: int = 256,
        flush_interval: float = 0.2,
        poll_interval: float = 0.2,
        resolver: tuple[str, int] | None = None,
    ) -> None:
        self.store = store
        self.checker_id = checker_id
        self.vantage = vantage
        self.table_source = table_source
        self.max_concurrency = max_concurrency
        self.flush_interval = flush_interval
        self.poll_interval = poll_interval
        # Host-name endpoints are dialled at the addresses this DNS server gives (the config's
        # ``resolver:``), the ones flattening answers; None: the system's resolver.  A reload
        # switches it (``use_resolver``).
        self._resolver = HostResolver(resolver)
        self._checks: dict[CheckKey, _Check] = {}
        self._probed = 0  # checks with a valid target
        self._failing = 0  # of those, how many failed their latest probe
        self._places: dict[str, int] = {}  # place -> checks with a valid target there
        self._last_reach = -math.inf  # when a probe last succeeded (any endpoint)
        self._held: dict[CheckKey, _Check] = {}  # down verdicts withheld until confirmed
        self._generation = 0  # bumped by every reconcile
        self._lost: tuple[tuple[float, int], list[CheckKey], int] = ((math.nan, -1), [], 0)  # see _lost_at_once
        self._cross: tuple[object, object, float, bool] = (None, None, 0.0, False)  # see _others_see_up
        self._suspect = False
        self._suspect_why = ""
        self.stats = CheckerStats()
        self._round_reported = False  # every endpoint was probed and reported once (see readiness)
        self._store_error = ""
        self._pending: dict[CheckKey, _Check] = {}
        self._urgent = asyncio.Event()
        self._slots = asyncio.Semaphore(max_concurrency)
        self._session: aiohttp.ClientSession | None = None
        self._background: list[asyncio.Task[None]] = []
        self._dropped: set[asyncio.Task[None]] = set()  # cancelled, not yet finished
        self._seen: Snapshot | None = None
        self._store_down = False
        self._random = random.Random()

    # -- life cycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Open the HTTP client, start a task per endpoint of the current table, then follow it."""
        self._session = new_session(self.max_concurrency, self._resolver)
        self._follow(self.table_source.snapshot)
        self._background = [
            asyncio.create_task(self._watch(), name=f"checker-{self.checker_id}-watch"),
            asyncio.create_task(self._flusher(), name=f"checker-{self.checker_id}-flush"),
        ]
        log.info(
            "event=checker-started checker=%s vantage=%s endpoints=%d", self.checker_id, self.vantage, len(self._checks)
        )

    def use_resolver(self, server: tuple[str, int] | None) -> None:
        """Dial host names at the addresses ``server`` gives from now on (a reload changed the
        config's ``resolver:``; None: the system's), forgetting what the old one said."""
        if server == self._resolver.server:
            return
        self._resolver.use(server)
        if self._session is not None:
            connector = self._session.connector
            if isinstance(connector, aiohttp.TCPConnector):
                connector.clear_dns_cache()
        log.info("event=checker-resolver resolver=%s", f"{server[0]}:{server[1]}" if server is not None else "system")

    async def stop(self) -> None:
        """Cancel every task, write what is queued (briefly: the store may be the thing that is down), close."""
        tasks = self._background + [c.task for c in self._checks.values() if c.task is not None]
        tasks += self._dropped
        self._background = []
        for task in tasks:
            task.cancel()
        if tasks:
            # A probe stuck in a library must not hold up a stop; one still running
            # afterwards finds no session and ends (see _run).
            await asyncio.wait(tasks, timeout=STOP_TIMEOUT)
        for check in self._checks.values():
            check.task = None
        with contextlib.suppress(asyncio.TimeoutError, TimeoutError):
            await asyncio.wait_for(self._flush(), STOP_TIMEOUT)
        session, self._session = self._session, None  # cleared first: no probe starts on a closing session
        if session is not None:
            await session.close()
        log.info("event=checker-stopped checker=%s", self.checker_id)

    # -- what callers read ----------------------------------------------------------------
    @property
    def suspect(self) -> bool:
        """True while this checker believes it is cut off (a partition) and withholds its votes."""
        return self._suspect

    def status(self) -> dict[CheckKey, EndpointStatus]:
        """Every endpoint this checker knows, keyed by (cluster, endpoint)."""
        return {
            key: EndpointStatus(
                cluster=key[0],
                endpoint=key[1],
                target=str(c.target) if c.target else None,
                state=c.health.state,
                successes=c.health.successes,
                failures=c.health.failures,
                rtt_ms=c.health.rtt_ms,
                reason=c.error or c.health.reason,
                probes=c.health.probes,
                last_probe_at=c.last_at,
                failure=c.health.failure,
                down_since=c.down_since,
            )
            for key, c in self._checks.items()
        }

    def readiness(self) -> tuple[bool, str]:
        """Ready once every endpoint was probed and reported to the store, while the store takes
        reports and this checker is not suspect; else False and why (``geodns check``'s /readyz)."""
        if self._store_down:
            return False, f"store unreachable: {self._store_error}"
        if not self._round_reported:
            probed = [c for c in self._checks.values() if c.target is not None]
            done = sum(c.reported for c in probed)
            if done < len(probed):
                return False, f"no probe round yet: {done} of {len(probed)} endpoints probed and reported"
            self._round_reported = True
        if self._suspect:
            return False, f"suspect (partitioned?): {self._suspect_why}; votes withheld"
        return True, "ok"

    # -- following the table --------------------------------------------------------------
    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                self._follow(self.table_source.snapshot)
            except Exception:  # a bug in one reconcile must not stop the checker
                log.exception("event=checker-reconcile-failed checker=%s", self.checker_id)

    def _follow(self, snapshot: Snapshot) -> None:
        seen = self._seen
        if seen is snapshot:
            return
        self._seen = snapshot
        if seen is None or seen.clusters != snapshot.clusters:
            self.reconcile(snapshot)

    def reconcile(self, snapshot: Snapshot) -> None:
        """Make the running checks match ``snapshot``'s clusters; leave unchanged ones alone."""
        wanted: dict[CheckKey, tuple[str, CheckSpec, Target | None, str | None]] = {}
        for cluster in snapshot.clusters.values():
            if cluster.check is None:
                continue
            place = place_of(cluster)
            for endpoint in cluster.endpoints:
                key = (cluster.name, endpoint.key)
                spec = check_for(endpoint, cluster.check)
                try:
                    wanted[key] = (place, spec, resolve_target(endpoint, spec), None)
                except TargetError as exc:
                    wanted[key] = (place, spec, None, f"bad probe target: {exc}")
        self._generation += 1
        for key in [k for k in self._checks if k not in wanted]:
            self._drop(self._checks.pop(key))
            self.stats.forget(key)
        for key, (place, spec, target, error) in wanted.items():
            old = self._checks.get(key)
            if old is not None and (old.place, old.spec, old.target, old.error) == (place, spec, target, error):
                continue
            if old is not None:
                self._drop(old)
            if error is not None:
                log.error("event=health-unprobed endpoint=%s cluster=%s reason=%s", key[1], key[0], _quote(error))
            check = _Check(key, place, spec, target, error, old.health if old is not None else Health())
            if old is not None:
                check.failing_since, check.down_since = old.failing_since, old.down_since
            self._checks[key] = check
            if target is not None:
                self._probed += 1
                self._failing += check.health.last_ok is False
                self._places[place] = self._places.get(place, 0) + 1
                check.task = asyncio.create_task(self._run(check), name=f"check {key[0]} {key[1]}")

    def _drop(self, check: _Check) -> None:
        if check.task is not None:
            check.task.cancel()
            self._dropped.add(check.task)
            check.task.add_done_callback(self._dropped.discard)
            check.task = None
        if check.target is not None:
            self._probed -= 1
            self._failing -= check.health.last_ok is False
            left = self._places[check.place] - 1
            if left:
                self._places[check.place] = left
            else:
                del self._places[check.place]
        self._pending.pop(check.key, None)
        self._held.pop(check.key, None)

    # -- probing --------------------------------------------------------------------------
    async def _run(self, check: _Check) -> None:
        """Probe on a fixed grid: start + n * interval, start jittered once."""
        spec, target = check.spec, check.target
        assert target is not None
        loop = asyncio.get_running_loop()
        start = loop.time() + self._random.uniform(0.0, spec.jitter * spec.interval)
        n = 0
        while True:
            delay = start + n * spec.interval - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            async with self._slots:
                session = self._session
                if session is None:
                    return  # stopped: a task that outlived stop()'s wait ends here, quietly
                began = loop.time()
                try:
                    result = await probe(target, spec, session, self._resolver)
                except Exception as exc:  # a probe bug must fail this probe, not end the check
                    log.debug("probe of %s raised", check.key, exc_info=True)
                    result = ProbeResult(False, None, f"error: {type(exc).__name__}")
                if self._checks.get(check.key) is check:  # not counted for an endpoint just removed
                    self.stats.probed(check.key, result.outcome, loop.time() - began)
            if self._session is None:
                return
            try:
                self._record(check, result)
            except Exception:
                log.exception("event=checker-record-failed endpoint=%s cluster=%s", check.key[1], check.key[0])
            n = max(n + 1, math.floor((loop.time() - start) / spec.interval) + 1)

    def _record(self, check: _Check, result: ProbeResult) -> None:
        if self._checks.get(check.key) is not check:
            return  # replaced or removed while probing
        old = check.health
        new = advance(old, result.ok, result.rtt_ms, result.reason, check.spec.rise, check.spec.fall)
        now = time.time()
        check.health, check.last_at, check.load = new, now, result.load
        if result.ok:
            check.failing_since = None
            self._last_reach = now
        elif old.last_ok is not False:
            check.failing_since = now
        if new.state != DOWN:
            check.down_since = None
        elif old.state != DOWN:
            check.down_since = now
        self._failing += (new.last_ok is False) - (old.last_ok is False)
        self._pending[check.key] = check
        if new.state != old.state:
            log.info(
                "event=health-change endpoint=%s cluster=%s old=%s new=%s reason=%s checker=%s",
                check.key[1],
                check.key[0],
                old.state,
                new.state,
                _quote(result.reason),
                self.checker_id,
            )
            self._urgent.set()
        self._judge(check)

    def _judge(self, check: _Check) -> None:
        """After a result: enter or leave suspect mode, release withheld down votes (see ``places``)."""
        if not lost_everything(self._probed, self._failing):
            if self._suspect:
                self._set_suspect(False, f"{check.key[0]}/{check.key[1]} answered")
            elif self._held and check.health.last_ok:
                self._release("reached")  # reached something: the withheld down votes are news
            return
        keys, places = self._lost_at_once()
        partition, why = judge_loss(places, places == 1 and self._others_see_up(keys))
        if partition != self._suspect:
            self._set_suspect(partition, why)
        elif self._held and not partition:
            self._release(why)  # an outage: the withheld down votes stand

    def _lost_at_once(self) -> tuple[list[CheckKey], int]:
        """With everything failing: the endpoints of the places lost at once, and how many places.

        Neither changes while everything keeps failing (no success moves
        ``_last_reach``), so it is worked out once per loss and table.
        """
        key = (self._last_reach, self._generation)
        seen, keys, places = self._lost
        if seen != key:
            probed = [c for c in self._checks.values() if c.target is not None]
            lost = lost_at_once(((c.place, c.failing_since) for c in probed), self._last_reach)
            keys, places = [c.key for c in probed if c.place in lost], len(lost)
            self._lost = (key, keys, places)
        return keys, places

    def _others_see_up(self, keys: list[CheckKey]) -> bool:
        """Whether every other checker judging the place lost at once (``keys``) sees it up.

        Asked after every failing result while everything is lost, so it is kept
        for one ``poll_interval`` per snapshot (observations also expire while a
        snapshot stays the same).
        """
        snapshot, now = self.table_source.snapshot, time.time()
        seen, seen_keys, until, answer = self._cross
        if seen is not snapshot or seen_keys is not keys or now >= until:
            answer = others_see_up(snapshot, keys, self.checker_id, now)
            self._cross = (snapshot, keys, now + self.poll_interval, answer)
        return answer

    def _release(self, why: str) -> None:
        log.info(
            "event=checker-votes-released checker=%s endpoints=%d reason=%s",
            self.checker_id,
            len(self._held),
            _quote(why),
        )
        self._pending.update(self._held)
        self._held.clear()
        self._urgent.set()

    def _set_suspect(self, suspect: bool, why: str) -> None:
        self._suspect, self._suspect_why = suspect, why
        log.warning(
            "event=%s checker=%s vantage=%s endpoints=%d places=%d reason=%s",
            "checker-suspect" if suspect else "checker-trusted",
            self.checker_id,
            self.vantage,
            self._probed,
            len(self._places),
            _quote(why),
        )
        # Every verdict this checker published changes meaning: republish them all now.
        self._held.clear()
        for key, check in self._checks.items():
            if check.target is not None and check.last_at is not None:
                self._pending[key] = check
        self._urgent.set()

    def _vote(self, check: _Check) -> bool | None:
        """What an observation says: the verdict, unless suspect or a down vote not yet confirmed."""
        if self._suspect:
            return None
        verdict = check.health.verdict
        if (
            verdict is False
            and not confirmed(check.failing_since, self._last_reach)
            and not lost_everything(self._probed, self._failing)
        ):
            self._held[check.key] = check  # cast once the checker reaches something (or it is an outage)
            return None
        return verdict

    # -- reporting ------------------------------------------------------------------------
    async def _flusher(self) -> None:
        while True:
            with contextlib.suppress(asyncio.TimeoutError, TimeoutError):
                await asyncio.wait_for(self._urgent.wait(), self.flush_interval)
            self._urgent.clear()
            await self._flush()

    def _observation(self, check: _Check, now: float) -> Observation:
        up = self._vote(check)
        return Observation(
            checker=self.checker_id,
            vantage=self.vantage,
            cluster=check.key[0],
            endpoint=check.key[1],
            up=up,
            rtt_ms=check.health.rtt_ms if up else None,
            at=check.last_at if check.last_at is not None else now,
            expires=now + expiry(check.spec),
            reason=check.health.failure or None,
            down_since=check.down_since if up is False else None,
        )

    async def _flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, {}
        now = time.time()
        observations = [self._observation(c, now) for key, c in batch.items() if self._checks.get(key) is c]
        loads = [
            LoadReport(self.checker_id, c.key[0], c.key[1], c.load, c.last_at or now, now + expiry(c.spec))
            for key, c in batch.items()
            if c.load is not None and self._checks.get(key) is c
        ]
        try:
            await self.store.report(observations)
            if loads:
                await self.store.report_load(loads)
        except StoreUnavailable as exc:
            self.stats.reports["failed"] += 1
            self._store_error = str(exc)
            for key, check in batch.items():
                self._pending.setdefault(key, check)  # retried with the next flush
            if not self._store_down:
                log.warning(
                    "event=checker-store-unavailable checker=%s error=%s; retrying", self.checker_id, _quote(str(exc))
                )
            self._store_down = True
            return
        except Exception:
            self.stats.reports["failed"] += 1
            log.exception("event=checker-report-failed checker=%s observations=%d", self.checker_id, len(observations))
            return
        self.stats.reports["ok"] += 1
        self.stats.last_report_ok = time.time()
        for check in batch.values():
            check.reported = True
        if self._store_down:
            log.warning("event=checker-store-available checker=%s", self.checker_id)
            self._store_down = False


def _quote(text: str) -> str:
    """A log value in double quotes (key="a b"), with inner double quotes made single."""
    return '"' + text.replace('"', "'") + '"'
