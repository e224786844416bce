"""Areas: the places that the ``geo`` filter cannot tell apart.

The ``geo`` filter reads a client's location in a fixed order: the operator
network's region, then the regions serving its country, then those of its
continent, then the nearest region by distance, and with none of those it
keeps every candidate.  Whatever the candidates, its answer is the candidates
of the first of those *tiers* that holds any.  So two locations whose tiers
are equal (after each tier drops the regions an earlier one already named, and
empty tiers go) get the same answer from ``geo`` for every record and every
health state: they are one *area*.  A City database has a few hundred thousand
places; three regions make at most thirteen areas.

That is what makes a client network seen for the first time cheap
(``netmap.AreaMap``): the database is compiled once into network -> area, and
a record's decision is made once per area, not once per network.  Filters
that read more than the tiers (``latency`` reads exact coordinates) keep
asking the ``Locator`` for the exact location.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..config.model import Region
from .distance import great_circle_km
from .location import Location

# (located, tiers): ``located`` keeps unlocated clients apart (they count as geo misses).
AreaKey = tuple[bool, tuple[frozenset[str], ...]]


@dataclass(frozen=True)
class RegionIndex:
    """The configured regions as the ``geo`` filter reads them (``gslb.model.Context`` builds the same)."""

    regions: Mapping[str, Region]
    countries: Mapping[str, frozenset[str]]
    continents: Mapping[str, frozenset[str]]

    @classmethod
    def of(cls, regions: Mapping[str, Region]) -> RegionIndex:
        countries: dict[str, set[str]] = {}
        continents: dict[str, set[str]] = {}
        for region in regions.values():
            continents.setdefault(region.continent, set()).add(region.name)
            for country in region.countries:
                countries.setdefault(country, set()).add(region.name)
        return cls(
            dict(regions),
            {k: frozenset(v) for k, v in countries.items()},
            {k: frozenset(v) for k, v in continents.items()},
        )


def area_key(location: Location, index: RegionIndex) -> AreaKey:
    """The tiers ``geo`` would try for ``location``, each without the regions of the ones before.

    Mirrors ``gslb.filters.geo`` (and ``nearest``) rule for rule; a test checks that
    locations with one key get one answer from ``geo`` for every set of candidates.
    A candidate in a region no tier names is reached only when no tier holds one, and
    then ``geo`` keeps them all: the implicit last tier, the same for every area.
    """
    if location.source == "none":
        return False, ()
    raw: list[frozenset[str]] = []
    continent = location.continent
    home = None
    if location.region is not None:
        raw.append(frozenset((location.region,)))
        home = index.regions.get(location.region)
        if continent is None and home is not None:
            continent = home.continent
    if location.country is not None:
        raw.append(index.countries.get(location.country, frozenset()))
    if continent is not None:
        raw.append(index.continents.get(continent, frozenset()))
    point: tuple[float, float] | None = None
    if location.lat is not None and location.lon is not None:
        point = location.lat, location.lon
    elif home is not None:
        point = home.lat, home.lon
    if point is not None:
        lat, lon = point
        by_km: dict[float, set[str]] = {}
        for region in index.regions.values():
            by_km.setdefault(great_circle_km(lat, lon, region.lat, region.lon), set()).add(region.name)
        raw += [frozenset(by_km[km]) for km in sorted(by_km)]
    tiers: list[frozenset[str]] = []
    seen: set[str] = set()
    for tier in raw:
        fresh = tier - seen
        if fresh:
            tiers.append(fresh)
            seen |= fresh
    return True, tuple(tiers)
