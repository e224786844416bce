"""Edits of the table as pure functions over immutable clusters, shared by both backends.

Each backend reads the current ``Cluster``, applies one of these and writes the
result back atomically (memory: within one event-loop step; Redis: under
WATCH/MULTI).  Keeping the rules in one place means ``memory://`` and
``redis://`` cannot disagree about what a seed or a drain does.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import replace
from types import MappingProxyType

from ..config import values
from ..config.model import ClusterSpec, EndpointAddress, EndpointSpec
from .model import AdminState, Cluster, Endpoint, Lease, LoadKey, LoadReport, Observation, ObservationKey, Snapshot
from .store import StateError

# An RTT change smaller than both of these is noise and is not published;
# the keeper's periodic resync still carries it to readers.
RTT_NOTABLE_MS = 5.0
RTT_NOTABLE_RATIO = 0.2
# A load reading that moves less than this is not published at once either.
LOAD_NOTABLE = 0.02
# The bounds of a load reading: a fraction of capacity (1 = full); 1000x over capacity is a broken sensor.
MAX_LOAD = 1000.0
# How long an operator's load lasts at most (the API's ttl), and by default.
MAX_LOAD_TTL = 86400.0
DEFAULT_LOAD_TTL = 60.0
ADMIN_SOURCE = "admin"
# How long the store keeps a lease past its expiry: the longest ``discovery.grace`` the config takes.
LEASE_KEEP = 3600.0


def check_weight(weight: object) -> int:
    """Weights are integers from 0 to 1,000,000, as the config has them (the store refuses to load
    anything else, so no write may store it); 0 means "no traffic unless nothing else"."""
    try:
        return values.weight(weight)
    except ValueError as exc:
        raise ValueError(f"weight {exc}") from None


def parse_address(address: str | EndpointAddress) -> EndpointAddress:
    """An endpoint as the admin API names it: an IP address or a host name."""
    try:
        return values.endpoint(str(address).strip())
    except ValueError:
        raise ValueError(f"not an IP address or a host name: {address!r}") from None


def parse_admin(state: AdminState | str) -> AdminState:
    try:
        return AdminState(state)
    except ValueError:
        allowed = ", ".join(s.value for s in AdminState)
        raise ValueError(f"admin state must be one of {allowed}, not {state!r}") from None


def require(cluster: Cluster | None, name: str) -> Cluster:
    if cluster is None:
        raise StateError(f"unknown cluster '{name}'")
    return cluster


def _endpoint_index(cluster: Cluster, address: str | EndpointAddress) -> int:
    wanted = parse_address(address)
    for i, endpoint in enumerate(cluster.endpoints):
        if endpoint.address == wanted:
            return i
    raise StateError(f"cluster '{cluster.name}' has no endpoint {wanted}")


def seeded(spec: ClusterSpec, existing: Cluster | None) -> Cluster:
    """The cluster after seeding from ``spec``.

    Config owns region, priority, min_healthy, check and endpoint probes; the
    store owns admin states, weights and endpoints registered at runtime, so a
    restart with the same config does not undo an operator's drain.
    """
    fresh = Cluster.from_spec(spec)
    if existing is None:
        return fresh
    old_by_address = {e.address: e for e in existing.endpoints}
    endpoints = []
    for endpoint in fresh.endpoints:
        old = old_by_address.pop(endpoint.address, None)
        endpoints.append(endpoint if old is None else replace(old, probe=endpoint.probe))
    endpoints.extend(old_by_address.values())
    return replace(
        existing,
        region=fresh.region,
        priority=fresh.priority,
        min_healthy=fresh.min_healthy,
        check=fresh.check,
        endpoints=tuple(endpoints),
    )


def seed_plan(
    specs: Iterable[ClusterSpec],
    stored: Mapping[str, Cluster | None],
    base: Mapping[str, Cluster] | None,
    *,
    overwrite: bool,
    restoring: bool,
) -> dict[str, Cluster]:
    """The whole table after a seed: what both backends write.

    ``stored`` is what the store holds by name (None: named by the index but
    missing, or invalid).  ``base`` is the seeding server's last good snapshot:
    it stands in for a stored cluster that is missing or invalid, and when
    ``restoring`` (the store came back empty, or lost its index) its clusters
    come back whole, those added at runtime included, so a Redis restart loses
    no drain, weight, forced state or registration.  The config's ``specs`` are
    laid over the result with ``seeded`` (config-owned fields from the config);
    the caller leaves out the specs of clusters removed at runtime.  With
    ``overwrite`` the table is exactly the config.
    """
    if overwrite:
        return {spec.name: Cluster.from_spec(spec) for spec in specs}
    base = base or {}
    out: dict[str, Cluster] = {}
    for name, cluster in stored.items():
        value = cluster if cluster is not None else base.get(name)
        if value is not None:
            out[name] = value
    if restoring:
        for name, cluster in base.items():
            out.setdefault(name, cluster)
    for spec in specs:
        out[spec.name] = seeded(spec, out.get(spec.name))
    return out


def runtime_changes(clusters: Mapping[str, Cluster], specs: Mapping[str, ClusterSpec]) -> list[str]:
    """What in ``clusters`` differs from the config, in words: what a restore brings back."""
    out = []
    for name, cluster in sorted(clusters.items()):
        spec = specs.get(name)
        if spec is None:
            out.append(f"{name}: added at runtime ({len(cluster.endpoints)} endpoints)")
            continue
        if cluster.admin is not AdminState.ACTIVE:
            out.append(f"{name}: {cluster.admin.value}")
        if cluster.weight != spec.weight:
            out.append(f"{name}: weight {cluster.weight} (config {spec.weight})")
        configured = {e.address: e for e in spec.endpoints}
        for endpoint in cluster.endpoints:
            conf = configured.pop(endpoint.address, None)
            if conf is None:
                out.append(f"{name}/{endpoint.key}: added at runtime")
            if endpoint.admin is not AdminState.ACTIVE:
                out.append(f"{name}/{endpoint.key}: {endpoint.admin.value}")
            if conf is not None and endpoint.weight != conf.weight:
                out.append(f"{name}/{endpoint.key}: weight {endpoint.weight} (config {conf.weight})")
        out.extend(f"{name}/{address}: removed at runtime" for address in configured)
    out.extend(f"{name}: removed at runtime" for name in sorted(set(specs) - set(clusters)))
    return out


def with_weight(cluster: Cluster, weight: int, endpoint: str | EndpointAddress | None = None) -> Cluster:
    weight = check_weight(weight)
    if endpoint is None:
        return replace(cluster, weight=weight)
    i = _endpoint_index(cluster, endpoint)
    return _with_endpoint_at(cluster, i, replace(cluster.endpoints[i], weight=weight))


def with_admin(cluster: Cluster, state: AdminState | str, endpoint: str | EndpointAddress | None = None) -> Cluster:
    state = parse_admin(state)
    if endpoint is None:
        return replace(cluster, admin=state)
    i = _endpoint_index(cluster, endpoint)
    return _with_endpoint_at(cluster, i, replace(cluster.endpoints[i], admin=state))


def with_endpoint(cluster: Cluster, spec: EndpointSpec) -> Cluster:
    address = parse_address(spec.address)
    check_weight(spec.weight)
    if any(e.address == address for e in cluster.endpoints):
        raise StateError(f"cluster '{cluster.name}' already has endpoint {address}")
    added = Endpoint(address, spec.weight, AdminState.ACTIVE, spec.probe)
    return replace(cluster, endpoints=cluster.endpoints + (added,))


def without_endpoint(cluster: Cluster, address: str | EndpointAddress) -> Cluster:
    """A cluster keeps at least one endpoint, as the config requires (remove the cluster instead)."""
    i = _endpoint_index(cluster, address)
    if len(cluster.endpoints) == 1:
        raise ValueError(
            f"{cluster.endpoints[i].key} is the last endpoint of cluster '{cluster.name}'; "
            f"remove the cluster (or drain it) instead"
        )
    return replace(cluster, endpoints=cluster.endpoints[:i] + cluster.endpoints[i + 1 :])


def new_cluster(spec: ClusterSpec, existing: Cluster | None) -> Cluster:
    if existing is not None:
        raise StateError(f"cluster '{spec.name}' already exists")
    check_weight(spec.weight)
    for endpoint in spec.endpoints:
        check_weight(endpoint.weight)
    return Cluster.from_spec(spec)


def _with_endpoint_at(cluster: Cluster, i: int, endpoint: Endpoint) -> Cluster:
    return replace(cluster, endpoints=cluster.endpoints[:i] + (endpoint,) + cluster.endpoints[i + 1 :])


def notable_change(old: Observation | None, new: Observation, now: float) -> bool:
    """Whether readers must hear about ``new`` now rather than at the next resync.

    A verdict that appears, flips or comes back after expiring is notable; so
    is an RTT move beyond both ``RTT_NOTABLE_MS`` and ``RTT_NOTABLE_RATIO``.
    """
    if old is None or old.expires < now:
        return True
    if old.up != new.up or old.vantage != new.vantage:
        return True
    if (old.rtt_ms is None) != (new.rtt_ms is None):
        return True
    if old.rtt_ms is None or new.rtt_ms is None:
        return False
    moved = abs(new.rtt_ms - old.rtt_ms)
    return moved > RTT_NOTABLE_MS and moved > RTT_NOTABLE_RATIO * old.rtt_ms


def check_load(load: object) -> float:
    """A load reading: a finite number from 0 to ``MAX_LOAD`` (1 = at capacity)."""
    if isinstance(load, bool) or not isinstance(load, (int, float)):
        raise ValueError(f"load must be a number (1 = at capacity), not {load!r}")
    value = float(load)
    if not 0.0 <= value <= MAX_LOAD:  # also refuses NaN
        raise ValueError(f"load must be between 0 and {MAX_LOAD:g} (1 = at capacity), not {value!r}")
    return value


def load_report(
    cluster: Cluster,
    load: object,
    ttl: object,
    endpoint: str | EndpointAddress | None = None,
    source: str = ADMIN_SOURCE,
    now: float | None = None,
) -> LoadReport:
    """An operator's load reading for ``cluster`` (or one of its endpoints), checked; ``StateError``
    for an endpoint the cluster does not have."""
    value = check_load(load)
    try:
        seconds = values.parse_duration(ttl)
    except ValueError as exc:
        raise ValueError(f"ttl {exc}") from None
    if seconds > MAX_LOAD_TTL:
        raise ValueError(f"ttl must be more than 0 and at most {MAX_LOAD_TTL:g}s, not {seconds:g}s")
    key = "" if endpoint is None else cluster.endpoints[_endpoint_index(cluster, endpoint)].key
    at = time.time() if now is None else now
    return LoadReport(source, cluster.name, key, value, at, at + seconds)


def notable_load(old: LoadReport | None, new: LoadReport, now: float) -> bool:
    """Whether readers must hear of ``new`` now: a new or revived reading, an operator's, or a real move."""
    if old is None or old.expires < now or new.source == ADMIN_SOURCE:
        return True
    return abs(new.load - old.load) >= LOAD_NOTABLE


