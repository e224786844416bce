"""Network -> area on the query path: one binary search, and the widest network of one area.

``compile.py`` makes the runs (each a range of addresses in one area, adjacent
runs in different areas); this answers "which area, and how wide" for an
address: the run holding it is found with ``bisect`` over the run starts, and
the ECS scope is the shortest prefix around the address that stays inside the
run (``widest``).  That is as wide as the answer allows for every record whose
only location-reading filter is ``geo`` (``areas.py`` says why), and it costs
the same for a network never seen before as for one seen a million times.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from dataclasses import replace

from .compile import EXACT, Compiled
from .location import Location


def widest(value: int, lo: int, hi: int, bits: int) -> int:
    """The shortest prefix length whose network around ``value`` lies inside [lo, hi].

    The network of host bits m starts at value >> m << m.  It starts at or after
    ``lo`` for every m below the highest bit where value and lo differ, and above
    that only while lo's own low m bits are zero; the same holds mirrored for the
    end and ``hi`` with one bits.  (A test checks this against the plain loop.)
    """
    h = (value ^ lo).bit_length()
    zeros = (lo & -lo).bit_length() - 1 if lo else bits
    m_lo = zeros if zeros >= h else h - 1
    h = (value ^ hi).bit_length()
    after = hi + 1
    ones = (after & -after).bit_length() - 1 if after < 1 << bits else bits
    m_hi = ones if ones >= h else h - 1
    return bits - min(m_lo, m_hi, bits)


class AreaMap:
    """The compiled runs of both IP versions, read-only once built."""

    __slots__ = ("_tables", "areas", "_interned", "runs", "arrays")

    def __init__(self, compiled: Compiled):
        v4 = array("I", compiled.v4_starts)
        self._tables = {
            4: (v4, array("i", compiled.v4_ids), 32),
            6: (compiled.v6_starts, array("i", compiled.v6_ids), 128),
        }
        self.areas = compiled.areas
        self.runs = len(compiled.v4_starts) + len(compiled.v6_starts)  # for logs and tests
        self._interned: dict[int, Location] = {}  # area << 8 | prefix -> its Location
        # The same runs for the C loop (answer/_subnets.c, which does ``locate`` itself): IPv6
        # starts split into their high and low 64 bits, and the interned places it looks up.
        mask = (1 << 64) - 1
        self.arrays = (
            v4,
            self._tables[4][1],
            array("Q", [start >> 64 for start in compiled.v6_starts]),
            array("Q", [start & mask for start in compiled.v6_starts]),
            self._tables[6][1],
            self._interned,
        )

    def locate(self, version: int, value: int) -> Location | None:
        """The Location standing for the address's area, with ``prefix`` its widest network
        of that area; None where the map has nothing to say (the Locator answers)."""
        starts, ids, bits = self._tables[version]
        i = bisect_right(starts, value) - 1
        if i < 0:
            return None
        area = ids[i]
        if area == EXACT:
            return None
        top = starts[i + 1] - 1 if i + 1 < len(starts) else (1 << bits) - 1
        prefix = widest(value, starts[i], top, bits)
        return self._interned.get(area << 8 | prefix) or self._intern(area, prefix)

    def widened(self, found: Location, bits: int) -> Location:
        """``found`` (from ``locate``) with ``bits`` more of prefix: an IPv4 area seen through ::ffff:0:0/96."""
        return self._intern(self.areas.index(replace(found, prefix=0)), found.prefix + bits)

    def _intern(self, area: int, prefix: int) -> Location:
        """One Location per (area, prefix), so a decision cache keyed by it has few keys."""
        key = area << 8 | prefix
        found = self._interned.get(key)
        if found is None:
            found = self._interned[key] = replace(self.areas[area], prefix=prefix)
        return found
