"""The memo as the batched UDP reader sees it (``dns.udp.MemoFeed``): it answers the memo's hits itself.

The reader (geodns/dns/udp.py, its loop in C) looks each UDP query up in the
fast path's memo and splices the ID onto the stored answer without entering
Python, which is what ``FastPath.answer`` does for a memo hit.  What Python
still does for those queries happens here, once per batch instead of once per
query: ``memo`` runs the fast path's freshness checks (a new live view or new
signatures drop stale entries) before each call of the loop (up to four batches,
which no other task can interleave), and hands over the subnet
templates' answer in C (``FastPath.hook``) for first sights; ``account`` adds what the
batch's hits counted to the same counters ``engine.handle`` keeps (queries per
zone, type and rcode; ECS; the answer-time histogram; the fast path's hits),
so /metrics cannot tell which loop answered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .counters import DURATION_BUCKETS

if TYPE_CHECKING:
    from .engine import AnswerEngine
    from .fastpath import FastPath


class EngineFeed:
    """``dns.udp.MemoFeed`` over whichever engine is current (a reload replaces it)."""

    bounds = DURATION_BUCKETS

    def __init__(self, engine: Callable[[], AnswerEngine | None]):
        self._engine = engine
        self._fast: FastPath | None = None  # the fast path the last ``memo`` came from

    def memo(self) -> tuple[dict, tuple | None] | None:
        engine = self._engine()
        fast = self._fast = engine.fast if engine is not None else None
        if fast is None:
            return None
        return fast.ready(), fast.hook()

    def account(self, counted: tuple) -> None:
        fast = self._fast
        assert fast is not None  # counted only after ``memo`` handed a memo out
        hits, ecs, nanos, buckets, pairs = counted
        fast.hits += hits
        stats = fast.engine.stats
        for (origin, qtype, rcode), n in pairs:
            stats.count((origin, qtype, rcode, False), n)
        stats.ecs_present += ecs
        histogram = stats.duration_buckets
        for i, n in enumerate(buckets):
            histogram[i] += n
        stats.duration_sum += nanos / 1e9
