"""The policy filters: each takes candidates and returns fewer or reordered ones.

Contract shared by all of them: never mutate the input list (return it as is
when nothing changes, to save an allocation), keep the input order unless the
filter's job is ordering, and pass an empty list through harmlessly.  They
are pure apart from ``weighted`` and ``shed`` drawing from ``ctx.dice`` (see
``dice.py``).  Each is declared once, in config/filters.py's ``DECLARED`` (its
config word and the properties the rest of the server reads: whether it makes
the ECS scope, whether it draws); ``FILTERS`` maps each word to the function of
that name here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TypeVar

from ..config.filters import DECLARED
from ..geo.distance import great_circle_km
from ..geo.location import Location
from ..state.model import Endpoint
from .dice import Draws
from .model import Candidate, Client, Context, healthy_candidate

Filter = Callable[[list[Candidate], Client, Context], list[Candidate]]

T = TypeVar("T")

# Light in fibre covers about 200 km per ms one way: 1 ms of round trip per 100 km,
# plus a fixed cost for the last mile and the equipment on the way.
RTT_MS_PER_KM = 0.01
RTT_BASE_MS = 5.0


def estimate_rtt_ms(km: float) -> float:
    """A round-trip time guessed from distance, for clusters nobody has measured."""
    return km * RTT_MS_PER_KM + RTT_BASE_MS


def healthy(candidates: list[Candidate], client: Client, ctx: Context) -> list[Candidate]:
    """Drop clusters that are not up (down, drained, forced down); keep only up endpoints."""
    precomputed = ctx.healthy
    health = ctx.health
    out: list[Candidate] = []
    for cand in candidates:
        name = cand.cluster.name
        if cand.endpoints is cand.cluster.endpoints and name in precomputed:
            kept = precomputed[name]  # the common case: worked out once per snapshot
        else:
            kept = healthy_candidate(cand, health)
        if kept is not None:
            out.append(kept)
    return out


def geo(candidates: list[Candidate], client: Client, ctx: Context, notes: list[str] | None = None) -> list[Candidate]:
    """Keep the clusters of the client's region: operator network, then country, then continent.

    When none of those names a candidate's region, keep the nearest region's
    clusters by great-circle distance.  A client that only an operator network
    placed (no country, no coordinates) stands where its region is, so an
    office mapped to a region without clusters still gets the nearest ones.
    With nothing to go on (unknown location, or no coordinates and no match)
    the list is unchanged: a wrong guess would be worse than letting the next
    filter decide.  ``notes`` (explain only, ``why.py``) gets the rule that decided, in words.
    """
    location = client.location
    if len(candidates) < 2 or location.source == "none":
        if notes is not None:
            notes.append("client not located: unchanged" if candidates[1:] else "one candidate or none: unchanged")
        return candidates  # one candidate survives geo whatever the client
    continent = location.continent
    if location.region is not None:
        kept = [c for c in candidates if c.cluster.region == location.region]
        if kept:
            if notes is not None:
                by = "geoip.unlocated" if location.source == "default" else "operator network"
                notes.append(f"{by} puts the client in region {location.region}")
            return kept
        home = ctx.regions.get(location.region)
        if continent is None and home is not None:
            continent = home.continent
    if location.country is not None:
        regions = ctx.country_regions.get(location.country)
        if regions:
            kept = [c for c in candidates if c.cluster.region in regions]
            if kept:
                if notes is not None:
                    notes.append(f"country {location.country} matches region {', '.join(sorted(regions))}")
                return kept
    if continent is not None:
        regions = ctx.continent_regions.get(continent)
        if regions:
            kept = [c for c in candidates if c.cluster.region in regions]
            if kept:
                if notes is not None:
                    notes.append(
                        f"no candidate for country {location.country or '-'}; "
                        f"continent {continent} matches region {', '.join(sorted(regions))}"
                    )
                return kept
    place = client_place(location, ctx)
    if place is None:
        if notes is not None:
            notes.append("no region matches and no coordinates: unchanged")
        return candidates
    return nearest(candidates, place[0], place[1], ctx, notes)


def client_place(location: Location, ctx: Context) -> tuple[float, float] | None:
    """The client's coordinates, else those of the region an operator network put it in."""
    if location.lat is not None and location.lon is not None:
        return location.lat, location.lon
    if location.region is not None:
        home = ctx.regions.get(location.region)
        if home is not None:
            return home.lat, home.lon
    return None


