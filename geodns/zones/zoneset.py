"""All the zones one server answers for, and which one a query name falls in."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from ..dns.names import Name, to_text
from ..errors import Problem, ZoneError
from .reader import load_zone
from .zone import Zone


class ZoneSet:
    """An immutable set of zones keyed by origin.

    zone_for() picks the deepest origin the name is at or below, so a child
    zone served by the same process (say sub.gslb.example.com beside
    gslb.example.com) answers for its own names.
    """

    __slots__ = ("_zones", "_lengths")

    def __init__(self, zones: Iterable[Zone]):
        by_origin: dict[Name, Zone] = {}
        problems: list[Problem] = []
        for zone in zones:
            first = by_origin.get(zone.origin)
            if first is not None:
                problems.append(
                    Problem(zone.source, None, f"zone {to_text(zone.origin)} is already loaded from {first.source}")
                )
            else:
                by_origin[zone.origin] = zone
        if problems:
            raise ZoneError(problems)
        self._zones = by_origin
        # Origin lengths, longest first: the only suffixes worth probing.
        self._lengths = tuple(sorted({len(o) for o in by_origin}, reverse=True))

    def zone_for(self, qname: Name) -> Zone | None:
        """The zone with the longest origin at or above ``qname``, or None."""
        zones = self._zones
        size = len(qname)
        for length in self._lengths:
            if length <= size:
                zone = zones.get(qname[size - length :])
                if zone is not None:
                    return zone
        return None

    def get(self, origin: Name) -> Zone | None:
        return self._zones.get(origin)

    def __iter__(self) -> Iterator[Zone]:
        return iter(self._zones.values())

    def __len__(self) -> int:
        return len(self._zones)

    def __repr__(self) -> str:
        return f"ZoneSet({', '.join(to_text(o) for o in self._zones)})"


def load_zones(paths: Iterable[str | os.PathLike[str]]) -> ZoneSet:
    """Load every file, then build the set; one ZoneError carries all files' problems."""
    zones: list[Zone] = []
    problems: list[Problem] = []
    for path in paths:
        try:
            zones.append(load_zone(path))
        except ZoneError as e:
            problems.extend(e.problems)
    try:
        zone_set = ZoneSet(zones)
    except ZoneError as e:
        problems.extend(e.problems)
    if problems:
        raise ZoneError(problems)
    return zone_set
