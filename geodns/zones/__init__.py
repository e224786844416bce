"""Static zone data: RFC 1035 master files loaded into immutable look-up structures."""

from .reader import load_zone, parse_zone
from .zone import Match, MatchKind, Record, Zone
from .zoneset import ZoneSet, load_zones

__all__ = ["Zone", "Match", "MatchKind", "Record", "load_zone", "parse_zone", "ZoneSet", "load_zones"]
