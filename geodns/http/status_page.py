"""``GET /``: one self-contained HTML page an operator can read at a glance.

Inline CSS and SVG only (no scripts, no external assets, no CDN); it reloads
itself every 10 seconds.  Three parts: the server's own state, where traffic
goes (a map and a table per GSLB record, from ``traffic.traffic``), and the
clusters with their endpoints, weights, admin and health states per vantage.

The page grows with the number of records, so it is built in the views'
thread (``TrafficViews``) from plain data gathered on the event loop; the
traffic part is the one computed once per state generation.
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from html import escape
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..config.model import Region
from . import views, worldmap
from .traffic import TrafficViews, let_the_loop_run

if TYPE_CHECKING:
    from ..server import Server

REFRESH_SECONDS = 10
# Cluster colours avoid red and green, which mean down and up everywhere else on the page.
PALETTE = ("#1f77b4", "#9467bd", "#ff7f0e", "#17becf", "#e377c2", "#8c564b", "#bcbd22", "#393b79", "#7f7f7f",
           "#637939")
MAP_WIDTH = 680                      # on screen; the SVG scales from worldmap's canvas
STATE_CLASS = {"up": "ok", "forced-up": "ok", "unknown": "warn", "drained": "warn", "down": "bad",
               "forced-down": "bad"}

CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}
header{background:#1d2330;color:#fff;padding:12px 24px;display:flex;gap:24px;align-items:baseline;flex-wrap:wrap}
header h1{font-size:20px;margin:0 12px 0 0}
header .kv{opacity:.9}
main{padding:16px 24px;max-width:1400px}
section{background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.12);padding:12px 16px;margin-bottom:16px}
h2{font-size:16px;margin:4px 0 10px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #e4e6eb;vertical-align:top}
th{font-weight:600;color:#555;font-size:12px;text-transform:uppercase;letter-spacing:.03em}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;color:#fff}
.ok{background:#1e8e3e}.warn{background:#e37400}.bad{background:#c5221f}.none{background:#9aa0a6}
.chip{display:inline-block;margin:1px 4px 1px 0;padding:1px 6px;border-radius:4px;font:12px ui-monospace,monospace;
 border-left:5px solid #9aa0a6;background:#f1f3f4}
.chip.ok{border-color:#1e8e3e}.chip.warn{border-color:#e37400}.chip.bad{border-color:#c5221f}
.chip.ok,.chip.warn,.chip.bad{background:#f1f3f4;color:#1d2330}
.swatch{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:5px;vertical-align:-1px}
.traffic{display:flex;gap:16px;flex-wrap:wrap}
.traffic svg{flex:0 0 auto;border-radius:6px;max-width:100%}
.traffic table{flex:1 1 320px;width:auto}
.muted{color:#6b7280;font-size:12px}
.traffic td:last-child,td.vt{white-space:nowrap}
.bar{display:inline-block;height:10px;border-radius:2px;vertical-align:middle;margin-right:1px}
"""


def _badge(state: str, text: str | None = None) -> str:
    return f'<span class="badge {STATE_CLASS.get(state, "none")}">{escape(text or state)}</span>'


def _colors(clusters: list[str]) -> dict[str, str]:
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(sorted(clusters))}


def _header(status: dict[str, Any]) -> str:
    ready = _badge("up" if status["ready"] else "down", "ready" if status["ready"] else "not ready")
    store = status["store"]
    snap = status["snapshot"]
    age = "never loaded" if snap["age_s"] is None else f"{snap['age_s']:.1f}s ago"
    reloads = status["reloads"]
    parts = [
        f"<h1>geodns</h1>{ready}",
        f'<span class="kv">zones: {escape(", ".join(status["zones"]) or "-")}</span>',
        f'<span class="kv">snapshot v{snap["version"]} (confirmed {age})</span>',
        f'<span class="kv">store {escape(store["url"])}: '
        f'{_badge("up" if store["connected"] else "down", "connected" if store["connected"] else "unreachable")}</span>',
        f'<span class="kv">queries: {status["queries"]}</span>',
        f'<span class="kv">reloads: {reloads.get("ok", 0)} ok, {reloads.get("failed", 0)} failed</span>',
    ]
    if not status["ready"]:
        parts.append(f'<span class="kv">{escape(status["reason"])}</span>')
    return "<header>" + "".join(parts) + "</header>"


