"""Records from discovery: what the DNS side makes of the leases in a snapshot.

A pure function of (snapshot, config, now), run wherever a snapshot is turned into answers or
probes (the GSLB responder in every DNS process, the checkers), so all of them agree without
talking to each other.

Each (cluster, name) registration becomes a *discovered cluster* named ``<cluster>:<name>``
(``eu-west-1:app.gslb.example.com``): its own endpoints, its own checks (the ``discovery.check``
template, with the name as Host/SNI and the registration's probe path/port), the region of the
agent's lease.  Each name becomes a record over the discovered clusters that registered it, with
the ``discovery.defaults`` unless a registration says otherwise.  Discovered clusters live in the
snapshot the responder builds, never in the store: the store holds only the leases, so a seed or
a restore never writes them back as clusters.

The rules, each logged by the caller when it starts to apply (``changes``):

- A name outside ``discovery.suffixes`` (or an export without ``discovery.export_zone``) is
  *refused*: a cluster cannot claim a name it was not given.
- A name the config defines is the config's: the registration is a *conflict* and is not served.
- A lease's region must be one of the config's regions (the geo filter reasons about it).
- A lapsed lease (its agent died or is cut off) keeps its registrations *stale* for
  ``discovery.grace``, answered as before: the health checks, not the agent, decide whether a
  cluster is up.  After the grace they are gone.
- A table cluster with the lease's name lends its admin state (``geodns drain eu-west-1`` drains
  its discovered records too), priority and weight (unless ``geodns.io/weight`` says one).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from ..config import values
from ..config.model import CheckSpec, Config, DiscoveryConfig, RecordSpec
from ..dns import names
from ..dns.names import Name
from ..errors import Problem
from ..state.model import AdminState, Cluster, Endpoint, Lease, Registration, Snapshot

SEPARATOR = ":"  # between the agent's cluster and the name in a discovered cluster's name


@dataclass(frozen=True, slots=True)
class Origin:
    """Where one cluster's part of a discovered record comes from, for operators."""

    cluster: str  # the agent's cluster (the lease's)
    region: str
    agent: str
    source: str  # the Kubernetes object: "Service shop/web"
    renewed: float  # the lease's latest renewal (unix seconds)
    expires: float
    gone_at: float  # expires + grace: when a stale registration is removed

    def stale(self, now: float) -> bool:
        return now >= self.expires

    def view(self, now: float) -> dict:
        return {
            "cluster": self.cluster,
            "region": self.region,
            "agent": self.agent,
            "source": self.source,
            "lease_age_s": round(max(0.0, now - self.renewed), 1),
            "stale": self.stale(now),
            "removed_in_s": round(self.gone_at - now, 1) if self.stale(now) else None,
        }


@dataclass(frozen=True, slots=True)
class Claim:
    """A registration not served, and why (refused or in conflict with the config)."""

    name: str
    cluster: str
    source: str
    reason: str


@dataclass(frozen=True)
class Discovered:
    records: Mapping[Name, RecordSpec] = field(default_factory=lambda: MappingProxyType({}))
    clusters: Mapping[str, Cluster] = field(default_factory=lambda: MappingProxyType({}))
    origins: Mapping[Name, tuple[Origin, ...]] = field(default_factory=lambda: MappingProxyType({}))
    conflicts: tuple[Claim, ...] = ()
    refused: tuple[Claim, ...] = ()
    valid_until: float = math.inf  # the next time these change by time alone (a stale lease's grace ends)


NOTHING = Discovered()


def cluster_name(cluster: str, name: Name) -> str:
    """The discovered cluster for ``cluster``'s registration of ``name``."""
    return f"{cluster}{SEPARATOR}{names.to_text(name).rstrip('.')}"


def record_name(registration: Registration, discovery: DiscoveryConfig) -> Name:
    """The absolute name a registration claims; ``ValueError`` saying why it cannot be served."""
    try:
        if registration.export:
            if discovery.export_zone is None:
                raise ValueError("an east-west export, but discovery.export_zone is not set")
            return names.from_text(registration.name.rstrip(".") + "." + names.to_text(discovery.export_zone))
        name = names.from_text(registration.name.rstrip(".") + ".")
    except names.NameError_ as exc:
        raise ValueError(f"not a DNS name: {exc}") from None
    if not any(names.is_subdomain(name, suffix) for suffix in discovery.suffixes):
        allowed = ", ".join(names.to_text(s).rstrip(".") for s in discovery.suffixes)
        raise ValueError(f"outside the allowed suffixes ({allowed})")
    return name


def probe_check(template: CheckSpec, registration: Registration, name: Name) -> CheckSpec:
    """The check for one registration: the template, the name as Host/SNI for HTTP(S), and the
    ``geodns.io/probe`` path and port ("/ready", "8080", "8080/ready") when given."""
    spec = template
    if spec.type != "tcp" and spec.host is None:
        spec = replace(spec, host=names.to_text(name).rstrip("."))
    probe = registration.probe
    if probe:
        port_text, slash, path = probe.partition("/")
        if not port_text:  # "/ready"
            spec = replace(spec, path="/" + path, url=None)
        elif port_text.isdigit() and 0 < int(port_text) < 65536:
            spec = replace(spec, port=int(port_text), url=None, path="/" + path if slash else spec.path)
    return spec


