"""Where a client is: operator networks first, then a MaxMind-format database.

See DESIGN.md ("geo/").  Everything here that runs per query is memory only.
"""

from .distance import great_circle_km
from .location import UNKNOWN, Location
from .locator import Locator

__all__ = ["Location", "Locator", "UNKNOWN", "great_circle_km"]
