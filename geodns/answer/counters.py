"""What the query path counts: plain integers and dicts, read by the exporter at scrape time.

The answer engine increments these directly (an integer add, one dict update
keyed by a tuple of values it already holds); turning them into Prometheus
metric families, label text and cumulative buckets happens only when someone
scrapes ``/metrics`` (see ``geodns/http/metrics.py``).  A prometheus-client
``Counter.labels(...).inc()`` per query would cost a lock and a label lookup
on every answer.

One ``QueryStats`` lives as long as the ``Server``; each engine built by a
reload is handed the same object, so counters never go backwards on reload.
"""

from __future__ import annotations

from bisect import bisect_left

from ..dns.names import Name

# Upper bounds (seconds) of the answer-time histogram; answers take tens of microseconds.
DURATION_BUCKETS: tuple[float, ...] = (
    0.00001,
    0.000025,
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.1,
)

# (zone origin or None, qtype, rcode, tcp) -> queries.  ``None``: outside every served zone.
QueryKey = tuple[Name | None, int, int, bool]


class QueryStats:
    """Counters of everything the engine answered; mutated only on the event loop's thread."""

    __slots__ = ("queries", "duration_buckets", "duration_sum", "truncated", "ecs_present", "dropped", "malformed")

    def __init__(self) -> None:
        self.queries: dict[QueryKey, int] = {}
        # Per bucket of DURATION_BUCKETS, plus one for +Inf; not cumulative (the exporter sums).
        self.duration_buckets: list[int] = [0] * (len(DURATION_BUCKETS) + 1)
        self.duration_sum = 0.0
        self.truncated = 0
        self.ecs_present = 0  # queries with an EDNS Client Subnet option (the rest: total - this)
        self.dropped = 0  # messages answered with nothing (responses, runts)
        self.malformed = 0  # answered FORMERR/NOTIMP before the question could be read

    def observe(self, seconds: float) -> None:
        """One answer time into the histogram (used by the error paths; the hot path inlines it)."""
        self.duration_buckets[bisect_left(DURATION_BUCKETS, seconds)] += 1
        self.duration_sum += seconds

    @property
    def total(self) -> int:
        return sum(self.queries.values())
