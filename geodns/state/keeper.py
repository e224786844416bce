"""Keeps the snapshot the query path reads: loads it from the store, follows changes, survives outages.

The query path reads ``keeper.snapshot`` (one attribute read, never an await).
A background task subscribes to ``store.changes()``, reloads on each change
(debounced, so a burst of writes becomes one load) and at least every
``resync_interval`` (which also carries changes that are not published, such
as RTT drift).  All loads are sequential in that one task.

Fail static: when the store is unreachable the keeper keeps its last snapshot,
reports ``connected = False`` and a growing ``staleness()``, and reconnects with
jittered exponential backoff.  A store that answers but holds no table
(version 0: never seeded, Redis restarted empty, or its index lost) is treated
the same way — an empty table is never served in place of a good one — and the
optional ``reseed`` coroutine is called so the caller can seed it again (the
server restores it from this keeper's snapshot: see ``Server._seed_store``).

Bad data is not an outage: an entry the store could not load (missing though
the index names it, or failing validation — the store's own checks and the
caller's ``validate``) keeps its last good value from the current snapshot, is
logged by name once, and is listed in ``problems`` (``/readyz``, metrics) until
it loads again.  A partial table is never swapped in.

Versions only go forward, with one exception: after a store reset the version
starts again from 1.  So a lower version is accepted on the first load after a
reconnect or after the store was seen unseeded, or when two loads in a row
agree on it (a reset the keeper did not otherwise notice, e.g. a peer re-seeded
a wiped Redis between two of our loads).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from types import MappingProxyType

from .model import Cluster, Snapshot
from .store import StateStore, StoreUnavailable

log = logging.getLogger(__name__)


STOP_TIMEOUT = 1.0


class SnapshotKeeper:
    def __init__(
        self,
        store: StateStore,
        seed: Snapshot,
        resync_interval: float = 5.0,
        on_change: Callable[[Snapshot], None] | None = None,
        reseed: Callable[[], Awaitable[object]] | None = None,
        *,
        validate: Callable[[Cluster], Iterable[str]] | None = None,
        debounce: float = 0.05,
        min_backoff: float = 0.1,
        max_backoff: float = 5.0,
    ):
        self.store = store
        self.snapshot = seed
        self.connected = False
        self.last_sync: float | None = None  # wall-clock time of the last successful load
        self.errors = 0
        self.resync_interval = resync_interval
        self.on_change = on_change
        self.reseed = reseed
        self.validate = validate
        self.problems: dict[str, str] = {}  # store entries not taken, by key -> why (see module doc)
        self.debounce = debounce
        self.min_backoff, self.max_backoff = min_backoff, max_backoff
        self._synced_at: float | None = None  # monotonic twin of last_sync
        self._attempted_at = 0.0  # monotonic time of the last load attempt
        self._trust_next = False  # accept a lower version on the next load
        self._unseeded_warned = False
        self._disconnected_at: float | None = None
        self._dirty = asyncio.Event()
        self._loading = asyncio.Lock()  # loads stay sequential even when callers sync too
        self._task: asyncio.Task[None] | None = None

    def staleness(self) -> float:
        """Seconds since the last successful load; ``inf`` if there has been none."""
        return math.inf if self._synced_at is None else time.monotonic() - self._synced_at

    async def start(self) -> None:
        """Load once (keeping the seed snapshot if the store is down), then follow in the background."""
        try:
            await self.sync()
        except StoreUnavailable as exc:
            self._lost(exc)
        except Exception as exc:  # corrupt data in the store must not stop a server from starting
            log.exception("loading the state store failed; serving the seed snapshot")
            self._lost(exc)
        self._task = asyncio.create_task(self._run(), name="snapshot-keeper")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            # Bounded: redis-py can swallow a cancellation mid-read and wait on
            # its connection; closing the store afterwards releases it, and a
            # server must always be able to stop.
            done, _ = await asyncio.wait({task}, timeout=STOP_TIMEOUT)
            if not done:
                log.warning("event=keeper-stop-timeout the state feed did not stop within %.0f s", STOP_TIMEOUT)
            elif not task.cancelled() and task.exception() is not None:
                log.debug("keeper ended with %r", task.exception())

    async def sync(self) -> bool:
        """Load the store now and swap the snapshot if it is news; True if swapped.

        Raises ``StoreUnavailable``.  Public so a writer (the admin API) can make
        its own change visible before it answers.
        """
        async with self._loading:
            return await self._sync()

    async def _sync(self) -> bool:
        self._attempted_at = time.monotonic()
        snapshot = await self.store.load()
        self._connected()
        if snapshot.version == 0:
            await self._unseeded()
            return False
        self._unseeded_warned = False
        current = self.snapshot
        snapshot = self._keep_last_good(snapshot, current)
        if snapshot.version < current.version and not self._trust_next:
            log.warning(
                "state store version went back from %d to %d; accepting it if the next load agrees",
                current.version,
                snapshot.version,
            )
            self._trust_next = True
            return False
        self._trust_next = False
        self.last_sync, self._synced_at = time.time(), time.monotonic()
        if (
            snapshot.version == current.version
            and snapshot.clusters == current.clusters
            and snapshot.observations == current.observations
            and snapshot.loads == current.loads
            and snapshot.leases == current.leases
        ):
            return False
        self.snapshot = snapshot
        if self.on_change is not None:
            try:
                self.on_change(snapshot)
            except Exception:
                log.exception("snapshot on_change callback failed")
        return True

    def _keep_last_good(self, loaded: Snapshot, current: Snapshot) -> Snapshot:
        """``loaded`` with every cluster it could not take replaced by its value in ``current``."""
        problems = dict(loaded.problems)
        clusters = dict(loaded.clusters)
        if self.validate is not None:
            for name, cluster in loaded.clusters.items():
                reasons = list(self.validate(cluster))
                if reasons:
                    problems[f"cluster:{name}"] = "; ".join(reasons)
                    del clusters[name]
        leases = dict(loaded.leases)
        for key in problems:
            name = key.removeprefix("cluster:")
            if key.startswith("cluster:") and name in current.clusters:
                clusters[name] = current.clusters[name]
            held = key.removeprefix("lease:")
            if key.startswith("lease:") and held in current.leases:
                leases[held] = current.leases[held]
        self._report(problems)
        if not problems and not loaded.problems:
            return loaded
        return replace(
            loaded,
            clusters=MappingProxyType(clusters),
            problems=MappingProxyType(problems),
            leases=MappingProxyType(leases),
        )

    def _report(self, problems: dict[str, str]) -> None:
        """Log each bad entry once (and when it is fixed); ``self.problems`` feeds /readyz and metrics."""
        for key, reason in sorted(problems.items()):
            if self.problems.get(key) != reason:
                name = key.removeprefix("cluster:")
                kept = name in self.snapshot.clusters if key.startswith("cluster:") else False
                log.error(
                    "event=store-data-invalid entry=%s reason=%r keeping=%s",
                    key,
                    reason,
                    f"last-good-{name}" if kept else "nothing (no good value known)",
                )
        for key in sorted(set(self.problems) - set(problems)):
            log.warning("event=store-data-valid-again entry=%s", key)
        self.problems = problems

    async def _unseeded(self) -> None:
        """The store answers but has no table: keep serving ours and ask the caller to seed it."""
        self._trust_next = True
        if not self._unseeded_warned:
            log.warning(
                "state store holds no table (not seeded, wiped, or its index lost); serving snapshot version %d%s",
                self.snapshot.version,
                "; re-seeding it" if self.reseed else "",
            )
            self._unseeded_warned = True
        if self.reseed is not None:
            try:
                await self.reseed()
            except StoreUnavailable:
                raise
            except Exception:
                log.exception("re-seeding the state store failed")

    def _connected(self) -> None:
        if not self.connected:
            if self._disconnected_at is not None:
                log.warning(
                    "state store reachable again after %.1fs; resyncing", time.monotonic() - self._disconnected_at
                )
            self.connected = True
            self._disconnected_at = None

    def _lost(self, exc: BaseException) -> None:
        self.errors += 1
        self._trust_next = True
        if self.connected or self._disconnected_at is None:
            log.warning(
                "state store unavailable (%s); serving snapshot version %d until it is back", exc, self.snapshot.version
            )
            self._disconnected_at = time.monotonic()
        self.connected = False

    async def _run(self) -> None:
        backoff = self.min_backoff
        while True:
            synced_before = self._synced_at
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except StoreUnavailable as exc:
                self._lost(exc)
            except Exception as exc:  # a bug or corrupt data must not stop the keeper
                log.exception("state keeper failed; retrying")
                self._lost(exc)
            if self._synced_at != synced_before:
                backoff = self.min_backoff  # it worked in between: a new outage starts the backoff again
            await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
            backoff = min(backoff * 2, self.max_backoff)

    async def _follow(self) -> None:
        """Follow the change feed, loading on news and every ``resync_interval``; returns only by raising."""
        feed_task = asyncio.create_task(self._consume_feed())
        try:
            while True:
                wait_dirty = asyncio.create_task(self._dirty.wait())
                timeout = max(0.0, self._attempted_at + self.resync_interval - time.monotonic())
                timeout = min(timeout, self._until_first_expiry())
                try:
                    await asyncio.wait({feed_task, wait_dirty}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    wait_dirty.cancel()
                if feed_task.done():
                    feed_task.result()  # raises what broke the feed
                    raise StoreUnavailable("state store change feed ended")
                if self._dirty.is_set():
                    await asyncio.sleep(self.debounce)
                    self._dirty.clear()
                await self.sync()
        finally:
            feed_task.cancel()
            done, _ = await asyncio.wait({feed_task}, timeout=STOP_TIMEOUT)
            if done and not feed_task.cancelled():
                feed_task.exception()  # retrieved: a broken feed is already handled above

    def _until_first_expiry(self, margin: float = 0.5, floor: float = 0.1) -> float:
        """Seconds until the first observation in our snapshot lapses, less ``margin``.

        Checkers refresh observations without publishing (only verdict changes
        are), and with short check intervals an observation lives shorter than
        ``resync_interval``: without this re-read a down verdict would lapse from
        our copy, the endpoint would read "unknown" (answered as up) and traffic
        would go back to a dead cluster until the next resync.
        """
        now = time.time()
        expiries = [o.expires for obs in self.snapshot.observations.values() for o in obs]
        # Leases renew without publishing too: re-read before one we hold lapses, so a live agent's
        # registrations never look stale here (nor get removed after a short grace).
        expiries += [lease.expires for lease in self.snapshot.leases.values() if lease.expires > now]
        if not expiries:
            return math.inf
        return max(floor, min(expiries) - now - margin)

    async def _consume_feed(self) -> None:
        feed = self.store.changes()
        try:
            async for _version in feed:
                # The first version comes right after subscribing: always load once then,
                # so a change between our last load and the subscription is not missed.
                self._dirty.set()
        finally:
            # RuntimeError: the loop is being torn down with the feed mid-read; nothing left to close.
            with contextlib.suppress(RuntimeError):
                await feed.aclose()
