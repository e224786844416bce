"""``memory://``: the table in this process, for a single server with an embedded checker.

Every method runs without awaiting between its read and its write, so each is
atomic on the event loop without a lock.  The change feed wakes on every bump.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping, Sequence
from dataclasses import replace

from ..config.model import ClusterSpec, EndpointSpec, IPAddress
from . import table
from .model import AdminState, Cluster, Lease, LoadReport, Observation, ObservationKey, Snapshot
from .store import StateStore


class MemoryStore(StateStore):
    def __init__(self) -> None:
        self._version = 0
        self._clusters: dict[str, Cluster] = {}
        self._observations: dict[str, dict[ObservationKey, Observation]] = {}  # by checker
        self._loads: dict[tuple[str, str, str], LoadReport] = {}  # (source, cluster, endpoint) -> reading
        self._leases: dict[str, Lease] = {}  # by cluster
        self._changed = asyncio.Event()
        self._closed = False

    @property
    def version(self) -> int:
        return self._version

    async def close(self) -> None:
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        # Each waiter holds the event it saw; replace it so later waiters wait afresh.
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    def _bump(self) -> int:
        """Publish a change, unless the store is unseeded (see store.py)."""
        if self._version:
            self._version += 1
            self._wake()
        return self._version

    async def seed(
        self, specs: Iterable[ClusterSpec], overwrite: bool = False, base: Mapping[str, Cluster] | None = None
    ) -> int:
        clusters = table.seed_plan(list(specs), self._clusters, base, overwrite=overwrite, restoring=self._version == 0)
        if clusters == self._clusters and self._version:
            return self._version
        self._clusters = clusters
        self._version += 1
        self._wake()
        return self._version

    async def load(self) -> Snapshot:
        mine = self._observations
        return table.snapshot(
            self._version,
            dict(self._clusters),
            (obs for checker in sorted(mine) for obs in mine[checker].values()),
            time.time(),
            loads=[self._loads[key] for key in sorted(self._loads)],
            leases=list(self._leases.values()),
        )

    async def changes(self) -> AsyncGenerator[int, None]:
        seen = self._version
        yield seen
        while not self._closed:
            event = self._changed
            if self._version == seen:
                await event.wait()
                continue
            seen = self._version
            yield seen

    def _edit(self, name: str, edit: Callable[[Cluster], Cluster]) -> int:
        cluster = table.require(self._clusters.get(name), name)
        self._clusters[name] = edit(cluster)
        return self._bump()

    async def set_weight(self, cluster: str, weight: int, endpoint: str | IPAddress | None = None) -> int:
        table.check_weight(weight)  # the value first, as the Redis store does (it saves a round trip)
        return self._edit(cluster, lambda c: table.with_weight(c, weight, endpoint))

    async def set_admin(self, cluster: str, state: AdminState | str, endpoint: str | IPAddress | None = None) -> int:
        table.parse_admin(state)
        return self._edit(cluster, lambda c: table.with_admin(c, state, endpoint))

    async def add_endpoint(self, cluster: str, spec: EndpointSpec) -> int:
        return self._edit(cluster, lambda c: table.with_endpoint(c, spec))

    async def remove_endpoint(self, cluster: str, address: str | IPAddress) -> int:
        return self._edit(cluster, lambda c: table.without_endpoint(c, address))

    async def add_cluster(self, spec: ClusterSpec) -> int:
        self._clusters[spec.name] = table.new_cluster(spec, self._clusters.get(spec.name))
        return self._bump()

    async def remove_cluster(self, name: str) -> int:
        table.require(self._clusters.get(name), name)
        del self._clusters[name]
        return self._bump()

    async def report(self, observations: Sequence[Observation]) -> None:
        now = time.time()
        changed = False
        for obs in observations:
            mine = self._observations.setdefault(obs.checker, {})
            key = (obs.cluster, obs.endpoint)
            changed |= table.notable_change(mine.get(key), obs, now)
            mine[key] = obs
        self._prune(now)
        if changed:
            self._bump()

    async def report_load(self, reports: Sequence[LoadReport]) -> int:
        now = time.time()
        changed = False
        for report in reports:
            key = (report.source, report.cluster, report.endpoint)
            changed |= table.notable_load(self._loads.get(key), report, now)
            self._loads[key] = report
        self._loads = {k: r for k, r in self._loads.items() if r.expires >= now}
        return self._bump() if changed else self._version

    async def publish_lease(self, lease: Lease) -> int:
        now = time.time()
        notable = table.notable_lease(self._leases.get(lease.cluster), lease, now)
        self._leases[lease.cluster] = lease
        self._leases = table.live_leases(self._leases.values(), now)
        return self._bump() if notable else self._version

    async def renew_lease(self, cluster: str, agent: str, renewed: float, expires: float) -> bool:
        old = self._leases.get(cluster)
        if old is None:
            return False
        self._leases[cluster] = replace(old, agent=agent, renewed=renewed, expires=expires)
        if old.expires <= time.time():
            self._bump()
        return True

    async def drop_lease(self, cluster: str) -> int:
        if self._leases.pop(cluster, None) is None:
            return self._version
        return self._bump()

    def _prune(self, now: float) -> None:
        """Forget expired observations, and checkers with none left, so nothing accumulates."""
        for checker in list(self._observations):
            live = {k: o for k, o in self._observations[checker].items() if o.expires >= now}
            if live:
                self._observations[checker] = live
            else:
                del self._observations[checker]