def _map(record: dict[str, Any], clusters: list[dict[str, Any]], regions, colors: dict[str, str]) -> str:
    """Land, each cluster at its region, and a line from every place to where it is sent."""
    w, h = worldmap.WIDTH, worldmap.HEIGHT
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{MAP_WIDTH}" height="{round(MAP_WIDTH * h / w)}" '
           f'viewBox="0 0 {w} {h}" '
           f'role="img" aria-label="where traffic for {escape(record["record"])} goes">',
           f'<rect width="{w}" height="{h}" fill="#dbe8f4"/>',
           f'<path d="{worldmap.graticule()}" stroke="#c4d6e8" stroke-width="1" fill="none"/>',
           f'<path d="{worldmap.land_paths()}" fill="#f3f1ea" stroke="#c9c5b8" stroke-width="1"/>']
    anchor: dict[str, tuple[float, float]] = {}
    by_region: dict[str, list[str]] = {}
    for cluster in clusters:
        if cluster["region"] in regions:
            by_region.setdefault(cluster["region"], []).append(cluster["name"])
    for region_name, names in sorted(by_region.items()):
        region = regions[region_name]
        x, y = worldmap.project(region.lat, region.lon)
        for i, name in enumerate(sorted(names)):
            anchor[name] = (x + 12 * i, y)
    for place in record["places"]:
        px, py = worldmap.project(place["lat"], place["lon"])
        for cluster, share in place["shares"].items():
            if cluster not in anchor:
                continue
            cx, cy = anchor[cluster]
            mx, my = (px + cx) / 2, (py + cy) / 2 - min(60.0, abs(px - cx) / 5 + 8)
            dash = "" if share >= 0.999 else ' stroke-dasharray="5 4"'
            out.append(f'<path d="M{px},{py} Q{mx:.1f},{my:.1f} {cx},{cy}" fill="none" stroke="{colors[cluster]}" '
                       f'stroke-width="{1 + 2.5 * share:.1f}" stroke-opacity="0.8"{dash}/>')
        color = colors.get(place["primary"], "#555")
        out.append(f'<circle cx="{px}" cy="{py}" r="5" fill="{color}" stroke="#fff" stroke-width="1.5">'
                   f'<title>{escape(place["place"])}</title></circle>')
    states = {c["name"]: c["state"] for c in clusters}
    for name, (x, y) in anchor.items():
        ring = {"ok": "#1e8e3e", "warn": "#e37400", "bad": "#c5221f"}.get(STATE_CLASS.get(states[name], ""), "#555")
        out.append(f'<circle cx="{x}" cy="{y}" r="11" fill="{colors[name]}" stroke="{ring}" stroke-width="4"/>')
        right = x > w - 230                         # near the right edge: label to the left of the marker
        out.append(f'<text x="{x - 14 if right else x + 14}" y="{y - 12}" text-anchor="{"end" if right else "start"}" '
                   f'font-size="17" font-weight="700" fill="#1d2330" '
                   f'stroke="#fff" stroke-width="3" paint-order="stroke">{escape(name)} ({escape(states[name])})</text>')
    out.append("</svg>")
    return "".join(out)


def _shares(shares: dict[str, float], colors: dict[str, str]) -> str:
    if not shares:
        return '<span class="muted">nothing (NODATA)</span>'
    bars = "".join(f'<span class="bar" style="width:{max(2, round(60 * s))}px;background:{colors.get(c, "#555")}">'
                   f'</span>' for c, s in shares.items())
    text = ", ".join(f"{escape(c)} {round(100 * s)}%" for c, s in shares.items())
    return f"{bars} {text}"


def _traffic_section(records: list[dict[str, Any]], clusters: list[dict[str, Any]], regions: Mapping[str, Region],
                     colors: dict[str, str]) -> str:
    if not records:
        return "<section><h2>Where traffic goes</h2><p class='muted'>No GSLB records configured.</p></section>"
    out = []
    for record in records:
        let_the_loop_run()                  # built in the views' thread: DNS answers go first
        rows = "".join(
            f"<tr><td>{escape(p['place'])}</td><td>{escape(p['country'] or '-')}/{escape(p['continent'])}</td>"
            f"<td>{_shares(p['shares'], colors)}{' <b>(fallback)</b>' if p['fallback'] else ''}</td></tr>"
            for p in record["places"])
        out.append(
            f"<section><h2>Where traffic for {escape(record['record'])} goes "
            f"<span class='muted'>policy {escape(' → '.join(record['policy']))}; "
            f"A answers for a client in each place, now</span></h2><div class='traffic'>"
            f"{_map(record, clusters, regions, colors)}"
            f"<table><tr><th>Client in</th><th>Country</th><th>Sent to</th></tr>{rows}</table></div></section>")
    return "".join(out)


