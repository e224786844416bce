"""Read-only views of a running server, as plain dicts: the admin API's JSON and the status page's data.

Everything is read from what the query path reads (the GSLB responder's live
state: one snapshot and the health view built from it), so an operator sees
exactly the table the next DNS answer will come from.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..discovery.records import claims_view
from ..dns.names import Name, to_text
from ..gslb.health import HealthView
from ..gslb.load import EMPTY as NO_LOAD
from ..gslb.load import LoadView, reported_load
from ..state.model import Cluster, Snapshot
from ..state.store import redact_url

if TYPE_CHECKING:
    from ..answer.responder import GslbResponder
    from ..config.model import Config, RecordSpec
    from ..process.server import Server
    from ..state.keeper import SnapshotKeeper


def config_of(server: Server) -> Config:
    """The config in force: there is one from start() on, and the HTTP app starts after it."""
    if server.config is None:
        raise RuntimeError("no config loaded yet")
    return server.config


def keeper_of(server: Server) -> SnapshotKeeper:
    """The snapshot keeper, which runs from start() until stop()."""
    if server.keeper is None:
        raise RuntimeError("the state keeper is not running (the server is starting or stopping)")
    return server.keeper


def gslb(server: Server) -> GslbResponder | None:
    """The running engine's GSLB responder, or None (no engine yet, or no GSLB records)."""
    engine = server.engine
    return engine.responder if engine is not None else None


def live_health(server: Server) -> tuple[Snapshot, HealthView]:
    """The snapshot and health view DNS answers come from right now.

    Without GSLB records there is no responder; the view is then built from
    the keeper's snapshot with the config's health rules, as the responder would.
    """
    responder = gslb(server)
    if responder is not None:
        live = responder.live
        return live.snapshot, live.health
    snapshot = keeper_of(server).snapshot
    rules = config_of(server).health
    return snapshot, HealthView.build(snapshot, time.time(), rules.quorum, unknown_is_up=rules.unknown == "up")


def readiness(server: Server) -> tuple[bool, str]:
    """Ready when listeners are up, zones are loaded and the snapshot is fresh enough.

    "Fresh enough": the store is connected, or was within
    ``server.ready_max_staleness``.  Past that the server still answers
    (fail static) but says so, so an orchestrator can prefer a peer that
    still sees the store.  Entries the store holds missing or invalid (see
    ``SnapshotKeeper.problems``) make it unready too, with their names.
    """
    ready, reason = server.ready
    if not ready:
        return False, reason
    keeper = server.keeper
    if keeper is None:
        return False, "state keeper not started"
    if not keeper.connected:
        limit = config_of(server).server.ready_max_staleness
        stale = keeper.staleness()
        if stale > limit:
            since = "never loaded" if stale == float("inf") else f"last loaded {stale:.0f}s ago"
            return False, (
                f"state store unreachable ({since}, limit {limit:g}s); "
                f"answering from snapshot version {keeper.snapshot.version}"
            )
    if keeper.problems:
        listed = "; ".join(f"{key}: {why}" for key, why in sorted(keeper.problems.items()))
        return False, f"store data invalid: {listed} (answering with the last good value of each)"
    return True, "ok"


def current_records(server: Server) -> Mapping[Name, RecordSpec]:
    """The records answered now: the config's and those from discovery (in the responder's live view)."""
    responder = gslb(server)
    return responder.records if responder is not None else config_of(server).records


def records_by_cluster(server: Server) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for record in current_records(server).values():
        for name in record.clusters:
            out.setdefault(name, []).append(record.text)
    return out


