"""Running a record's policy chain and turning the result into addresses.

The query path is ``select(ctx, client, family)``: build a ``Context`` per
(snapshot, health view, record) ahead of time (``contexts`` does it for a
whole config), make a ``Client`` per query, and read the ``Selection``.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping

from ..config.model import EndpointAddress, HostName, RecordSpec, Region
from ..dns.names import Name
from ..geo.location import Location
from ..state.model import Snapshot
from . import why
from .dice import Explorer, TooManyPaths
from .filters import FILTERS, LOCATION_FILTERS, RANDOM_FILTERS, Filter
from .health import HealthView
from .load import EMPTY, LoadView
from .model import Candidate, Client, Context, Decision, Selection, Step, answers_of

__all__ = [
    "Candidate",
    "Client",
    "Context",
    "FILTERS",
    "Filter",
    "Decision",
    "Selection",
    "Step",
    "contexts",
    "ecs_scope",
    "decision",
    "run_chain",
    "select",
]

# Random paths ``decision`` walks before giving up: 3 weighted clusters of 2 same-family
# endpoints each are 3! * 2^3 = 48; 5 clusters of one endpoint are 120.
MAX_PATHS = 256


def ecs_scope(location: Location, ecs_source: int | None, depended: bool) -> int:
    """The ECS scope prefix length of an answer (RFC 7871 section 7.2.1).

    An answer that did not depend on where the client is holds for everyone:
    /0, so resolvers cache one copy.  One that did holds for the network the
    location came from, never longer than what the resolver revealed (the
    source prefix), since we cannot claim to have looked at bits we never saw.
    """
    if not depended:
        return 0
    if ecs_source is not None and ecs_source < location.prefix:
        return ecs_source
    return location.prefix


def _run(
    record: RecordSpec, candidates: list[Candidate], client: Client, ctx: Context, trace: list | None
) -> tuple[list[Candidate], bool]:
    """The chain, and whether a location-reading filter had a choice to make.

    A filter facing one candidate (or none) returns the same whatever the
    client, so only one facing two or more makes the answer location-dependent.
    """
    depended = False
    for name in record.policy:
        if len(candidates) > 1 and name in LOCATION_FILTERS:
            depended = True
        if trace is None:
            candidates = FILTERS[name](candidates, client, ctx)
        else:
            candidates = why.traced(name, candidates, client, ctx, trace)
    return candidates, depended


def run_chain(
    record: RecordSpec, candidates: list[Candidate], client: Client, ctx: Context, trace: list | None = None
) -> list[Candidate]:
    """Apply ``record.policy`` in order; with a ``trace`` list, append one ``Step`` per filter."""
    return _run(record, candidates, client, ctx, trace)[0]


def select(ctx: Context, client: Client, family: int, trace: list | None = None) -> Selection:
    """Up to ``record.answers`` addresses of ``family`` (4 or 6) for ``client``.

    Addresses come from the ordered candidates, the first candidate's first.
    Candidates with no address of the family give an empty selection (the
    caller answers NODATA), not the fallback: the name exists, the cluster is
    fine, it just has no such address.  A cluster that has addresses of the
    family but none left up (its IPv4 endpoint down, its IPv6 one up) is no
    answer for that family: the chain runs again without it, and the trace
    says so with a ``Step("ipv4 down", ...)``.  Only an empty chain result
    falls back; the trace then ends with a ``Step("fallback", (), <clusters answered>)``.
    """
    record = ctx.record
    start = list(ctx.candidates)
    while True:
        candidates, depended = _run(record, start, client, ctx, trace)
        addresses, clusters = _addresses(candidates, family, record.answers, ctx)
        lost = () if addresses else _family_lost(candidates, family, ctx)
        if not lost:
            break
        rest = [c for c in start if c.cluster.name not in lost]
        if trace is not None:
            before, after = tuple(c.cluster.name for c in start), tuple(c.cluster.name for c in rest)
            trace.append(Step(f"ipv{family} down", before, after, why.family_lost(family, before, after)))
        start = rest
    if not candidates:
        chosen = ctx.fallback[family]
        if trace is not None:
            trace.append(Step("fallback", (), chosen.clusters, why.FALLBACK_WHY))
        return chosen
    return Selection(tuple(addresses), tuple(clusters), False, ecs_scope(client.location, client.ecs_source, depended))


def _addresses(
    candidates: list[Candidate], family: int, want: int, ctx: Context
) -> tuple[list[EndpointAddress], list[str]]:
    """Up to ``want`` addresses of ``family`` in candidate order, and the clusters they came from.

    A host-name endpoint gives the addresses it resolves to when the record flattens; otherwise it
    is a CNAME target, answered alone: a host name after an address is passed by, one before any
    address is the whole answer (within a cluster addresses come first: ``filters`` order them so).
    """
    addresses: list[EndpointAddress] = []
    clusters: list[str] = []
    flatten, resolved = ctx.record.hostnames == "flatten", ctx.snapshot.resolved
    for cand in candidates:
        took = False
        for endpoint in cand.endpoints:
            address = endpoint.address
            if address.version == family:
                addresses.append(address)
                took = True
                if len(addresses) >= want:
                    break
            elif not address.version:
                found = answers_of(endpoint, family, flatten, resolved)
                if not found:
                    continue
                if isinstance(found[0], HostName):
                    if addresses:
                        continue
                    return [found[0]], [cand.cluster.name]
                for one in found:
                    if one not in addresses:
                        addresses.append(one)
                        took = True
                        if len(addresses) >= want:
                            break
                if len(addresses) >= want:
                    break
        if took:
            clusters.append(cand.cluster.name)
            if len(addresses) >= want:
                break
    return addresses, clusters


def _family_lost(candidates: list[Candidate], family: int, ctx: Context) -> frozenset[str]:
    """Candidates with answers for ``family`` in the table but none among their eligible endpoints."""
    flatten, resolved = ctx.record.hostnames == "flatten", ctx.snapshot.resolved
    return frozenset(
        c.cluster.name
        for c in candidates
        if any(answers_of(e, family, flatten, resolved) for e in c.cluster.endpoints)
        and not any(answers_of(e, family, flatten, resolved) for e in c.endpoints)
    )


def decision(ctx: Context, client: Client, family: int, limit: int = MAX_PATHS) -> Decision | None:
    """Every Selection ``select`` can give ``client``, with its exact probability.

    Deterministic chains have one.  With ``weighted`` or ``shed`` in the chain, every path
    of its draws is run once (see ``dice.Explorer``) and paths that end in the
    same Selection are added up.  None when there are more than ``limit``
    paths; the caller then selects per query.
    """
    if not RANDOM_FILTERS.intersection(ctx.record.policy):
        return Decision.of({select(ctx, client, family): 1.0})
    explorer = Explorer(limit, family)
    twin = ctx.exploring(explorer)
    shares: dict[Selection, float] = {}
    try:
        while explorer.next_path():
            selection = select(twin, client, family)
            shares[selection] = shares.get(selection, 0.0) + explorer.probability
    except TooManyPaths:
        return None
    return Decision.of(shares)


class Contexts(Mapping[Name, Context]):
    """Record name -> its Context, each built the first time it is asked for.

    A new snapshot arrives with every health report, and building ten thousand
    contexts at once would stall the event loop for most of a second; built on
    demand, a report costs only its health view, and records whose answers the
    fast path already holds never need one.
    """

    __slots__ = ("_records", "_built", "_args", "_rng", "_load")

    def __init__(
        self,
        records: Iterable[RecordSpec],
        snapshot: Snapshot,
        health: HealthView,
        regions: Mapping[str, Region],
        rng: random.Random,
        load: LoadView = EMPTY,
    ):
        self._records = {record.name: record for record in records}
        self._built: dict[Name, Context] = {}
        self._args = (snapshot, health, regions)
        self._rng = rng
        self._load = load

    def get(self, name: Name, default=None):
        context = self._built.get(name)
        if context is None:
            record = self._records.get(name)
            if record is None:
                return default
            context = self._built[name] = Context(*self._args, record, self._rng, self._load)
        return context

    def __getitem__(self, name: Name) -> Context:
        context = self.get(name)
        if context is None:
            raise KeyError(name)
        return context

    def __iter__(self):
        return iter(self._records)

    def __len__(self) -> int:
        return len(self._records)


def contexts(
    records: Iterable[RecordSpec],
    snapshot: Snapshot,
    health: HealthView,
    regions: Mapping[str, Region],
    rng: random.Random | None = None,
    load: LoadView = EMPTY,
) -> Contexts:
    """One Context per record (keyed by ``record.name``), sharing one random generator.

    Call it again whenever the snapshot, the health view or the load view is replaced.
    """
    return Contexts(records, snapshot, health, regions, rng if rng is not None else random.Random(), load)
