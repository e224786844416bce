"""What the query path counts: plain integers and dicts, read by the exporter at scrape time.

The answer engine increments these directly (an integer add, one dict update
keyed by a tuple of values it already holds); turning them into Prometheus
metric families, label text and cumulative buckets happens only when someone
scrapes ``/metrics`` (see ``geodns/http/metrics.py``).  A prometheus-client
``Counter.labels(...).inc()`` per query would cost a lock and a label lookup
on every answer.

``QueryStats`` counts what the engine answered; ``GslbCounters`` what the GSLB responder
decided (one ``Tally`` per record and answer, which the fast path keeps a reference to).

One ``QueryStats`` lives as long as the ``Server``; each engine built by a
reload is handed the same object, so counters never go backwards on reload.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..dns.names import Name
from ..dnssec.counters import SigningCounters

if TYPE_CHECKING:
    from ..gslb.policy import Selection

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

# Query types counted under their own number in the metrics; the rest count as 0 ("other"),
# so random types from the Internet cannot grow the counters without bound.
COUNTED_QTYPES = frozenset((1, 2, 5, 6, 12, 13, 15, 16, 28, 33, 35, 43, 46, 48, 52, 64, 65, 99, 251, 252, 255, 257))

# (zone origin or None, qtype, rcode, tcp) -> queries.  ``None``: outside every served zone.
QueryKey = tuple[Name | None, int, int, bool]


class QueryStats:
    """Counters of everything the engine answered; mutated only on the event loop's thread."""

    __slots__ = (
        "queries",
        "duration_buckets",
        "duration_sum",
        "truncated",
        "ecs_present",
        "dropped",
        "malformed",
        "dnssec",
    )

    def __init__(self) -> None:
        self.queries: dict[QueryKey, int] = {}
        # Per bucket of DURATION_BUCKETS, plus one for +Inf; not cumulative (the exporter sums).
        self.duration_buckets: list[int] = [0] * (len(DURATION_BUCKETS) + 1)
        self.duration_sum = 0.0
        self.truncated = 0
        self.ecs_present = 0  # queries with an EDNS Client Subnet option (the rest: total - this)
        self.dropped = 0  # messages answered with nothing (responses, runts)
        self.malformed = 0  # answered FORMERR/NOTIMP before the question could be read
        self.dnssec = SigningCounters()  # signatures made and reused, the earliest expiry held

    def count(self, key: QueryKey, n: int) -> None:
        """Count ``n`` answers under ``key``, a rare query type under 0 ("other")."""
        if key[1] not in COUNTED_QTYPES:
            key = (key[0], 0, key[2], key[3])
        self.queries[key] = self.queries.get(key, 0) + n

    @property
    def total(self) -> int:
        return sum(self.queries.values())

    def add(self, other: QueryStats) -> QueryStats:
        """Add ``other``'s counts to these (a worker's to the supervisor's total); returns self."""
        queries = self.queries
        for key, n in other.queries.items():
            queries[key] = queries.get(key, 0) + n
        for i, n in enumerate(other.duration_buckets):
            self.duration_buckets[i] += n
        self.duration_sum += other.duration_sum
        self.truncated += other.truncated
        self.ecs_present += other.ecs_present
        self.dropped += other.dropped
        self.malformed += other.malformed
        self.dnssec.add(other.dnssec)
        return self


class Tally:
    """One counter the query path bumps in place: the fast path keeps a reference, so a
    count costs no dict look-up (and no hashing of the tuple key) per answer."""

    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0


@dataclass
class GslbCounters:
    """What the GSLB responder counts (ECS seen, geo misses, answers per record and clusters);
    plain counters the metrics layer reads; the query path only increments."""

    ecs: int = 0
    geo_misses: int = 0
    # (record name, clusters answered, fallback?) -> answers; clusters () is NODATA.
    # The exporter turns it into answers per cluster and fallbacks per record.
    answers: dict[tuple[Name, tuple[str, ...], bool], Tally] = field(default_factory=dict)

    def tally(self, name: Name, selection: Selection) -> Tally:
        """The counter of answers like ``selection`` for record ``name``."""
        return self._counter((name, selection.clusters, selection.fallback))

    def _counter(self, key: tuple[Name, tuple[str, ...], bool]) -> Tally:
        counter = self.answers.get(key)
        if counter is None:
            counter = self.answers[key] = Tally()
        return counter

    def counts(self) -> dict[tuple[Name, tuple[str, ...], bool], int]:
        return {key: counter.n for key, counter in list(self.answers.items())}

    def export(self) -> tuple[dict, int, int]:
        """Plain values to send elsewhere (a worker to its supervisor); ``add`` takes them."""
        return self.counts(), self.ecs, self.geo_misses

    def add(self, exported: tuple[dict, int, int]) -> GslbCounters:
        counts, ecs, geo_misses = exported
        for key, n in counts.items():
            self._counter(key).n += n
        self.ecs += ecs
        self.geo_misses += geo_misses
        return self

    @property
    def fallbacks(self) -> int:
        return sum(n for (_name, _clusters, fell_back), n in self.counts().items() if fell_back)