def notable_lease(old: Lease | None, new: Lease, now: float) -> bool:
    """Whether readers must hear of ``new`` now: new, revived after lapsing, or registering something else."""
    if old is None or old.expires <= now:
        return True
    return (old.region, old.registrations) != (new.region, new.registrations)


def live_leases(leases: Iterable[Lease], now: float) -> dict[str, Lease]:
    """The leases a snapshot holds, by cluster: those not yet past ``LEASE_KEEP`` after expiring."""
    return {lease.cluster: lease for lease in leases if lease.expires + LEASE_KEEP > now}


def snapshot(
    version: int,
    clusters: dict[str, Cluster],
    observations: Iterable[Observation],
    now: float,
    problems: Mapping[str, str] | None = None,
    loads: Iterable[LoadReport] = (),
    leases: Iterable[Lease] = (),
) -> Snapshot:
    """What ``load()`` returns: ``clusters`` (taken over, not copied) and the observations
    and load readings not yet expired at ``now``, grouped per endpoint in the order given;
    ``problems`` names the entries left out (see ``Snapshot.problems``)."""
    grouped: dict[ObservationKey, list[Observation]] = {}
    for obs in observations:
        if obs.expires >= now:
            grouped.setdefault((obs.cluster, obs.endpoint), []).append(obs)
    readings: dict[LoadKey, list[LoadReport]] = {}
    for report in loads:
        if report.expires >= now:
            readings.setdefault((report.cluster, report.endpoint), []).append(report)
    return Snapshot(
        version=version,
        clusters=MappingProxyType(clusters),
        observations=MappingProxyType({k: tuple(v) for k, v in grouped.items()}),
        problems=MappingProxyType(dict(problems or {})),
        loads=MappingProxyType({k: tuple(v) for k, v in readings.items()}),
        leases=MappingProxyType(dict(sorted(live_leases(leases, now).items()))),
    )
