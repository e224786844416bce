"""What a checker counts as it runs: probes by outcome, probe durations, reports to the store.

Plain integers and lists, added to by the checker after each probe and each
report; ``geodns/health/metrics.py`` turns them (with the checker's live
state) into Prometheus families at scrape time.  Nothing here imports
prometheus-client, so the checker costs no more than a few dict updates.
"""

from __future__ import annotations

import bisect

from .probe import OUTCOMES

CheckKey = tuple[str, str]  # (cluster, endpoint address as text)

# Seconds; a probe is bounded by its check's timeout (default 2 s, at most the interval).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Durations:
    """One histogram's counts: per bucket (the last is +Inf, not cumulative), sum and count."""

    __slots__ = ("buckets", "sum")

    def __init__(self) -> None:
        self.buckets = [0] * (len(DURATION_BUCKETS) + 1)
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.buckets[bisect.bisect_left(DURATION_BUCKETS, seconds)] += 1
        self.sum += seconds


class CheckerStats:
    """Counters of one checker since it started."""

    def __init__(self) -> None:
        self.outcomes: dict[CheckKey, dict[str, int]] = {}  # endpoint -> outcome -> probes
        self.durations: dict[str, Durations] = {}  # cluster -> probe durations
        self.reports = {"ok": 0, "failed": 0}  # store.report() calls by result
        self.last_report_ok: float | None = None  # unix time of the last successful report

    def probed(self, key: CheckKey, outcome: str, seconds: float) -> None:
        counts = self.outcomes.get(key)
        if counts is None:
            counts = self.outcomes[key] = dict.fromkeys(OUTCOMES, 0)
        counts[outcome] = counts.get(outcome, 0) + 1
        durations = self.durations.get(key[0])
        if durations is None:
            durations = self.durations[key[0]] = Durations()
        durations.observe(seconds)

    def forget(self, key: CheckKey) -> None:
        """An endpoint left the table: its series go (a cluster's durations stay, they are few)."""
        self.outcomes.pop(key, None)
