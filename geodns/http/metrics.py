"""``GET /metrics``: the server's plain counters, turned into Prometheus metric families at scrape time.

The query path only adds to integers and dicts (``geodns/answer/counters.py``,
``answer.counters.GslbCounters``, ``ListenerStats``); this collector reads them, together
with the live snapshot and health view, whenever Prometheus scrapes.  Each
Server gets its own registry, so several servers in one process (tests) never
share metrics.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.utils import floatToGoString

from ..answer.counters import DURATION_BUCKETS
from ..answer.engine import _RCODES, _type_text
from ..dns.names import to_text
from ..gslb import health as states
from ..gslb.load import reported_load
from ..health.metrics import checker_families
from ..health.routes import add_metrics_route
from ..state.model import by_checker, latest_fresh
from . import procstat, views
from .views import live_health, readiness

if TYPE_CHECKING:
    from ..answer.engine import AnswerEngine
    from ..config.model import Config
    from ..gslb.health import HealthView
    from ..process.server import Server
    from ..state.keeper import SnapshotKeeper
    from ..state.model import Snapshot

CLUSTER_STATES = (states.UP, states.DOWN, states.DRAINED, states.FORCED_UP, states.FORCED_DOWN)
ENDPOINT_STATES = (states.UP, states.DOWN, states.UNKNOWN, states.DRAINED, states.FORCED_UP, states.FORCED_DOWN)


def _zone(origin) -> str:
    return "none" if origin is None else to_text(origin).rstrip(".") or "."


def _qtype(qtype: int) -> str:
    return "other" if qtype == 0 else _type_text(qtype)


def _build_info() -> GaugeMetricFamily:
    """Which geodns this is, and on what: constant for the life of the process."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    def of(package: str) -> str:
        try:
            return version(package)
        except PackageNotFoundError:
            return "unknown"

    info = GaugeMetricFamily(
        "geodns_build_info",
        "Always 1; the labels say which geodns runs, on which Python and with which dnspython.",
        labels=("version", "python", "dnspython"),
    )
    info.add_metric((of("geodns"), platform.python_version(), of("dnspython")), 1)
    return info


_BUILD_INFO = _build_info()


