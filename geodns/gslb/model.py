"""The values the policy chain passes around.

A ``Context`` is built once per (snapshot, health view, record) and reused by
every query for that record until the snapshot or the health view changes;
everything a filter would otherwise recompute per query (the record's
candidates, their healthy subsets, region indexes, the fallback answers)
is worked out here, so the query path mostly reads.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple

from ..config.filters import DECLARED
from ..config.model import EndpointAddress, HostName, IPAddress, RecordSpec, Region
from ..geo.location import Location
from ..state.model import Cluster, Endpoint, Resolved, Snapshot
from .dice import Dice, Draws, Explorer
from .health import DRAINED, FORCED_DOWN, HealthView
from .load import EMPTY, LoadView


@dataclass(frozen=True, slots=True)
class Candidate:
    """A cluster still in the running, with the endpoints still eligible (a subset, maybe reordered)."""

    cluster: Cluster
    endpoints: tuple[Endpoint, ...]


def healthy_candidate(cand: Candidate, health: HealthView) -> Candidate | None:
    """``cand`` with only its up endpoints (in its order); None when its cluster is not up or none is left.

    ``Context`` works this out once per snapshot for each full candidate; the
    ``healthy`` filter calls it only for candidates an earlier filter changed.
    """
    name = cand.cluster.name
    if not health.cluster_up(name):
        return None
    up = health.up_endpoints(name)
    if up is cand.cluster.endpoints:  # every endpoint is up, so all of cand's are
        return cand
    if cand.endpoints is cand.cluster.endpoints:
        endpoints = up
    else:
        up_set = frozenset(up)
        endpoints = tuple(e for e in cand.endpoints if e in up_set)
    return Candidate(cand.cluster, endpoints) if endpoints else None


def answers_of(
    endpoint: Endpoint, family: int, flatten: bool, resolved: Mapping[str, Resolved]
) -> tuple[EndpointAddress, ...]:
    """What ``endpoint`` can answer a question of ``family`` (4 or 6) with: its address when it is
    of that family; for a host name, the name itself (answered as a CNAME, for either family) or,
    when its record flattens, the addresses of that family it resolves to (none until resolved)."""
    address = endpoint.address
    if address.version == family:
        return (address,)
    if address.version:
        return ()
    if flatten:
        found = resolved.get(str(address))
        return found.family(family) if found is not None else ()
    return (address,)


@dataclass(frozen=True, slots=True)
class Client:
    """Who asks: the address the decision is about, where it is, and the ECS source prefix if any."""

    address: IPAddress
    location: Location
    ecs_source: int | None  # None when the query carried no Client Subnet option


class Selection(NamedTuple):
    """What to answer.  A NamedTuple because one is made per query and it is the cheapest record.

    ``addresses`` are IP addresses of the question's family, or a single host name (a record
    that answers host-name endpoints as a CNAME: one target per answer).
    ``clusters`` names the clusters whose endpoints are in ``addresses``.
    ``fallback`` says the chain left nothing and ``record.fallback`` answered.
    ``scope`` is the ECS scope prefix length (see ``policy.ecs_scope``).
    """

    addresses: tuple[EndpointAddress, ...]
    clusters: tuple[str, ...]
    fallback: bool
    scope: int


class Decision(NamedTuple):
    """Every answer a record can give one client and the probability of each (they sum to 1).

    ``cumulative`` holds the running sums, the last exactly 1.0, so a uniform
    random number r picks ``selections[bisect_right(cumulative, r)]``.
    """

    selections: tuple[Selection, ...]
    shares: tuple[float, ...]
    cumulative: tuple[float, ...]

    @classmethod
    def of(cls, shares: Mapping[Selection, float]) -> Decision:
        running, total = [], 0.0
        for share in shares.values():
            total += share
            running.append(total)
        running[-1] = 1.0
        return cls(tuple(shares), tuple(shares.values()), tuple(running))


@dataclass(frozen=True, slots=True)
class Step:
    """One trace entry: a filter (or "fallback") and the cluster names before and after it.

    ``why`` is the filter's reason in words (``why.py``); it does not take part in
    comparisons, so a trace compares by what the chain did, not by how it is phrased.
    """

    filter: str
    before: tuple[str, ...]
    after: tuple[str, ...]
    why: str = field(default="", compare=False)


@dataclass(frozen=True)
class Context:
    """Everything a filter may read besides the candidates and the client.

    Only the first six fields are given (``load`` may be left out); the rest are derived in
    ``__post_init__`` so that they are computed per snapshot, not per query.
    ``health`` must have been built from ``snapshot``.
    """

    snapshot: Snapshot
    health: HealthView
    regions: Mapping[str, Region]
    record: RecordSpec
    rng: random.Random
    # Each cluster's shed share, for ``shed`` (gslb/load.py).
    load: LoadView = EMPTY

    # The record's clusters present in the snapshot and with endpoints, in record order.
    candidates: tuple[Candidate, ...] = field(init=False)
    # Cluster name -> what `healthy` makes of its full candidate (None: dropped).
    healthy: Mapping[str, Candidate | None] = field(init=False)
    # Cluster name -> position in record.clusters: failover's tie-break.
    order: Mapping[str, int] = field(init=False)
    # Country / continent code -> names of the regions that serve it.
    country_regions: Mapping[str, frozenset[str]] = field(init=False)
    continent_regions: Mapping[str, frozenset[str]] = field(init=False)
    # The health view's vantages that are known regions, with their coordinates.
    vantage_points: tuple[tuple[str, float, float], ...] = field(init=False)
    # Address family (4 or 6) -> the answer when the chain leaves nothing.
    fallback: Mapping[int, Selection] = field(init=False)
    # What ``weighted`` draws with: ``rng`` on the query path, an Explorer in ``exploring``.
    dice: Draws = field(init=False)

    def __post_init__(self) -> None:
        unknown = [name for name in self.record.policy if name not in DECLARED]
        if unknown:
            raise ValueError(f"record {self.record.text}: unknown filter(s) {', '.join(unknown)}")
        clusters = self.snapshot.clusters
        health = self.health
        candidates: list[Candidate] = []
        healthy: dict[str, Candidate | None] = {}
        for name in self.record.clusters:
            cluster = clusters.get(name)
            if cluster is None or not cluster.endpoints or name in healthy:
                continue
            candidate = Candidate(cluster, cluster.endpoints)
            candidates.append(candidate)
            healthy[name] = healthy_candidate(candidate, health)
        countries: dict[str, set[str]] = {}
        continents: dict[str, set[str]] = {}
        for region in self.regions.values():
            continents.setdefault(region.continent, set()).add(region.name)
            for country in region.countries:
                countries.setdefault(country, set()).add(region.name)
        vantages = tuple(
            sorted((v, self.regions[v].lat, self.regions[v].lon) for v in health.vantages if v in self.regions)
        )
        derived = {
            "candidates": tuple(candidates),
            "healthy": MappingProxyType(healthy),
            "order": MappingProxyType({name: i for i, name in reversed(list(enumerate(self.record.clusters)))}),
            "country_regions": MappingProxyType({k: frozenset(v) for k, v in countries.items()}),
            "continent_regions": MappingProxyType({k: frozenset(v) for k, v in continents.items()}),
            "vantage_points": vantages,
            "fallback": MappingProxyType({family: self._fallback(family) for family in (4, 6)}),
            "dice": Dice(self.rng),
        }
        for key, value in derived.items():
            object.__setattr__(self, key, value)

    def exploring(self, explorer: Explorer) -> Context:
        """This context with ``explorer`` as its dice (sharing everything else), for ``policy.decision``."""
        twin = copy.copy(self)
        object.__setattr__(twin, "dice", explorer)
        return twin

    def _fallback(self, family: int) -> Selection:
        """The answer for a chain that left nothing: client-independent, so scope 0.

        It ignores health checks (fail open, as Route 53 does) but not the
        operator: forced-down and drained endpoints stay out, since "never
        answer it" and "no new traffic" are promises, not health.  It answers
        every address of its set; ``answers`` shapes the normal path only.
        """
        how = self.record.fallback
        if how == "none":
            return Selection((), (), True, 0)
        names = self.record.clusters if how == "all" else (how,)
        flatten, resolved = self.record.hostnames == "flatten", self.snapshot.resolved
        addresses: list[EndpointAddress] = []
        used: list[str] = []
        first_host: tuple[HostName, str] | None = None  # a CNAME answer when no cluster has addresses
        for name in dict.fromkeys(names):
            cluster = self.snapshot.clusters.get(name)
            if cluster is None:
                continue
            took = False
            for endpoint in cluster.endpoints:
                found = answers_of(endpoint, family, flatten, resolved)
                if not found or self.health.state(name, endpoint.key) in (FORCED_DOWN, DRAINED):
                    continue
                if isinstance(found[0], HostName):
                    first_host = first_host or (found[0], name)
                    continue
                addresses.extend(a for a in found if a not in addresses)
                took = True
            if took:
                used.append(name)
        if not addresses and first_host is not None:
            return Selection((first_host[0],), (first_host[1],), True, 0)
        return Selection(tuple(addresses), tuple(used), True, 0)
