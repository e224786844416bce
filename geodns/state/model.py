"""The live table of clusters, endpoints and health, as immutable values.

The store (memory or Redis) holds the table; each DNS server reads it into a
``Snapshot`` and the query path reads only that.  Everything here is frozen so
a snapshot can be swapped atomically by assigning one reference.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol, TypeVar

from ..config.model import CheckSpec, ClusterSpec, EndpointAddress, IPAddress


class AdminState(str, enum.Enum):
    """What an operator said about a cluster or endpoint; wins over health checks."""

    ACTIVE = "active"  # follow the health checks
    DRAINED = "drained"  # no new traffic, whatever the checks say
    FORCED_UP = "forced-up"  # answer it even if checks say down
    FORCED_DOWN = "forced-down"  # never answer it


@dataclass(frozen=True, slots=True)
class Endpoint:
    address: EndpointAddress  # an IP address, or a host name (config.model.HostName)
    weight: int = 100
    admin: AdminState = AdminState.ACTIVE
    probe: str | None = None
    # The address as text: how the store and observations name the endpoint.  Kept, not
    # recomputed: every health view reads it for every endpoint (str() of an address is slow).
    key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", str(self.address))


@dataclass(frozen=True, slots=True)
class Cluster:
    name: str
    region: str
    endpoints: tuple[Endpoint, ...]
    weight: int = 100
    priority: int = 0
    min_healthy: int = 1
    admin: AdminState = AdminState.ACTIVE
    check: CheckSpec | None = None

    @classmethod
    def from_spec(cls, spec: ClusterSpec) -> Cluster:
        return cls(
            name=spec.name,
            region=spec.region,
            endpoints=tuple(Endpoint(e.address, e.weight, AdminState.ACTIVE, e.probe) for e in spec.endpoints),
            weight=spec.weight,
            priority=spec.priority,
            min_healthy=spec.min_healthy,
            check=spec.check,
        )


@dataclass(frozen=True, slots=True)
class Observation:
    """One checker's verdict on one endpoint, as of ``at`` (unix seconds)."""

    checker: str
    vantage: str  # the checker's region
    cluster: str
    endpoint: str  # str(address)
    up: bool | None  # None: no verdict yet (unknown)
    rtt_ms: float | None
    at: float
    expires: float  # after this the observation no longer counts
    # Why, when the checker's latest probes fail ("HTTP 503", "timeout after 1s"); kept until the
    # endpoint is up again.  None when they succeed.
    reason: str | None = None
    down_since: float | None = None  # unix time this checker's verdict became down; None unless up is False


ObservationKey = tuple[str, str]  # (cluster, endpoint)


@dataclass(frozen=True, slots=True)
class LoadReport:
    """One source's reading of how loaded a cluster (``endpoint`` "") or one endpoint is, as of ``at``.

    ``load`` is a fraction of capacity: 0 idle, 1 at capacity, above 1 over it.
    The source is a checker id (read from the health response it probes) or
    ``admin`` (the API and ``geodns load``).  After ``expires`` the reading no
    longer counts: an expired load is unknown, never zero.
    """

    source: str
    cluster: str
    endpoint: str  # str(address), or "" for the cluster as a whole
    load: float
    at: float
    expires: float


LoadKey = tuple[str, str]  # (cluster, endpoint or "")


class _Dated(Protocol):
    @property
    def at(self) -> float: ...
    @property
    def expires(self) -> float: ...


D = TypeVar("D", bound=_Dated)


def latest_fresh(items: Iterable[D], now: float, key: Callable[[D], str]) -> dict[str, D]:
    """Per ``key`` (a checker, a load source), the newest item by ``at`` that has not expired at
    ``now``: a source's older reports are history.  Keys keep the order they were first seen in."""
    latest: dict[str, D] = {}
    for item in items:
        if item.expires <= now:
            continue
        who = key(item)
        seen = latest.get(who)
        if seen is None or item.at > seen.at:
            latest[who] = item
    return latest


def by_checker(item: Observation) -> str:
    return item.checker


def by_source(item: LoadReport) -> str:
    return item.source


@dataclass(frozen=True, slots=True)
class Registration:
    """One agent's claim of endpoints for one DNS name, from one Kubernetes object.

    ``name`` is absolute text (``app.gslb.example.com.``), or for an east-west export
    ``<service>.<namespace>`` with ``export`` set: the DNS side appends its ``export_zone``.
    ``endpoints`` are IP addresses or hostnames (a cloud load balancer's), as text.  Optional
    fields left None take the ``discovery`` defaults of the config.
    """

    name: str
    endpoints: tuple[str, ...]
    source: str = ""  # what published it, for operators: "Service shop/web"
    export: bool = False
    weight: int | None = None
    policy: tuple[str, ...] | None = None
    ttl: int | None = None
    probe: str | None = None  # "PATH" or "PORT" or "PORT/PATH" from geodns.io/probe


@dataclass(frozen=True, slots=True)
class Lease:
    """One cluster's agent and everything it registered, held while the agent renews the lease.

    A lease whose ``expires`` has passed makes its registrations *stale*: still answered (health
    checks decide) until ``expires + grace`` (the config's ``discovery.grace``), then gone.  One
    lease per cluster, not per name: a renewal is one small write whatever the cluster publishes.
    """

    cluster: str
    region: str
    agent: str  # the agent's id (host/pod name), for operators
    registrations: tuple[Registration, ...]
    renewed: float  # unix seconds of the latest renewal
    expires: float  # unix seconds; renewals push it forward

    def stale(self, now: float) -> bool:
        return now >= self.expires


@dataclass(frozen=True, slots=True)
class Resolved:
    """What one host-name endpoint resolves to (state/hostnames.py), for flattening.

    ``ttl`` (the smallest of the answers', seconds) caps a flattened record's TTL; it takes no part
    in equality, so a refresh that finds the same addresses changes no answer.
    """

    v4: tuple[IPAddress, ...]
    v6: tuple[IPAddress, ...]
    ttl: int = field(default=0, compare=False)

    def family(self, family: int) -> tuple[IPAddress, ...]:
        return self.v4 if family == 4 else self.v6


@dataclass(frozen=True)
class Snapshot:
    """The table as one DNS server sees it at one version."""

    version: int
    clusters: Mapping[str, Cluster]
    observations: Mapping[ObservationKey, tuple[Observation, ...]] = field(default_factory=lambda: MappingProxyType({}))
    taken_at: float = field(default_factory=time.time)
    # Entries of the store this snapshot could not take, by key (``cluster:NAME``,
    # ``obs:CHECKER``) -> why: missing (evicted) or failing validation.  The keeper
    # keeps each such cluster's last good value and reports them.
    problems: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # Fresh load readings per (cluster, endpoint or ""), one per source (gslb/load.py combines them).
    loads: Mapping[LoadKey, tuple[LoadReport, ...]] = field(default_factory=lambda: MappingProxyType({}))
    # Discovery agents' leases and registrations, by cluster (discovery/records.py makes records of them).
    leases: Mapping[str, Lease] = field(default_factory=lambda: MappingProxyType({}))
    # The table's host-name endpoints resolved (host name text -> addresses): not from the store but
    # from the process that keeps the snapshot (state/hostnames.py), which adds them before any
    # responder or worker sees it.
    resolved: Mapping[str, Resolved] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def from_specs(cls, specs: Iterable[ClusterSpec], version: int = 0) -> Snapshot:
        """The snapshot a server uses before (or without) any store: the config's seed."""
        clusters = {s.name: Cluster.from_spec(s) for s in specs}
        return cls(version=version, clusters=MappingProxyType(clusters))