def derive(snapshot: Snapshot, config: Config, now: float) -> Discovered:
    """The discovered records and clusters of ``snapshot`` at ``now`` (see the module's rules)."""
    discovery = config.discovery
    if discovery is None or not snapshot.leases:
        return NOTHING
    claims: dict[Name, list[tuple[Lease, Registration]]] = {}
    conflicts: list[Claim] = []
    refused: list[Claim] = []
    valid_until = math.inf
    for lease in snapshot.leases.values():
        gone_at = lease.expires + discovery.grace
        if now >= gone_at:
            continue
        valid_until = min(valid_until, gone_at)
        for registration in lease.registrations:
            try:
                name = record_name(registration, discovery)
                if lease.region not in config.regions:
                    raise ValueError(f"the agent's region {lease.region!r} is not one of the config's regions")
            except ValueError as exc:
                refused.append(Claim(registration.name, lease.cluster, registration.source, str(exc)))
                continue
            if name in config.records:
                conflicts.append(
                    Claim(names.to_text(name), lease.cluster, registration.source, "the config defines this record")
                )
                continue
            claims.setdefault(name, []).append((lease, registration))
    records: dict[Name, RecordSpec] = {}
    clusters: dict[str, Cluster] = {}
    origins: dict[Name, tuple[Origin, ...]] = {}
    for name, held in sorted(claims.items()):
        held.sort(key=lambda pair: pair[0].cluster)
        members: list[str] = []
        seen: set[str] = set()
        for lease, registration in held:
            derived = _cluster(lease, registration, name, snapshot.clusters.get(lease.cluster), discovery)
            if derived is None or derived.name in seen:
                continue  # no address endpoint, or a second object of one cluster for the name
            seen.add(derived.name)
            clusters[derived.name] = derived
            members.append(derived.name)
        if not members:
            continue
        registrations = [r for _, r in held]
        records[name] = RecordSpec(
            name=name,
            text=names.to_text(name).rstrip("."),
            clusters=tuple(members),
            policy=next((r.policy for r in registrations if r.policy), discovery.policy),
            ttl=min((r.ttl for r in registrations if r.ttl is not None), default=discovery.ttl),
            answers=discovery.answers,
            fallback=discovery.fallback,
            hostnames=discovery.hostnames,
        )
        origins[name] = tuple(
            Origin(
                lease.cluster,
                lease.region,
                lease.agent,
                registration.source,
                lease.renewed,
                lease.expires,
                lease.expires + discovery.grace,
            )
            for lease, registration in held
        )
    return Discovered(
        MappingProxyType(records),
        MappingProxyType(clusters),
        MappingProxyType(origins),
        tuple(conflicts),
        tuple(refused),
        valid_until,
    )


def _cluster(
    lease: Lease, registration: Registration, name: Name, table: Cluster | None, discovery: DiscoveryConfig
) -> Cluster | None:
    endpoints = []
    for text in registration.endpoints:
        try:
            endpoints.append(Endpoint(values.endpoint(text)))  # an address or a host name (a cloud LB's)
        except ValueError:
            continue  # the codec let it in, so this is older data of another shape: not answered
    if not endpoints:
        return None
    check = probe_check(discovery.check, registration, name) if discovery.check is not None else None
    return Cluster(
        name=cluster_name(lease.cluster, name),
        region=lease.region,
        endpoints=tuple(endpoints),
        weight=registration.weight if registration.weight is not None else table.weight if table else 100,
        priority=table.priority if table else 0,
        admin=table.admin if table else AdminState.ACTIVE,
        check=check,
    )


def with_discovered(snapshot: Snapshot, discovered: Discovered) -> Snapshot:
    """``snapshot`` with the discovered clusters added to its table (what answers and probes read)."""
    if not discovered.clusters:
        return snapshot
    return replace(snapshot, clusters=MappingProxyType({**snapshot.clusters, **discovered.clusters}))


def claims_view(claims: Iterable[Claim]) -> list[dict]:
    return [{"name": c.name, "cluster": c.cluster, "source": c.source, "reason": c.reason} for c in claims]


def check_zones(config: Config, served: Iterable[Name]) -> list[Problem]:
    """The discovery zone and the export zone must be zones this server serves (else nothing
    discovered could be answered)."""
    discovery = config.discovery
    if discovery is None:
        return []
    zones = list(served)
    source = str(config.source) if config.source else "config"
    problems = []
    for key, zone in (("zone", discovery.zone), ("export_zone", discovery.export_zone)):
        if zone is not None and not any(names.is_subdomain(zone, z) for z in zones):
            problems.append(
                Problem(
                    source,
                    discovery.line,
                    f"discovery.{key}: {names.to_text(zone)} is not inside any served zone "
                    f"(add a zone file for it to zones)",
                )
            )
    return problems


def news(before: Discovered, after: Discovered) -> list[str]:
    """Log lines for what changed between two derivations: records that appeared or went, and
    claims newly refused or in conflict (each logged once, when it starts)."""
    lines = []
    for name in sorted(set(after.records) - set(before.records)):
        lines.append(
            f"event=discovered-record name={names.to_text(name)} "
            f"clusters={','.join(o.cluster for o in after.origins.get(name, ()))}"
        )
    for name in sorted(set(before.records) - set(after.records)):
        lines.append(f"event=discovered-record-gone name={names.to_text(name)}")
    for claim in sorted(set(after.refused) - set(before.refused), key=lambda c: (c.name, c.cluster)):
        lines.append(
            f"event=discovery-refused name={claim.name} cluster={claim.cluster} "
            f"source={claim.source!r} reason={claim.reason!r}"
        )
    for claim in sorted(set(after.conflicts) - set(before.conflicts), key=lambda c: (c.name, c.cluster)):
        lines.append(
            f"event=discovery-conflict name={claim.name} cluster={claim.cluster} "
            f"source={claim.source!r} winner=config reason={claim.reason!r}"
        )
    return lines