class ServerCollector:
    """A prometheus-client custom collector over one Server's counters and state."""

    def __init__(self, server: Server):
        self.server = server

    def collect(self) -> Iterator[Metric]:
        server = self.server
        yield _BUILD_INFO
        engine, config = server.engine, server.config
        if engine is None or config is None:
            return
        yield from self._queries()
        yield from self._gslb(config)
        keeper = server.keeper
        if keeper is None:  # stopping: the table is gone
            return
        yield from self._state(keeper, engine)
        snapshot, health = live_health(server)  # once per scrape: without a responder it builds a view
        yield from self._table(snapshot, health)
        yield from self._load(snapshot)
        yield from self._process()
        yield from self._workers()
        yield from self._checker()

    # -- the query path -----------------------------------------------------------------------
    def _queries(self) -> Iterator[Metric]:
        stats = self.server.query_stats()
        queries = CounterMetricFamily(
            "geodns_queries",
            "DNS queries answered, by zone, query type, response code and transport.",
            labels=("zone", "qtype", "rcode", "transport"),
        )
        merged: dict[tuple[str, str, str, str], int] = {}
        for (origin, qtype, rcode, tcp), n in list(stats.queries.items()):
            key = (_zone(origin), _qtype(qtype), _RCODES.get(rcode, str(rcode)), "tcp" if tcp else "udp")
            merged[key] = merged.get(key, 0) + n
        for labels, n in sorted(merged.items()):
            queries.add_metric(labels, n)
        yield queries
        cumulative, buckets = 0, []
        for bound, n in zip(DURATION_BUCKETS + (float("inf"),), stats.duration_buckets):
            cumulative += n
            buckets.append((floatToGoString(bound), cumulative))
        yield HistogramMetricFamily(
            "geodns_query_duration_seconds",
            "Time the answer engine took per query, from bytes in to bytes out (socket I/O excluded).",
            buckets=buckets,
            sum_value=stats.duration_sum,
        )
        yield CounterMetricFamily("geodns_truncated", "UDP responses sent truncated (TC set).", value=stats.truncated)
        total = sum(merged.values())
        ecs = CounterMetricFamily(
            "geodns_ecs_queries", "Queries with and without an EDNS Client Subnet option.", labels=("present",)
        )
        ecs.add_metric(("true",), stats.ecs_present)
        ecs.add_metric(("false",), max(0, total - stats.ecs_present))
        yield ecs
        yield CounterMetricFamily(
            "geodns_dropped_messages", "Messages answered with silence (responses, runts).", value=stats.dropped
        )
        yield CounterMetricFamily(
            "geodns_malformed_queries",
            "Queries answered FORMERR or NOTIMP before the question could be read.",
            value=stats.malformed,
        )
        signing = stats.dnssec
        yield CounterMetricFamily(
            "geodns_dnssec_signatures",
            "RRSIGs made (at load, on first sight of an answer set, and when re-signing before expiry).",
            value=signing.made,
        )
        yield CounterMetricFamily(
            "geodns_dnssec_signature_cache_hits",
            "RRSIGs taken from the signature cache instead of being made (answers the fast path serves "
            "already encoded, signatures and all, are not counted here).",
            value=signing.hits,
        )
        yield GaugeMetricFamily(
            "geodns_dnssec_next_expiry_timestamp_seconds",
            "When the first signature held expires (unix time; 0 when nothing is signed).",
            value=signing.expiry,
        )

    def _gslb(self, config: Config) -> Iterator[Metric]:
        server = self.server
        counters = server.gslb_report()
        records = config.records
        answers = CounterMetricFamily(
            "geodns_gslb_answers",
            "GSLB answers per record and cluster (an answer naming two clusters counts for both).",
            labels=("record", "cluster"),
        )
        responses = CounterMetricFamily(
            "geodns_gslb_responses",
            "GSLB responses per record by outcome: answer, fallback (the chain left nothing) or nodata.",
            labels=("record", "outcome"),
        )
        fallback = CounterMetricFamily(
            "geodns_gslb_fallback", "GSLB responses answered by the record's fallback.", labels=("record",)
        )
        per_cluster: dict[tuple[str, str], int] = {}
        per_outcome: dict[tuple[str, str], int] = {}
        per_fallback: dict[str, int] = {}
        for (name, clusters, fell_back), n in counters.counts().items():
            record = records[name].text if name in records else to_text(name).rstrip(".")
            for cluster in clusters:
                per_cluster[(record, cluster)] = per_cluster.get((record, cluster), 0) + n
            outcome = "fallback" if fell_back else "answer" if clusters else "nodata"
            per_outcome[(record, outcome)] = per_outcome.get((record, outcome), 0) + n
            if fell_back:
                per_fallback[record] = per_fallback.get(record, 0) + n
        for record in (r.text for r in records.values()):
            per_fallback.setdefault(record, 0)
        for labels, n in sorted(per_cluster.items()):
            answers.add_metric(labels, n)
        for labels, n in sorted(per_outcome.items()):
            responses.add_metric(labels, n)
        for record, n in sorted(per_fallback.items()):
            fallback.add_metric((record,), n)
        yield answers
        yield responses
        yield fallback
        yield CounterMetricFamily(
            "geodns_geoip_misses",
            "GSLB clients whose location was unknown (no operator network, not in the GeoIP database).",
            value=counters.geo_misses,
        )

    # -- snapshot and store -------------------------------------------------------------------
    def _state(self, keeper: SnapshotKeeper, engine: AnswerEngine) -> Iterator[Metric]:
        server = self.server
        yield GaugeMetricFamily(
            "geodns_snapshot_version",
            "Version of the cluster table the answers come from.",
            value=keeper.snapshot.version,
        )
        yield GaugeMetricFamily(
            "geodns_snapshot_age_seconds",
            "Seconds since the snapshot was last confirmed against the store (+Inf: never).",
            value=keeper.staleness(),
        )
        yield GaugeMetricFamily(
            "geodns_store_connected", "1 when the state store is reachable.", value=1 if keeper.connected else 0
        )
        yield CounterMetricFamily("geodns_store_errors", "Failed loads of the state store.", value=keeper.errors)
        invalid = GaugeMetricFamily(
            "geodns_store_invalid_entries",
            "Store entries missing or failing validation (1 each, by key); their last good value is served.",
            labels=("entry",),
        )
        for key in sorted(keeper.problems):
            invalid.add_metric((key,), 1)
        yield invalid
        reloads = CounterMetricFamily("geodns_config_reloads", "Config and zone reloads by result.", labels=("result",))
        for result in ("ok", "failed"):
            reloads.add_metric((result,), server.reloads.get(result, 0))
        yield reloads
        if server.loaded_at is not None:
            yield GaugeMetricFamily(
                "geodns_config_last_reload_success_timestamp_seconds",
                "When the running config and zones were loaded (start-up or the last successful reload), unix time.",
                value=server.loaded_at,
            )
        ready, _ = readiness(server)
        yield GaugeMetricFamily("geodns_ready", "1 when /readyz says ready.", value=1 if ready else 0)
        zones = GaugeMetricFamily("geodns_zone_serial", "SOA serial of each served zone.", labels=("zone",))
        for zone in engine.zones:
            zones.add_metric((_zone(zone.origin),), zone.serial)
        yield zones

    def _table(self, snapshot: Snapshot, health: HealthView) -> Iterator[Metric]:
        """Clusters and endpoints as the query path sees them: state, weight, RTT per vantage."""
        now = time.time()
        cluster_up = GaugeMetricFamily("geodns_cluster_up", "1 when the cluster may get traffic.", labels=("cluster",))
        cluster_state = GaugeMetricFamily(
            "geodns_cluster_state", "1 for the cluster's current state.", labels=("cluster", "state")
        )
        cluster_weight = GaugeMetricFamily("geodns_cluster_weight", "The cluster's weight.", labels=("cluster",))
        endpoint_up = GaugeMetricFamily(
            "geodns_endpoint_up", "1 when the endpoint may get traffic.", labels=("cluster", "endpoint")
        )
        endpoint_state = GaugeMetricFamily(
            "geodns_endpoint_state", "1 for the endpoint's current state.", labels=("cluster", "endpoint", "state")
        )
        endpoint_weight = GaugeMetricFamily(
            "geodns_endpoint_weight", "The endpoint's weight.", labels=("cluster", "endpoint")
        )
        observed = GaugeMetricFamily(
            "geodns_endpoint_observed_up",
            "Each checker's fresh verdict on an endpoint (1 up, 0 down), by vantage.",
            labels=("cluster", "endpoint", "vantage", "checker"),
        )
        endpoint_rtt = GaugeMetricFamily(
            "geodns_endpoint_rtt_seconds",
            "Each checker's average RTT to an endpoint (its latest fresh observation).",
            labels=("cluster", "endpoint", "vantage", "checker"),
        )
        for name, cluster in sorted(snapshot.clusters.items()):
            current = views.cluster_state(health, name)
            cluster_up.add_metric((name,), 1 if health.cluster_up(name) else 0)
            for state in CLUSTER_STATES:
                cluster_state.add_metric((name, state), 1 if state == current else 0)
            cluster_weight.add_metric((name,), cluster.weight)
            for endpoint in cluster.endpoints:
                key = endpoint.key
                current = views.endpoint_state(health, name, key)
                endpoint_up.add_metric((name, key), 1 if health.endpoint_up(name, key) else 0)
                for state in ENDPOINT_STATES:
                    endpoint_state.add_metric((name, key, state), 1 if state == current else 0)
                endpoint_weight.add_metric((name, key), endpoint.weight)
                verdicts = (obs for obs in snapshot.observations.get((name, key), ()) if obs.up is not None)
                for checker, obs in sorted(latest_fresh(verdicts, now, by_checker).items()):
                    observed.add_metric((name, key, obs.vantage, checker), 1 if obs.up else 0)
                    if obs.rtt_ms is not None:
                        endpoint_rtt.add_metric((name, key, obs.vantage, checker), obs.rtt_ms / 1000.0)
        cluster_rtt = GaugeMetricFamily(
            "geodns_cluster_rtt_seconds",
            "Median RTT of a cluster's healthy endpoints "
            "as measured from each checker vantage: what the latency policy uses.",
            labels=("cluster", "vantage"),
        )
        for (name, vantage), ms in sorted(health.rtts().items()):
            cluster_rtt.add_metric((name, vantage), ms / 1000.0)
        yield from (
            cluster_up,
            cluster_state,
            cluster_weight,
            endpoint_up,
            endpoint_state,
            endpoint_weight,
            observed,
            endpoint_rtt,
            cluster_rtt,
        )

    def _load(self, snapshot: Snapshot) -> Iterator[Metric]:
        """Load and shed share per cluster, as the shed filter sees them (gslb/load.py).

        A cluster whose load is unknown (no fresh reading) has no load sample:
        unknown is not zero."""
        load = views.current_load(self.server)
        now = time.time()
        reported = GaugeMetricFamily(
            "geodns_cluster_load",
            "The cluster's reported load (1 = at capacity); absent while unknown.",
            labels=("cluster",),
        )
        smoothed = GaugeMetricFamily(
            "geodns_cluster_load_smoothed",
            "The load the shed filter acts on: the reported load's moving average.",
            labels=("cluster",),
        )
        shed = GaugeMetricFamily(
            "geodns_cluster_shed_share",
            "The share of new answers a cluster with load "
            "watermarks sends elsewhere (1: out unless nothing else is left).",
            labels=("cluster",),
        )
        for name in sorted(snapshot.clusters):
            value = reported_load(snapshot, name, now)
            if value is not None:
                reported.add_metric((name,), value)
            state = load.states.get(name)
            if state is not None:
                shed.add_metric((name,), state.share)
                if state.smoothed is not None:
                    smoothed.add_metric((name,), state.smoothed)
        yield from (reported, smoothed, shed)

    # -- sockets and the embedded checker -------------------------------------------------------
    def _process(self) -> Iterator[Metric]:
        families = {
            "tcp_connections": CounterMetricFamily(
                "geodns_tcp_connections", "TCP connections accepted.", labels=("listen",)
            ),
            "tcp_refused": CounterMetricFamily(
                "geodns_tcp_connections_refused",
                "TCP connections closed at once: the table or the source's tcp_source_share was full.",
                labels=("listen",),
            ),
            "tcp_evicted": CounterMetricFamily(
                "geodns_tcp_connections_evicted",
                "TCP connections closed to make room for a source holding fewer.",
                labels=("listen",),
            ),
            "tcp_timed_out": CounterMetricFamily(
                "geodns_tcp_connections_timed_out",
                "TCP connections closed "
                "because a message was not finished within tcp_message_timeout "
                "or answers were not read within tcp_idle_timeout.",
                labels=("listen",),
            ),
            "handler_errors": CounterMetricFamily(
                "geodns_handler_errors",
                "Queries that raised inside the server and were answered SERVFAIL.",
                labels=("listen",),
            ),
        }
        open_now = GaugeMetricFamily("geodns_tcp_connections_open", "TCP connections open now.", labels=("listen",))
        for report in self.server.listener_report():
            for attribute, family in families.items():
                family.add_metric((report["address"],), report[attribute])
            open_now.add_metric((report["address"],), report["tcp_open"])
        yield from families.values()
        yield open_now

    def _workers(self) -> Iterator[Metric]:
        """Each worker's CPU and memory as the kernel counts them, and how often workers were restarted.

        ``process_*`` describes the process serving /metrics (the supervisor); with workers the
        queries are answered elsewhere, so these say what answering costs.
        """
        pool = self.server.workers
        if pool is None:
            return
        cpu = CounterMetricFamily(
            "geodns_worker_cpu_seconds", "CPU time (user + system) of each worker process.", labels=("worker",)
        )
        rss = GaugeMetricFamily(
            "geodns_worker_resident_memory_bytes",
            "Resident memory of each worker (pages shared with the supervisor counted in full).",
            labels=("worker",),
        )
        pss = GaugeMetricFamily(
            "geodns_worker_proportional_memory_bytes",
            "Proportional set size of each worker: shared pages divided among the processes that share them.",
            labels=("worker",),
        )
        alive = 0
        for worker in pool.describe():
            stat = procstat.read(worker["pid"]) if worker["pid"] is not None and worker["alive"] else None
            if stat is None:
                continue
            alive += 1
            label = (str(worker["worker"]),)
            cpu.add_metric(label, stat.cpu_seconds)
            rss.add_metric(label, stat.rss_bytes)
            if stat.pss_bytes is not None:
                pss.add_metric(label, stat.pss_bytes)
        yield from (cpu, rss, pss)
        yield GaugeMetricFamily("geodns_workers", "Worker processes running.", value=alive)
        yield CounterMetricFamily("geodns_worker_restarts", "Workers restarted after they died.", value=pool.restarts)

    def _checker(self) -> Iterator[Metric]:
        """The embedded checker's own view (when ``serve`` runs one): the families ``geodns check`` exports."""
        checker = getattr(self.server, "checker", None)
        if checker is not None:
            yield from checker_families(checker)


def make_registry(server: Server) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServerCollector(server))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry


def add_routes(app: web.Application, server: Server) -> None:
    add_metrics_route(app, make_registry(server))
