"""A bounded cache that a flood of one-time keys cannot empty: a segmented LRU.

The answer path keeps three caches keyed by what resolvers send (the fast
path's memo, the clients per subnet, the decisions per client place), and a
resolver can send anything: random ECS subnets are one-time keys.  Clearing a
full cache, or evicting its oldest entry, lets such a flood push out the
entries that steady traffic hits every second.

So a new key enters *probation*, a small FIFO segment; a hit there promotes it
to the *protected* segment, which only promotions ever grow.  One-time keys
come and go through probation and never touch protected; the entry promoted
longest ago leaves protected first and gets one more chance in probation,
where its next hit promotes it again.  (SLRU, as in Karedla et al. 1994; the
same idea as 2Q and as the W-TinyLFU window.)  Protected keeps promotion order,
not recency: a hit there is then a plain dict look-up (``hit``), which is what
the fast path's memo does for nearly every query, and what the second chance
costs is one trip through probation for an entry still in use.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from typing import Any

_MISSING: Any = object()


class Segmented:
    """``get``/``put`` like a dict, bounded by ``size`` entries and, with ``weigh``, by ``weight``."""

    __slots__ = (
        "protected",
        "probation",
        "_protected_max",
        "_probation_max",
        "_weigh",
        "_max_weight",
        "weight",
        "hit",
    )

    def __init__(
        self,
        size: int,
        probation_share: float = 0.2,
        weigh: Callable[[Any], int] | None = None,
        max_weight: int = 0,
    ):
        self._probation_max = max(1, int(size * probation_share))
        self._protected_max = max(1, size - self._probation_max)
        self.protected: OrderedDict[Hashable, Any] = OrderedDict()
        self.probation: OrderedDict[Hashable, Any] = OrderedDict()
        self._weigh = weigh
        self._max_weight = max_weight
        self.weight = 0
        # The protected segment's own look-up (``dict.get``): a hit costs no more than a dict's.
        # ``None`` when the key is not there (or holds None); ``get`` looks in probation too.
        self.hit = self.protected.get

    def get(self, key: Hashable, default: Any = None) -> Any:
        value = self.protected.get(key, _MISSING)
        if value is not _MISSING:
            return value
        value = self.probation.pop(key, _MISSING)
        if value is _MISSING:
            return default
        self._promote(key, value)
        return value

    def put(self, key: Hashable, value: Any) -> None:
        """Remember ``value``: in probation for a new key, in place for a known one."""
        weigh = self._weigh
        for segment in (self.protected, self.probation):
            old = segment.get(key, _MISSING)
            if old is not _MISSING:
                if weigh is not None:
                    self.weight += weigh(value) - weigh(old)
                segment[key] = value
                self._trim()
                return
        self.probation[key] = value
        if weigh is not None:
            self.weight += weigh(value)
        self._trim()

    def _promote(self, key: Hashable, value: Any) -> None:
        protected = self.protected
        protected[key] = value
        if len(protected) > self._protected_max:
            old_key, old_value = protected.popitem(last=False)
            self.probation[old_key] = old_value  # one more chance, at the young end
            self._trim()

    def _trim(self) -> None:
        probation = self.probation
        weigh = self._weigh
        while len(probation) > self._probation_max:
            _, value = probation.popitem(last=False)
            if weigh is not None:
                self.weight -= weigh(value)
        if weigh is not None:
            while self.weight > self._max_weight and (probation or self.protected):
                _, value = (probation or self.protected).popitem(last=False)
                self.weight -= weigh(value)

    def __len__(self) -> int:
        return len(self.protected) + len(self.probation)

    def __contains__(self, key: Hashable) -> bool:
        return key in self.protected or key in self.probation

    def items(self) -> Iterator[tuple[Hashable, Any]]:
        yield from self.protected.items()
        yield from self.probation.items()

    def keep(self, wanted: Callable[[Any], bool]) -> None:
        """Drop every entry whose value is not ``wanted`` (a new live state made it stale)."""
        weigh = self._weigh
        for segment in (self.protected, self.probation):
            for key in [k for k, v in segment.items() if not wanted(v)]:
                value = segment.pop(key)
                if weigh is not None:
                    self.weight -= weigh(value)

    def clear(self) -> None:
        self.protected.clear()
        self.probation.clear()
        self.weight = 0
