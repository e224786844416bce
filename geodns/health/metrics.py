"""The checker's Prometheus families: one implementation for ``geodns check`` and ``geodns serve``.

``view_of(checker)`` copies what a scrape needs from a running ``Checker`` (its
status and ``stats``), cheaply, on the checker's event loop; ``families(view)``
builds the metric families from that copy anywhere -- ``geodns check`` does it
and the text formatting in a thread (``health/http.py``), since with thousands
of endpoints they take a few hundred milliseconds that would otherwise stall
probes and inflate their RTT.  The server (``http/metrics.py``, when ``serve``
runs the embedded checker) yields ``checker_families(checker)``, the same
families, so the series have the same names and labels wherever a checker runs:

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

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from .hysteresis import DOWN, UNKNOWN, UP
from .probe import OUTCOMES
from .stats import DURATION_BUCKETS

if TYPE_CHECKING:
    from .checker import Checker, CheckKey, EndpointStatus

ENDPOINT = ("cluster", "endpoint")


@dataclass(frozen=True)
class CheckerView:
    """A checker's counters and state at one moment, detached from the running checker."""

    checker_id: str
    vantage: str
    suspect: bool
    ready: bool
    reports: Mapping[str, int]
    last_report_ok: float | None
    status: Mapping[CheckKey, EndpointStatus]
    outcomes: Mapping[CheckKey, Mapping[str, int]]
    durations: Mapping[str, tuple[list[int], float]]  # cluster -> (per-bucket counts, sum)


def view_of(checker: Checker) -> CheckerView:
    """Copy what a scrape reads; call it on the checker's event loop (a few ms for thousands of endpoints)."""
    stats = checker.stats
    return CheckerView(
        checker_id=checker.checker_id,
        vantage=checker.vantage,
        suspect=checker.suspect,
        ready=checker.readiness()[0],
        reports=dict(stats.reports),
        last_report_ok=stats.last_report_ok,
        status=checker.status(),
        outcomes={key: dict(counts) for key, counts in stats.outcomes.items()},
        durations={cluster: (list(d.buckets), d.sum) for cluster, d in stats.durations.items()},
    )


def checker_families(checker: Checker) -> Iterator[Metric]:
    """Every ``geodns_checker_*`` family for one checker, as of now."""
    return families(view_of(checker))


def families(view: CheckerView) -> Iterator[Metric]:
    """Every ``geodns_checker_*`` family of ``view``; touches nothing else, so any thread may run it."""
    info = GaugeMetricFamily(
        "geodns_checker_info", "Always 1; names this process's checker and its vantage.", labels=("checker", "vantage")
    )
    info.add_metric((view.checker_id, view.vantage), 1)
    yield info
    yield GaugeMetricFamily(
        "geodns_checker_suspect",
        "1 while this checker believes it is cut off (a partition) and withholds its votes.",
        value=1 if view.suspect else 0,
    )
    yield GaugeMetricFamily(
        "geodns_checker_ready",
        "1 when every endpoint was probed and reported to the store, "
        "the store takes reports and the checker is not suspect.",
        value=1 if view.ready else 0,
    )
    reports = CounterMetricFamily(
        "geodns_checker_reports", "Writes of observations to the store, by result.", labels=("result",)
    )
    for result in ("ok", "failed"):
        reports.add_metric((result,), view.reports.get(result, 0))
    yield reports
    if view.last_report_ok is not None:
        yield GaugeMetricFamily(
            "geodns_checker_last_report_success_timestamp_seconds",
            "When observations last reached the store, unix time.",
            value=view.last_report_ok,
        )

    state = GaugeMetricFamily(
        "geodns_checker_endpoint_state",
        "1 for the state this checker holds for an endpoint after rise/fall.",
        labels=(*ENDPOINT, "state"),
    )
    probes = CounterMetricFamily(
        "geodns_checker_probes", "Probes run by this checker, by outcome.", labels=(*ENDPOINT, "outcome")
    )
    last_ok = GaugeMetricFamily("geodns_checker_last_probe_ok", "1 when the latest probe succeeded.", labels=ENDPOINT)
    rtt = GaugeMetricFamily(
        "geodns_checker_endpoint_rtt_seconds",
        "Smoothed RTT (connect + first byte) of the endpoint's successful probes.",
        labels=ENDPOINT,
    )
    down_since = GaugeMetricFamily(
        "geodns_checker_endpoint_down_since_timestamp_seconds",
        "When this checker's state for a down endpoint became down, unix time.",
        labels=ENDPOINT,
    )
    for key, item in sorted(view.status.items()):
        for name in (UP, DOWN, UNKNOWN):
            state.add_metric((*key, name), 1 if item.state == name else 0)
        counts = view.outcomes.get(key)
        for outcome in OUTCOMES:
            probes.add_metric((*key, outcome), counts.get(outcome, 0) if counts else 0)
        if item.probes:
            last_ok.add_metric(key, 1 if item.successes > 0 else 0)
        if item.rtt_ms is not None:
            rtt.add_metric(key, item.rtt_ms / 1000.0)
        if item.down_since is not None:
            down_since.add_metric(key, item.down_since)
    yield from (state, probes, last_ok, rtt, down_since)

    duration = HistogramMetricFamily(
        "geodns_checker_probe_duration_seconds",
        "How long probes took, whatever their outcome, by cluster.",
        labels=("cluster",),
    )
    for cluster, (per_bucket, total) in sorted(view.durations.items()):
        cumulative, buckets = 0, []
        for bound, n in zip(DURATION_BUCKETS + (float("inf"),), per_bucket):
            cumulative += n
            buckets.append((floatToGoString(bound), cumulative))
        duration.add_metric((cluster,), buckets, total)
    yield duration


class ViewCollector:
    """A prometheus-client custom collector over one ``CheckerView``."""

    def __init__(self, view: CheckerView) -> None:
        self.view = view

    def collect(self) -> Iterator[Metric]:
        yield from families(self.view)