def nearest(
    candidates: list[Candidate], lat: float, lon: float, ctx: Context, notes: list[str] | None = None
) -> list[Candidate]:
    """The candidates of the region(s) nearest to (lat, lon); unchanged if no region is known."""
    distances: dict[str, float] = {}
    best = math.inf
    for cand in candidates:
        region = cand.cluster.region
        km = distances.get(region)
        if km is None:
            place = ctx.regions.get(region)
            km = math.inf if place is None else great_circle_km(lat, lon, place.lat, place.lon)
            distances[region] = km
            best = min(best, km)
    if best == math.inf:
        if notes is not None:
            notes.append("no region matches and no candidate region has coordinates: unchanged")
        return candidates
    if notes is not None:
        ranked = sorted(distances.items(), key=lambda kv: kv[1])
        notes.append(
            f"no region matches the client; nearest region {ranked[0][0]} at {best:,.0f} km"
            + "".join(f", {r} {km:,.0f} km" for r, km in ranked[1:] if km != math.inf)
        )
    return [c for c in candidates if distances[c.cluster.region] == best]


def latency(
    candidates: list[Candidate], client: Client, ctx: Context, notes: list[str] | None = None
) -> list[Candidate]:
    """Order by RTT and keep those within tolerance of the best, so close calls do not flap.

    The RTT is the one measured from the vantage nearest the client (placed as
    ``client_place`` says), if that vantage is within the record's ``latency_reach_km``
    (clients with no place use each cluster's best vantage), else an estimate
    from the client's distance to the cluster's region.  A candidate with
    neither is dropped when others have a figure; with no figures at all the
    list is unchanged.  The tolerance is the wider of
    ``latency_tolerance_pct`` percent of the best and ``latency_tolerance_ms``.
    ``notes`` (explain only) gets each candidate's figure and where it came from.
    """
    if len(candidates) < 2:
        if notes is not None:
            notes.append("one candidate or none: unchanged")
        return candidates
    place = client_place(client.location, ctx)
    health = ctx.health
    vantage = _nearest_vantage(place[0], place[1], ctx) if place is not None else None
    scored: list[tuple[float, int, Candidate]] = []
    how: dict[str, str] | None = {} if notes is not None else None
    for i, cand in enumerate(candidates):
        name = cand.cluster.name
        km = None
        if vantage is not None:
            ms = health.rtt_ms(name, vantage)
        elif place is None:
            ms = health.min_rtt_ms(name)
        else:
            ms = None
        if ms is None and place is not None:
            region = ctx.regions.get(cand.cluster.region)
            if region is not None:
                km = great_circle_km(place[0], place[1], region.lat, region.lon)
                ms = estimate_rtt_ms(km)
        if ms is not None:
            scored.append((ms, i, cand))  # i breaks ties in input order; cand is never compared
        if how is not None:  # explaining: say where each figure came from
            how[name] = (
                f"{name} no figure"
                if ms is None
                else f"{name} {ms:.1f} ms estimated from {km:,.0f} km"
                if km is not None
                else f"{name} {ms:.1f} ms measured from {vantage}"
                if vantage is not None
                else f"{name} {ms:.1f} ms best measured"
            )
    if not scored:
        if notes is not None:
            notes.append("no RTT measured or estimable: unchanged")
        return candidates
    scored.sort()
    best = scored[0][0]
    record = ctx.record
    limit = best + max(best * record.latency_tolerance_pct / 100.0, record.latency_tolerance_ms)
    if notes is not None and how is not None:
        where = (
            f"vantage {vantage} is the nearest checker within {record.latency_reach_km:g} km"
            if vantage
            else "no checker within reach: distance estimates"
            if place is not None
            else "client not placed: each cluster's best measurement"
        )
        notes.append(f"{where}; {', '.join(how.values())}; kept those within {limit:.1f} ms")
    return [cand for ms, _i, cand in scored if ms <= limit]


def _nearest_vantage(lat: float, lon: float, ctx: Context) -> str | None:
    best, best_km = None, ctx.record.latency_reach_km
    for name, vlat, vlon in ctx.vantage_points:
        km = great_circle_km(lat, lon, vlat, vlon)
        if km < best_km:
            best, best_km = name, km
    return best


def weighted(candidates: list[Candidate], client: Client, ctx: Context) -> list[Candidate]:
    """Weighted random order of clusters, and of endpoints within each cluster.

    Sampling without replacement, so the first place goes to cluster i with
    probability weight_i / total, and later places spread the same way over
    the rest.  Weight 0 is standby, as in Route 53: standby clusters are kept
    only when no positive-weight cluster is left, and then in uniform random
    order.  For endpoints the same holds per address family, so an IPv6-only
    standby endpoint is not hidden by an IPv4 one.
    """
    if not candidates:
        return candidates
    dice = ctx.dice
    active = [c for c in candidates if c.cluster.weight > 0]
    if active:
        ordered = weighted_order(active, [c.cluster.weight for c in active], dice)
    else:
        ordered = weighted_order(candidates, [1] * len(candidates), dice)
    return [_order_endpoints(c, dice) for c in ordered]