def cluster_view(
    cluster: Cluster, snapshot: Snapshot, health: HealthView, records: list[str], now: float, load: LoadView = NO_LOAD
) -> dict[str, Any]:
    """One cluster with its endpoints, admin and health states, and what each checker saw."""
    name = cluster.name
    rtts = {
        vantage: round(ms, 3) for (c, vantage), ms in sorted(kv for kv in health.rtts().items() if kv[0][0] == name)
    }
    vantages: dict[str, dict[str, int]] = {}
    endpoints = []
    for endpoint in cluster.endpoints:
        observations = []
        for obs in sorted(snapshot.observations.get((name, endpoint.key), ()), key=lambda o: o.checker):
            fresh = obs.expires > now
            observations.append(
                {
                    "checker": obs.checker,
                    "vantage": obs.vantage,
                    "up": obs.up,
                    "rtt_ms": None if obs.rtt_ms is None else round(obs.rtt_ms, 3),
                    "age_s": round(now - obs.at, 1),
                    "fresh": fresh,
                    "reason": obs.reason,
                    "down_since": obs.down_since,
                }
            )
            if fresh and obs.up is not None:
                tally = vantages.setdefault(obs.vantage, {"up": 0, "down": 0})
                tally["up" if obs.up else "down"] += 1
        endpoints.append(
            {
                "address": endpoint.key,
                "weight": endpoint.weight,
                "admin": endpoint.admin.value,
                "state": endpoint_state(health, name, endpoint.key),
                "probe": endpoint.probe,
                "observations": observations,
            }
        )
    return {
        "name": name,
        "region": cluster.region,
        "weight": cluster.weight,
        "priority": cluster.priority,
        "min_healthy": cluster.min_healthy,
        "admin": cluster.admin.value,
        "state": cluster_state(health, name),
        "up": health.cluster_up(name),
        "records": records,
        "rtt_ms": rtts,
        "vantages": {v: {**tally, "rtt_ms": rtts.get(v)} for v, tally in sorted(vantages.items())},
        "check": _check_view(cluster),
        "load": load_view(cluster.name, snapshot, load, now),
        "endpoints": endpoints,
    }


def load_view(name: str, snapshot: Snapshot, load: LoadView, now: float) -> dict[str, Any]:
    """The cluster's load as the shed filter sees it: reported (None: unknown), smoothed, its shed
    share, its watermarks if it has a ``load:`` block, and every fresh reading with its source."""
    state = load.states.get(name)
    spec = load.specs.get(name)
    readings = [
        {
            "source": r.source,
            "endpoint": endpoint or None,
            "load": r.load,
            "age_s": round(now - r.at, 1),
            "expires_in_s": round(r.expires - now, 1),
        }
        for (_cluster, endpoint), reports in sorted(kv for kv in snapshot.loads.items() if kv[0][0] == name)
        for r in reports
        if r.expires > now
    ]
    reported = reported_load(snapshot, name, now)
    return {
        "reported": None if reported is None else round(reported, 4),
        "smoothed": None if state is None or state.smoothed is None else round(state.smoothed, 4),
        "shed_share": 0.0 if state is None else round(state.share, 4),
        "shedding_moves": bool(state and state.moving),
        "low": spec.low if spec else None,
        "high": spec.high if spec else None,
        "readings": readings,
    }


def current_load(server: Server) -> LoadView:
    responder = gslb(server)
    return responder.live.load if responder is not None else NO_LOAD


def clusters_view(server: Server) -> dict[str, Any]:
    snapshot, health = live_health(server)
    now = time.time()
    used = records_by_cluster(server)
    load = current_load(server)
    return {
        "version": snapshot.version,
        "clusters": [
            cluster_view(c, snapshot, health, used.get(n, []), now, load) for n, c in sorted(snapshot.clusters.items())
        ],
    }


def one_cluster_view(server: Server, name: str) -> dict[str, Any] | None:
    snapshot, health = live_health(server)
    cluster = snapshot.clusters.get(name)
    if cluster is None:
        return None
    view = cluster_view(
        cluster, snapshot, health, records_by_cluster(server).get(name, []), time.time(), current_load(server)
    )
    return {"version": snapshot.version, **view}


def records_view(server: Server) -> list[dict[str, Any]]:
    """Every record answered, with its origin: ``config``, or ``discovery`` with the clusters that
    registered it (their agent, the Kubernetes object, the lease's age and whether it is stale)."""
    responder = gslb(server)
    discovered = responder.live.discovered if responder is not None else None
    now = time.time()
    out = []
    for name, r in current_records(server).items():
        origins = discovered.origins.get(name) if discovered is not None else None
        out.append(
            {
                "name": r.text,
                "ttl": r.ttl,
                "clusters": list(r.clusters),
                "policy": list(r.policy),
                "answers": r.answers,
                "fallback": r.fallback,
                "origin": "discovery" if origins else "config",
                "registrations": [o.view(now) for o in origins] if origins else [],
            }
        )
    return out


def discovery_view(server: Server) -> dict[str, Any] | None:
    """Registrations not served and why: refused (outside the allowed suffixes) or in conflict with
    the config; None without a ``discovery`` block."""
    if config_of(server).discovery is None:
        return None
    responder = gslb(server)
    if responder is None:
        return {"refused": [], "conflicts": []}
    discovered = responder.live.discovered
    return {"refused": claims_view(discovered.refused), "conflicts": claims_view(discovered.conflicts)}