def _endpoints(cluster: dict[str, Any]) -> str:
    chips = []
    for e in cluster["endpoints"]:
        detail = f" w{e['weight']}" + (f" {e['admin']}" if e["admin"] != "active" else "")
        chips.append(f'<span class="chip {STATE_CLASS.get(e["state"], "none")}" title="{escape(e["state"])}">'
                     f'{escape(e["address"])} {escape(e["state"])}{escape(detail)}</span>')
    return "".join(chips)


def _vantages(cluster: dict[str, Any], all_vantages: list[str]) -> str:
    cells = []
    for vantage in all_vantages:
        seen = cluster["vantages"].get(vantage)
        if seen is None:
            cells.append('<td class="vt"><span class="muted">no verdict</span></td>')
            continue
        state = "up" if seen["down"] == 0 else "down" if seen["up"] == 0 else "drained"
        rtt = f" {seen['rtt_ms']:.1f} ms" if seen.get("rtt_ms") is not None else ""
        verdicts = f"{seen['up']} up / {seen['down']} down"
        cells.append(f"<td class='vt'>{_badge(state, verdicts)}{escape(rtt)}</td>")
    return "".join(cells)


def _clusters_section(clusters: list[dict[str, Any]], colors: dict[str, str]) -> str:
    vantages = sorted({v for c in clusters for v in c["vantages"]})
    head = "".join(f"<th>from {escape(v)}</th>" for v in vantages) or "<th>checks</th>"
    rows = []
    for c in clusters:
        health = _vantages(c, vantages) if vantages else '<td><span class="muted">no checker reports</span></td>'
        rows.append(
            f"<tr><td><span class='swatch' style='background:{colors[c['name']]}'></span><b>{escape(c['name'])}</b>"
            f"<div class='muted'>{escape(', '.join(c['records']) or 'in no record')}</div></td>"
            f"<td class='vt'>{escape(c['region'])}</td><td>{_badge(c['state'])}</td>"
            f"<td>{escape(c['admin'])}</td><td>{c['weight']}</td><td>{_endpoints(c)}</td>{health}</tr>")
    return ("<section><h2>Clusters</h2><table><tr><th>Cluster</th><th>Region</th><th>State</th><th>Admin</th>"
            f"<th>Weight</th><th>Endpoints</th>{head}</tr>{''.join(rows)}</table></section>")


def render(status: dict[str, Any], clusters: list[dict[str, Any]], regions: Mapping[str, Region],
           records: list[dict[str, Any]]) -> str:
    """The page from plain data: ``views.status_view``, ``views.clusters_view``'s clusters, ``traffic``."""
    colors = _colors([c["name"] for c in clusters])
    generated = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta http-equiv='refresh' content='{REFRESH_SECONDS}'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>geodns status</title><style>{CSS}</style></head><body>"
        f"{_header(status)}<main>"
        f"{_clusters_section(clusters, colors)}"
        f"{_traffic_section(records, clusters, regions, colors)}"
        f"<p class='muted'>Generated {escape(generated)}; refreshes every {REFRESH_SECONDS}s. "
        "JSON: <a href='/api/v1/clusters'>/api/v1/clusters</a>, <a href='/api/v1/status'>/api/v1/status</a>, "
        "<a href='/metrics'>/metrics</a>.</p></main></body></html>")


def _utf8(make: Any, *args: Any) -> bytes:
    """``make(*args)`` encoded, so that a page of megabytes is not encoded on the event loop either."""
    return make(*args).encode("utf-8")


def add_routes(app: web.Application, server: Server, traffic_views: TrafficViews) -> None:
    async def page(request: web.Request) -> web.Response:
        records = await traffic_views.records(views.gslb(server))
        status = views.status_view(server)
        clusters = views.clusters_view(server)["clusters"]
        html = await traffic_views.run(_utf8, render, status, clusters, views.config_of(server).regions, records)
        return web.Response(body=html, content_type="text/html", charset="utf-8")

    app.router.add_get("/", page)
