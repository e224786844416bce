"""``geodns status``: the server and its clusters at a glance.

Below the cluster table, a second table lists every endpoint a checker holds
down or sees failing, one row per checker: its verdict, the probe's reason
("HTTP 503", "timeout after 2s", "connection refused") and since when the
verdict is down.  It is left out while nothing fails.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from .apiclient import Api, common_options, run
from .table import table


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    common = common_options()
    p = subparsers.add_parser("status", parents=[common], help="show the server, its clusters and their health")
    p.set_defaults(func=cmd_status)


def cmd_status(args: argparse.Namespace) -> int:
    def fetch(api: Api) -> dict[str, Any]:
        result = {"status": api.request("GET", "/status"), "clusters": api.request("GET", "/clusters")}
        if result["status"].get("discovery") is not None:
            result["records"] = api.request("GET", "/records")["records"]
        return result

    return run(
        args,
        fetch,
        lambda result: print(render(args.api, result["status"], result["clusters"], result.get("records"))),
    )


def render(api: str, status: dict[str, Any], clusters: dict[str, Any], records: list | None = None) -> str:
    snap, store = status["snapshot"], status["store"]
    age = "never loaded" if snap["age_s"] is None else f"confirmed {snap['age_s']:.1f}s ago"
    lines = [
        f"geodns at {api}: {'ready' if status['ready'] else 'NOT READY: ' + status['reason']}",
        f"snapshot v{snap['version']} ({age}); store {store['url']} "
        f"{'connected' if store['connected'] else 'UNREACHABLE'}; {status['queries']} queries answered; "
        f"reloads {status['reloads'].get('ok', 0)} ok, {status['reloads'].get('failed', 0)} failed",
        f"zones: {', '.join(status['zones']) or '-'}   records: {', '.join(status['records']) or '-'}",
        "",
        cluster_table(clusters["clusters"]),
    ]
    failing = failing_table(clusters["clusters"], time.time())
    if failing:
        lines += ["", failing]
    discovery = status.get("discovery")
    if discovery is not None:
        lines += ["", discovery_table(records or [], discovery)]
    return "\n".join(lines)


def discovery_table(records: list[dict[str, Any]], discovery: dict[str, Any]) -> str:
    """Records from discovery, one row per registering cluster, then the claims not served."""
    rows = []
    for r in records:
        for o in r.get("registrations", ()):
            lease = f"{o['lease_age_s']:.0f}s" + (f" STALE, removed in {o['removed_in_s']:.0f}s" if o["stale"] else "")
            rows.append((r["name"], o["cluster"], o["region"], o["source"] or "-", lease, "served"))
    for kind, claims in (("REFUSED", discovery.get("refused", ())), ("CONFLICT", discovery.get("conflicts", ()))):
        for c in claims:
            rows.append((c["name"], c["cluster"], "-", c["source"] or "-", "-", f"{kind}: {c['reason']}"))
    if not rows:
        return "discovery: no registrations"
    return table(("DISCOVERED", "CLUSTER", "REGION", "SOURCE", "LEASE AGE", "STATUS"), rows)


def cluster_table(clusters: list[dict[str, Any]]) -> str:
    rows = []
    for c in clusters:
        endpoints = ", ".join(_endpoint(e) for e in c["endpoints"])
        vantages = (
            " ".join(
                f"{v}:{t['up']}/{t['down']}" + (f"@{t['rtt_ms']:.1f}ms" if t.get("rtt_ms") is not None else "")
                for v, t in c["vantages"].items()
            )
            or "-"
        )
        load, shed = _load(c.get("load"))
        rows.append((c["name"], c["region"], c["state"], c["admin"], c["weight"], load, shed, endpoints, vantages))
    return table(
        ("CLUSTER", "REGION", "STATE", "ADMIN", "WEIGHT", "LOAD", "SHED", "ENDPOINTS", "UP/DOWN BY VANTAGE"), rows
    )


def _load(load: dict[str, Any] | None) -> tuple[str, str]:
    """LOAD: reported (smoothed) or "-" when unknown; SHED: the share of new answers sent elsewhere,
    with ~ while it is still moving, "-" for a cluster without watermarks."""
    if not load:
        return "-", "-"
    reported, smoothed = load.get("reported"), load.get("smoothed")
    text = "-" if reported is None else f"{reported:.2f}"
    if smoothed is not None and reported is not None and abs(smoothed - reported) >= 0.005:
        text += f" ({smoothed:.2f})"
    if load.get("high") is None:
        return text, "-"
    return text, f"{load['shed_share'] * 100:.0f}%" + ("~" if load.get("shedding_moves") else "")


def failing_table(clusters: list[dict[str, Any]], now: float) -> str:
    """One row per checker that holds an endpoint down or sees it failing: why, and since when."""
    rows = []
    for c in clusters:
        for e in c["endpoints"]:
            for o in e.get("observations", ()):
                if not o["fresh"] or (o["up"] is not False and not o.get("reason")):
                    continue
                verdict = {True: "up", False: "down", None: "no verdict"}[o["up"]]
                rows.append(
                    (
                        c["name"],
                        e["address"],
                        o["checker"],
                        o["vantage"],
                        verdict,
                        o.get("reason") or "-",
                        since(o.get("down_since"), now),
                    )
                )
    if not rows:
        return ""
    return table(("CLUSTER", "ENDPOINT", "CHECKER", "VANTAGE", "VERDICT", "REASON", "DOWN SINCE"), rows)


def since(when: float | None, now: float) -> str:
    """'22:41:03Z (35s ago)' for a unix time; '-' for none."""
    if when is None:
        return "-"
    ago = max(0, round(now - when))
    age = f"{ago}s" if ago < 120 else f"{ago // 60}m" if ago < 7200 else f"{ago // 3600}h"
    return f"{time.strftime('%H:%M:%SZ', time.gmtime(when))} ({age} ago)"


def _endpoint(e: dict[str, Any]) -> str:
    extra = f" w{e['weight']}" if e["weight"] != 100 else ""
    return f"{e['address']} {e['state']}{extra}"
