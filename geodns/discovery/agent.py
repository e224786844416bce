"""``geodns agent``: one per Kubernetes cluster, publishing what the cluster serves into the store.

It follows Services, Ingresses and Gateways (``kube.Follower``, one per kind), works out the
registrations from their ``geodns.io/*`` annotations and status addresses (``objects``), and
keeps them in the store under this cluster's lease (``StateStore.publish_lease``):

- Nothing is published until every kind has been listed once, so a restarted agent never
  publishes a partial set (which would take names out of DNS for a moment).
- After that, every change is published within ``coalesce`` seconds (a burst of events is one
  write), and the lease is renewed every ``renew`` seconds to last ``ttl`` seconds.  A renewal
  the store refuses (it lost the lease: wiped, or the lease forgotten) publishes the whole set.
- Stopping the agent publishes nothing: its registrations stay until the lease lapses and then
  the DNS side's grace ends, so a rolling update of the agent changes no answer.
- A store that cannot be reached is retried at the next renewal; the watches go on meanwhile.

For the orchestrator (``geodns agent --http-listen``): ``liveness`` fails only when a watch or the
lease keeper has ended (a restart is the remedy; a store outage is not one), ``readiness`` until
every kind is listed and the lease is held (a rolling update then waits for the new agent).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Iterable
from typing import Protocol

from ..state.model import Lease, Registration
from ..state.store import StateStore, StoreUnavailable
from . import objects

log = logging.getLogger("geodns.agent")


class Source(Protocol):
    """One kind's objects as the API holds them (``kube.Follower``)."""

    kind: str
    objects: dict[str, dict]
    synced: asyncio.Event

    async def run(self) -> None: ...


class Agent:
    def __init__(
        self,
        store: StateStore,
        cluster: str,
        region: str,
        *,
        agent_id: str | None = None,
        renew: float = 10.0,
        ttl: float = 30.0,
        coalesce: float = 0.05,
    ) -> None:
        if renew >= ttl:
            raise ValueError(f"the lease must be renewed more often than it lasts (renew {renew}s, ttl {ttl}s)")
        self.store = store
        self.cluster, self.region = cluster, region
        self.agent_id = agent_id or socket.gethostname()
        self.renew, self.ttl, self.coalesce = renew, ttl, coalesce
        self.sources: list[Source] = []
        self.published: tuple[Registration, ...] | None = None  # what the store holds from us
        self.publishes = 0
        self._dirty = asyncio.Event()
        self._problems: dict[str, tuple[str, ...]] = {}  # object -> what was wrong with its annotations
        self._tasks: list[asyncio.Task] = []
        self.lease_expires = 0.0  # unix time the lease we last wrote lapses (0: none written yet)
        self._store_error = ""  # the latest store failure, for readiness

    def liveness(self) -> tuple[bool, str]:
        """False once a task that should run for ever has ended (a bug, or an error it gave up on)."""
        for task in self._tasks:
            if task.done() and not task.cancelled():
                error = task.exception()
                return False, f"{task.get_name()} ended: {error!r}" if error else f"{task.get_name()} ended"
        return True, "ok"

    def readiness(self) -> tuple[bool, str]:
        """Ready once every kind is listed and the store holds our lease, renewed in time."""
        waiting = [s.kind for s in self.sources if not s.synced.is_set()]
        if waiting or not self.sources:
            return False, f"listing {', '.join(waiting) or 'nothing yet'} (nothing is published before)"
        now = time.time()
        if self.lease_expires <= now:
            why = f"store unavailable: {self._store_error}" if self._store_error else "not published yet"
            return False, f"lease not held ({why})"
        registrations = len(self.published or ())
        return True, f"ok: {registrations} registrations, lease held for {self.lease_expires - now:.0f}s more"

    def changed(self) -> None:
        """A source's objects changed: publish soon."""
        self._dirty.set()

    def registrations(self) -> tuple[Registration, ...]:
        """Everything this cluster registers now, in a stable order; bad annotations logged once."""
        out: list[Registration] = []
        problems: dict[str, tuple[str, ...]] = {}
        for source in self.sources:
            for name, obj in sorted(source.objects.items()):
                found = objects.registrations(source.kind, obj)
                out.extend(found.registrations)
                if found.problems:
                    problems[f"{source.kind} {name}"] = found.problems
        for what, reasons in problems.items():
            if self._problems.get(what) != reasons:
                log.warning("event=agent-annotation-invalid object=%r problems=%r", what, "; ".join(reasons))
        self._problems = problems
        return tuple(sorted(out, key=lambda r: (r.name, r.source)))

    async def start(self, sources: Iterable[Source]) -> None:
        self.sources = list(sources)
        self._tasks = [asyncio.create_task(s.run(), name=f"agent-{s.kind}") for s in self.sources]
        self._tasks.append(asyncio.create_task(self._keep(), name="agent-lease"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []

    async def _keep(self) -> None:
        await asyncio.gather(*(s.synced.wait() for s in self.sources))
        log.info(
            "event=agent-synced cluster=%s kinds=%s objects=%d",
            self.cluster,
            ",".join(s.kind for s in self.sources),
            sum(len(s.objects) for s in self.sources),
        )
        renew_at = 0.0
        while True:
            try:
                if self._dirty.is_set() or self.published is None:
                    await asyncio.sleep(self.coalesce)
                    self._dirty.clear()
                    current = self.registrations()
                    if current != self.published:
                        await self._publish(current)
                        renew_at = time.monotonic() + self.renew
                if time.monotonic() >= renew_at:
                    await self._renew()
                    renew_at = time.monotonic() + self.renew
            except StoreUnavailable as exc:
                self._store_error = str(exc)
                log.warning("event=agent-store-unavailable error=%r retry_in=%.1fs", str(exc), self.renew)
                renew_at = time.monotonic() + self.renew
                self._dirty.set()
                await asyncio.sleep(min(self.renew, 1.0))
                continue
            with contextlib.suppress(asyncio.TimeoutError, TimeoutError):
                await asyncio.wait_for(self._dirty.wait(), max(0.0, renew_at - time.monotonic()))

    def _lease(self, registrations: tuple[Registration, ...]) -> Lease:
        now = time.time()
        return Lease(self.cluster, self.region, self.agent_id, registrations, now, now + self.ttl)

    async def _publish(self, registrations: tuple[Registration, ...]) -> None:
        lease = self._lease(registrations)
        await self.store.publish_lease(lease)
        self.lease_expires, self._store_error = lease.expires, ""
        before = self.published or ()
        self.published = registrations
        self.publishes += 1
        log.info(
            "event=agent-published cluster=%s registrations=%d added=%s removed=%s",
            self.cluster,
            len(registrations),
            ",".join(sorted({r.name for r in registrations} - {r.name for r in before})) or "-",
            ",".join(sorted({r.name for r in before} - {r.name for r in registrations})) or "-",
        )

    async def _renew(self) -> None:
        now = time.time()
        if await self.store.renew_lease(self.cluster, self.agent_id, now, now + self.ttl):
            self.lease_expires, self._store_error = now + self.ttl, ""
        else:
            log.warning(
                "event=agent-lease-lost cluster=%s (the store has no lease of ours): publishing again", self.cluster
            )
            await self._publish(self.registrations())