def weighted_order(items: Sequence[T], weights: Sequence[float], dice: Draws) -> list[T]:
    """Successive weighted draws without replacement; weights must be positive."""
    if len(items) < 2:
        return list(items)
    pool = list(items)
    left = list(weights)
    total = sum(left)
    out: list[T] = []
    while len(pool) > 1:
        i = dice.pick(left, total)
        out.append(pool.pop(i))
        total -= left.pop(i)
    out.append(pool[0])
    return out


def _order_endpoints(cand: Candidate, dice: Draws) -> Candidate:
    """Each address family in its own weighted order (IPv4 first, then IPv6, then host names).

    An answer only ever holds one family, and the order successive draws give
    a subset is the order they give the subset alone, so ordering per family
    changes no answer's odds.  It lets ``policy.decision`` walk the draws of
    the one family it asks about (``dice.family``) and leave the other's
    order alone, instead of multiplying its paths by every order of the other.
    """
    endpoints = cand.endpoints
    n = len(endpoints)
    if n < 2:
        return cand
    if n == 2:
        first, second = endpoints
        versions = (first.address.version, second.address.version)
        if versions in ((4, 6), (6, 4)) and first.weight > 0 and second.weight > 0:
            return cand  # one per family: the order cannot change any answer
    only = dice.family
    ordered: list[Endpoint] = []
    for family in (4, 6, 0):  # 0: host names, answered for either family
        mine = [e for e in endpoints if e.address.version == family]
        if not mine and not family:
            continue
        active = [e for e in mine if e.weight > 0]
        if only is not None and family != only and family:
            ordered += active or mine  # not drawn: no answer of this run reads its order
        elif active:
            ordered += weighted_order(active, [e.weight for e in active], dice)
        else:
            dice.shuffle(mine)  # standby endpoints answer only when the family has no other
            ordered += mine
    return Candidate(cand.cluster, tuple(ordered))


def failover(candidates: list[Candidate], client: Client, ctx: Context) -> list[Candidate]:
    """Keep the single highest-priority candidate (lowest ``priority``, then record order).

    Only candidates with an eligible endpoint count; which endpoints are
    eligible is the earlier filters' business, so put ``healthy`` first.
    """
    order = ctx.order
    last = len(order)
    best: Candidate | None = None
    best_key = (0, 0)
    for cand in candidates:
        if not cand.endpoints:
            continue
        key = (cand.cluster.priority, order.get(cand.cluster.name, last))
        if best is None or key < best_key:
            best, best_key = cand, key
    return [] if best is None else [best]


def first_n(candidates: list[Candidate], client: Client, ctx: Context) -> list[Candidate]:
    """Keep the first ``record.answers`` candidates."""
    n = ctx.record.answers
    return candidates if len(candidates) <= n else candidates[:n]


def shed(candidates: list[Candidate], client: Client, ctx: Context) -> list[Candidate]:
    """Send a cluster's shed share of new answers to the other candidates (see gslb/load.py).

    Each candidate whose cluster sheds part of its answers stays with
    probability 1 - share, drawn through ``ctx.dice`` so the decisions
    (and ``explain``, the status page, /api/v1/traffic) hold the exact shares;
    one whose share is 1 (load at or above its high watermark) is out.  With
    nothing left, the partly shed ones stay, else all: shedding never empties
    the answer, and one candidate alone is never shed.  Where the shed answers
    go is the rest of the chain's business, so put ``shed`` before ``geo`` or
    ``latency`` to send them to the next region, after them to keep them in it.
    """
    states = ctx.load.states
    if len(candidates) < 2 or not states:
        return candidates
    dice = ctx.dice
    kept: list[Candidate] = []
    partly: list[Candidate] = []
    for cand in candidates:
        state = states.get(cand.cluster.name)
        share = 0.0 if state is None else state.share
        if share <= 0.0:
            kept.append(cand)
        elif share < 1.0:
            partly.append(cand)
            if dice.pick((1.0 - share, share), 1.0) == 0:
                kept.append(cand)
    if len(kept) == len(candidates):
        return candidates
    return kept or partly or candidates


def _run_of(word: str) -> Filter:
    """The function this module runs for a declared filter word: the one named like it."""
    run = globals().get(word)
    if not callable(run):
        raise ImportError(
            f"filter {word!r} is declared in config/filters.py but gslb/filters.py has no function for it"
        )
    return run


FILTERS: dict[str, Filter] = {word: _run_of(word) for word in DECLARED}
NOTED = frozenset(name for name, info in DECLARED.items() if info.notes)

# Filters whose output depends on where the client is: they make the ECS scope.
LOCATION_FILTERS = frozenset(name for name, info in DECLARED.items() if info.reads_location)
# Filters that draw at random: a chain with one has more than one answer in its decision.
RANDOM_FILTERS = frozenset(name for name, info in DECLARED.items() if info.draws)
