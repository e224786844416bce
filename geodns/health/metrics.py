"""The checker's Prometheus families: one implementation for ``geodns check`` and ``geodns serve``.

``checker_families(checker)`` reads a running ``Checker`` (its live status and
``stats``) at scrape time.  The standalone checker's ``/metrics``
(``health/http.py``) and the server's (``http/metrics.py``, when ``serve``
runs the embedded checker) both yield exactly these, so the series have the
same names and labels wherever a checker runs:

- ``geodns_checker_probes_total{cluster,endpoint,outcome}``: probes by outcome
  (``probe.OUTCOMES``: ok, http_status, timeout, refused, tls, body_mismatch, error);
- ``geodns_checker_probe_duration_seconds{cluster}``: how long probes took, whatever their outcome;
- ``geodns_checker_endpoint_state{cluster,endpoint,state}``: up/down/unknown after rise/fall;
- ``geodns_checker_endpoint_rtt_seconds{cluster,endpoint}``: smoothed RTT of successful probes;
- ``geodns_checker_endpoint_down_since_timestamp_seconds{cluster,endpoint}``: for down endpoints;
- ``geodns_checker_last_probe_ok{cluster,endpoint}``;
- ``geodns_checker_suspect``: 1 while the checker believes it is partitioned (votes withheld);
- ``geodns_checker_ready``: 1 when ``Checker.readiness()`` says ready;
- ``geodns_checker_reports_total{result}`` and ``geodns_checker_last_report_success_timestamp_seconds``;
- ``geodns_checker_info{checker,vantage}``: always 1, names this checker.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from .probe import OUTCOMES
from .state import DOWN, UNKNOWN, UP
from .stats import DURATION_BUCKETS

if TYPE_CHECKING:
    from .checker import Checker

ENDPOINT = ("cluster", "endpoint")


def checker_families(checker: "Checker") -> Iterator[Metric]:
    """Every ``geodns_checker_*`` family for one checker, as of now."""
    stats = checker.stats
    info = GaugeMetricFamily("geodns_checker_info", "Always 1; names this process's checker and its vantage.",
                             labels=("checker", "vantage"))
    info.add_metric((checker.checker_id, checker.vantage), 1)
    yield info
    yield GaugeMetricFamily("geodns_checker_suspect", "1 while this checker believes it is cut off (a "
                            "partition) and withholds its votes.", value=1 if checker.suspect else 0)
    yield GaugeMetricFamily("geodns_checker_ready", "1 when every endpoint was probed and reported to the store, "
                            "the store takes reports and the checker is not suspect.",
                            value=1 if checker.readiness()[0] else 0)
    reports = CounterMetricFamily("geodns_checker_reports", "Writes of observations to the store, by result.",
                                  labels=("result",))
    for result in ("ok", "failed"):
        reports.add_metric((result,), stats.reports[result])
    yield reports
    if stats.last_report_ok is not None:
        yield GaugeMetricFamily("geodns_checker_last_report_success_timestamp_seconds", "When observations last "
                                "reached the store, unix time.", value=stats.last_report_ok)

    state = GaugeMetricFamily("geodns_checker_endpoint_state", "1 for the state this checker holds for an "
                              "endpoint after rise/fall.", labels=(*ENDPOINT, "state"))
    probes = CounterMetricFamily("geodns_checker_probes", "Probes run by this checker, by outcome.",
                                 labels=(*ENDPOINT, "outcome"))
    last_ok = GaugeMetricFamily("geodns_checker_last_probe_ok", "1 when the latest probe succeeded.", labels=ENDPOINT)
    rtt = GaugeMetricFamily("geodns_checker_endpoint_rtt_seconds", "Smoothed RTT (connect + first byte) of the "
                            "endpoint's successful probes.", labels=ENDPOINT)
    down_since = GaugeMetricFamily("geodns_checker_endpoint_down_since_timestamp_seconds", "When this checker's "
                                   "state for a down endpoint became down, unix time.", labels=ENDPOINT)
    for key, item in sorted(checker.status().items()):
        for name in (UP, DOWN, UNKNOWN):
            state.add_metric((*key, name), 1 if item.state == name else 0)
        counts = stats.outcomes.get(key)
        for outcome in OUTCOMES:
            probes.add_metric((*key, outcome), counts.get(outcome, 0) if counts else 0)
        if item.probes:
            last_ok.add_metric(key, 1 if item.successes > 0 else 0)
        if item.rtt_ms is not None:
            rtt.add_metric(key, item.rtt_ms / 1000.0)
        if item.down_since is not None:
            down_since.add_metric(key, item.down_since)
    yield from (state, probes, last_ok, rtt, down_since)

    duration = HistogramMetricFamily("geodns_checker_probe_duration_seconds", "How long probes took, whatever "
                                     "their outcome, by cluster.", labels=("cluster",))
    for cluster, hist in sorted(stats.durations.items()):
        cumulative, buckets = 0, []
        for bound, n in zip(DURATION_BUCKETS + (float("inf"),), hist.buckets):
            cumulative += n
            buckets.append((floatToGoString(bound), cumulative))
        duration.add_metric((cluster,), buckets, hist.sum)
    yield duration


class CheckerCollector:
    """A prometheus-client custom collector over one checker (``geodns check``'s own registry)."""

    def __init__(self, checker: "Checker") -> None:
        self.checker = checker

    def collect(self) -> Iterator[Metric]:
        yield from checker_families(self.checker)
