"""``geodns status``: the server and its clusters at a glance."""
from __future__ import annotations

import argparse
from typing import Any

from .client import Api, run
from .table import table


def add_parser(subparsers, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser("status", parents=[common], help="show the server, its clusters and their health")
    p.set_defaults(func=cmd_status)


def cmd_status(args: argparse.Namespace) -> int:
    def fetch(api: Api) -> dict[str, Any]:
        return {"status": api.request("GET", "/status"), "clusters": api.request("GET", "/clusters")}
    return run(args, fetch, lambda result: print(render(args.api, result["status"], result["clusters"])))


def render(api: str, status: dict[str, Any], clusters: dict[str, Any]) -> str:
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
    return "\n".join(lines)


def cluster_table(clusters: list[dict[str, Any]]) -> str:
    rows = []
    for c in clusters:
        endpoints = ", ".join(_endpoint(e) for e in c["endpoints"])
        vantages = " ".join(f"{v}:{t['up']}/{t['down']}" + (f"@{t['rtt_ms']:.1f}ms" if t.get("rtt_ms") is not None else "")
                            for v, t in c["vantages"].items()) or "-"
        load, shed = _load(c.get("load"))
        rows.append((c["name"], c["region"], c["state"], c["admin"], c["weight"], load, shed, endpoints, vantages))
    return table(("CLUSTER", "REGION", "STATE", "ADMIN", "WEIGHT", "LOAD", "SHED", "ENDPOINTS",
                  "UP/DOWN BY VANTAGE"), rows)


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


def _endpoint(e: dict[str, Any]) -> str:
    extra = f" w{e['weight']}" if e["weight"] != 100 else ""
    return f"{e['address']} {e['state']}{extra}"