def status_view(server: Server) -> dict[str, Any]:
    """The server at a glance: readiness, snapshot, store, zones, reloads, listeners."""
    ready, reason = readiness(server)
    keeper = server.keeper
    stale = keeper.staleness() if keeper is not None else float("inf")
    engine = server.engine
    config = config_of(server)
    stats = server.query_stats()
    return {
        "ready": ready,
        "reason": reason,
        "snapshot": {
            "version": keeper.snapshot.version if keeper else 0,
            "age_s": None if stale == float("inf") else round(stale, 3),
        },
        "store": {
            "url": redact_url(config.store),
            "connected": bool(keeper and keeper.connected),
            "errors": keeper.errors if keeper else 0,
            "last_sync": keeper.last_sync if keeper else None,
            "invalid": dict(sorted(keeper.problems.items())) if keeper else {},
        },
        "zones": [to_text(z.origin) for z in engine.zones] if engine is not None else [],
        "records": [r.text for r in current_records(server).values()],
        "discovery": discovery_view(server),
        "reloads": dict(server.reloads),
        "listeners": server.listener_report(),
        "queries": stats.total,
        "workers": server.workers.describe() if server.workers is not None else [],
        "debug_txt": config.server.debug_txt,
        "query_log": {"enabled": config.server.query_log.enabled, "sample": config.server.query_log.sample},
    }


def endpoint_state(health: HealthView, cluster: str, address: str) -> str:
    try:
        return health.state(cluster, address)
    except (KeyError, ValueError):
        return "unknown"


def cluster_state(health: HealthView, cluster: str) -> str:
    try:
        return health.cluster_state(cluster)
    except KeyError:
        return "unknown"


def _check_view(cluster: Cluster) -> dict[str, Any] | None:
    check = cluster.check
    if check is None:
        return None
    return {
        "type": check.type,
        "url": check.url,
        "port": check.port,
        "path": check.path,
        "interval_s": check.interval,
        "timeout_s": check.timeout,
        "rise": check.rise,
        "fall": check.fall,
    }


def checkers_view(
    snapshot: Snapshot, now: float, remembered: Mapping[str, tuple[str, float]] | None = None
) -> list[dict[str, Any]]:
    """Every checker the table has observations from: its vantage, how long since it last reported, whether it votes.

    From the snapshot's observations alone (the checkers write nothing else a
    server reads).  ``fresh``: observations not yet expired; ``votes``: fresh
    ones with a verdict.  A checker with fresh observations and no verdict
    in any of them abstains: it judged itself partitioned (suspect,
    ``health/checker.py``) or has no verdict yet; one with none fresh is silent
    (stopped, or cut off from the store) and counts for nothing.  The store
    drops expired observations, so a checker that stopped soon leaves the
    table: ``remembered`` (``StateHistory.checkers``: id -> vantage, latest
    report) keeps naming it, as silent.
    """
    seen: dict[str, dict[str, Any]] = {}
    for observations in snapshot.observations.values():
        for obs in observations:
            row = seen.get(obs.checker)
            if row is None:
                row = seen[obs.checker] = {
                    "checker": obs.checker,
                    "vantage": obs.vantage,
                    "last_at": obs.at,
                    "observations": 0,
                    "fresh": 0,
                    "votes": 0,
                    "down_votes": 0,
                }
            row["last_at"] = max(row["last_at"], obs.at)
            row["observations"] += 1
            if obs.expires > now:
                row["fresh"] += 1
                if obs.up is not None:
                    row["votes"] += 1
                    row["down_votes"] += not obs.up
    for checker, (vantage, at) in (remembered or {}).items():
        if checker not in seen:
            seen[checker] = {
                "checker": checker,
                "vantage": vantage,
                "last_at": at,
                "observations": 0,
                "fresh": 0,
                "votes": 0,
                "down_votes": 0,
            }
    for row in seen.values():
        row["age_s"] = round(max(0.0, now - row["last_at"]), 1)
        row["status"] = "silent" if row["fresh"] == 0 else "suspect" if row["votes"] == 0 else "voting"
    return sorted(seen.values(), key=lambda r: r["checker"])


def history_view(server: Server, clusters: list[dict[str, Any]]) -> dict[str, Any]:
    """The endpoints' last state changes (``gslb.history``), as plain data for the page's timelines."""
    history = server.history
    responder = gslb(server)
    if responder is not None:
        history.note(responder.live)  # a live view rebuilt because observations expired is noted here
    return {
        "since": history.since,
        "endpoints": {
            (c["name"], e["address"]): [(t.at, t.state) for t in history.transitions(c["name"], e["address"])]
            for c in clusters
            for e in c["endpoints"]
        },
    }
