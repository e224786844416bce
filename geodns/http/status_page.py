"""``GET /``: one self-contained HTML page an operator can read at a glance.

Inline CSS and SVG only (no scripts, no external assets, no CDN); it reloads
itself every 10 seconds.  Its parts: the server's own state and query rate, a
legend, the clusters with their endpoints, weights, admin and health states per
vantage, the checkers' liveness, each endpoint's recent state changes, and
where traffic goes (a map and a table per GSLB record, from ``traffic.traffic``)
with the reason per place: the policy's filter steps as ``geodns explain``
gives them.

The page grows with the number of records, so it is built in the views'
thread (``TrafficViews``) from plain data gathered on the event loop; the
traffic part is the one computed once per state generation, and kept as
JSON (``traffic.Traffic``): each record's view is decoded while its part of
the page is written, then dropped.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterator, Mapping
from html import escape
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..config.model import Region
from . import traffic_map, views
from .status_parts import LEGEND, QueryRate, badge, checkers_section, discovery_section, history_section, rate_text
from .traffic import TrafficViews, let_the_loop_run, send_parts
from .traffic_map import STATE_CLASS

if TYPE_CHECKING:
    from ..process.server import Server

REFRESH_SECONDS = 10
# Cluster colours avoid red and green, which mean down and up everywhere else on the page.
PALETTE = ("#1f77b4", "#9467bd", "#ff7f0e", "#17becf", "#e377c2", "#8c564b", "#bcbd22", "#393b79", "#7f7f7f", "#637939")

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
.traffic svg.map{border-radius:6px;max-width:100%;display:block;margin-bottom:8px}
.muted{color:#6b7280;font-size:12px}
td.vt{white-space:nowrap}
table.places th.why{width:46%}
table.places th.sent{width:17%}
.bar{display:inline-block;height:10px;border-radius:2px;vertical-align:middle;margin-right:1px}
ol.why{margin:0;padding-left:18px;font-size:12px}
ol.why li{margin:0}
ol.why s{color:#c5221f}
.legend .cols{display:flex;gap:28px;flex-wrap:wrap;font-size:12px}
.legend .cols>div{flex:1 1 220px}
.legend svg{vertical-align:middle}
svg.timeline{vertical-align:middle}
td.for,td.cl{white-space:nowrap}
"""


def _colors(clusters: list[str]) -> dict[str, str]:
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(sorted(clusters))}


def _header(status: dict[str, Any], rate: tuple[float, float] | None) -> str:
    ready = badge("up" if status["ready"] else "down", "ready" if status["ready"] else "not ready")
    store = status["store"]
    snap = status["snapshot"]
    age = "never loaded" if snap["age_s"] is None else f"{snap['age_s']:.1f}s ago"
    reloads = status["reloads"]
    parts = [
        f"<h1>geodns</h1>{ready}",
        f'<span class="kv">zones: {escape(", ".join(status["zones"]) or "-")}</span>',
        f'<span class="kv">snapshot v{snap["version"]} (confirmed {age})</span>',
        f'<span class="kv">store {escape(store["url"])}: '
        f"{badge('up' if store['connected'] else 'down', 'connected' if store['connected'] else 'unreachable')}</span>",
        f'<span class="kv">queries: {status["queries"]:,} <span class="rate">({rate_text(rate)})</span></span>',
        f'<span class="kv">reloads: {reloads.get("ok", 0)} ok, {reloads.get("failed", 0)} failed</span>',
    ]
    if not status["ready"]:
        parts.append(f'<span class="kv">{escape(status["reason"])}</span>')
    return "<header>" + "".join(parts) + "</header>"


def _shares(shares: dict[str, float], colors: dict[str, str]) -> str:
    if not shares:
        return '<span class="muted">nothing (NODATA)</span>'
    bars = "".join(
        f'<span class="bar" style="width:{max(2, round(60 * s))}px;background:{colors.get(c, "#555")}"></span>'
        for c, s in shares.items()
    )
    text = ", ".join(f"{escape(c)} {round(100 * s)}%" for c, s in shares.items())
    return f"{bars} {text}"


def _steps(steps: list[dict[str, Any]]) -> str:
    """A decision's filter steps: the clusters kept, the dropped struck through, the reason."""
    items = []
    for step in steps:
        kept = ", ".join(escape(c) for c in step["out"]) or "nothing"
        dropped = "".join(f" <s>{escape(c)}</s>" for c in step["dropped"])
        why = f" <span class='muted'>{escape(step['why'])}</span>" if step["why"] else ""
        items.append(f"<li><b>{escape(step['filter'])}</b> → {kept}{dropped}{why}</li>")
    return f"<ol class='why'>{''.join(items)}</ol>"


def _place_row(record: str, p: dict[str, Any], colors: dict[str, str]) -> str:
    aaaa = p["aaaa"]
    why = _steps(p["why"])
    if p.get("why_aaaa"):
        why += f"<div class='muted'>AAAA differs:</div>{_steps(p['why_aaaa'])}"
    return (
        f"<tr data-record='{escape(record)}' data-place='{escape(p['place'])}'><td>{escape(p['place'])}</td>"
        f"<td>{escape(p['country'] or '-')}/{escape(p['continent'])}</td>"
        f"<td class='a'>{_shares(p['shares'], colors)}{' <b>(fallback)</b>' if p['fallback'] else ''}</td>"
        f"<td class='aaaa'>{_shares(aaaa['shares'], colors)}{' <b>(fallback)</b>' if aaaa['fallback'] else ''}</td>"
        f"<td>{why}</td></tr>"
    )


def _traffic_sections(
    records: Collection[dict[str, Any]],
    clusters: list[dict[str, Any]],
    regions: Mapping[str, Region],
    colors: dict[str, str],
) -> Iterator[str]:
    """One section per record, one at a time: the page is sent in parts (``send_parts``), never joined."""
    if not records:
        yield "<section><h2>Where traffic goes</h2><p class='muted'>No GSLB records configured.</p></section>"
    for record in records:
        let_the_loop_run()  # built in the views' thread: DNS answers go first
        rows = "".join(_place_row(record["record"], p, colors) for p in record["places"])
        yield (
            f"<section class='traffic' id='{escape(record['record'])}'><h2>Where traffic for {escape(record['record'])} goes "
            f"<span class='muted'>policy {escape(' → '.join(record['policy']))}; "
            f"for a client in each place, now; the map shows A answers</span></h2>"
            f"{traffic_map.draw(record, clusters, regions, colors)}"
            f"<table class='places'><tr><th>Client in</th><th>Country</th><th class='sent'>A answers go to</th>"
            f"<th class='sent'>AAAA answers go to</th>"
            f"<th class='why'>Why (policy steps for A, as <code>geodns explain</code>)</th></tr>{rows}</table></section>"
        )


def _failures(endpoint: dict[str, Any]) -> list[str]:
    """Each checker's failure, 'chk-eu (eu-west): down, HTTP 503 since 12:00:03Z': fresh ones only."""
    out = []
    for o in endpoint.get("observations", ()):
        if o["fresh"] and (o["up"] is False or o.get("reason")):
            verdict = {True: "up", False: "down", None: "no verdict"}[o["up"]]
            since = (
                time.strftime(" since %H:%M:%SZ", time.gmtime(o["down_since"]))
                if o.get("down_since") is not None
                else ""
            )
            out.append(f"{o['checker']} ({o['vantage']}): {verdict}, {o.get('reason') or '?'}{since}")
    return out


def _endpoints(cluster: dict[str, Any]) -> str:
    chips = []
    for e in cluster["endpoints"]:
        detail = f" w{e['weight']}" + (f" {e['admin']}" if e["admin"] != "active" else "")
        failures = _failures(e)
        title = "\n".join([e["state"], *failures])
        why = f" ({failures[0].split(': ', 1)[1]})" if failures else ""  # the first checker's, in short
        chips.append(
            f'<span class="chip {STATE_CLASS.get(e["state"], "none")}" title="{escape(title)}">'
            f"{escape(e['address'])} {escape(e['state'])}{escape(detail)}{escape(why)}</span>"
        )
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
        cells.append(f"<td class='vt'>{badge(state, verdicts)}{escape(rtt)}</td>")
    return "".join(cells)


def _clusters_section(clusters: list[dict[str, Any]], colors: dict[str, str]) -> str:
    vantages = sorted({v for c in clusters for v in c["vantages"]})
    head = "".join(f"<th>from {escape(v)}</th>" for v in vantages) or "<th>checks</th>"
    rows = []
    for c in clusters:
        health = _vantages(c, vantages) if vantages else '<td><span class="muted">no checker reports</span></td>'
        rows.append(
            f"<tr data-cluster='{escape(c['name'])}'><td><span class='swatch' style='background:{colors[c['name']]}'>"
            f"</span><b>{escape(c['name'])}</b>"
            f"<div class='muted'>{escape(', '.join(c['records']) or 'in no record')}</div></td>"
            f"<td class='vt'>{escape(c['region'])}</td><td class='state'>{badge(c['state'])}</td>"
            f"<td>{escape(c['admin'])}</td><td>{c['weight']}</td>{_load(c.get('load'))}<td>{_endpoints(c)}</td>"
            f"{health}</tr>"
        )
    return (
        "<section><h2>Clusters</h2><table><tr><th>Cluster</th><th>Region</th><th>State</th><th>Admin</th>"
        f"<th>Weight</th><th>Load</th><th>Shed</th><th>Endpoints</th>{head}</tr>{''.join(rows)}</table></section>"
    )


def _load(load: dict[str, Any] | None) -> str:
    """Load (reported, and the smoothed figure the shed filter acts on) and the share of new answers shed."""
    if not load or load.get("reported") is None:
        return "<td class='load'><span class='muted'>unknown</span></td><td class='shed'>-</td>"
    marks = f" (low {load['low']:g}, high {load['high']:g})" if load.get("low") is not None else ""
    smoothed = load.get("smoothed")
    title = escape(f"smoothed {smoothed:.2f}{marks}" if smoothed is not None else marks.strip(" ()"))
    share = load.get("shed_share") or 0.0
    moving = " ~" if load.get("shedding_moves") else ""
    return (
        f"<td class='load' title='{title}'>{load['reported']:.2f}</td><td class='shed'>{100 * share:.0f}%{moving}</td>"
    )


def render(*args: Any, **kw: Any) -> str:
    """The page as one string (``render_parts`` joined)."""
    return "".join(render_parts(*args, **kw))


def render_parts(
    status: dict[str, Any],
    clusters: list[dict[str, Any]],
    regions: Mapping[str, Region],
    records: Collection[dict[str, Any]],
    checkers: list[dict[str, Any]] | None = None,
    history: dict[str, Any] | None = None,
    rate: tuple[float, float] | None = None,
    now: float | None = None,
    origins: list[dict[str, Any]] | None = None,
) -> Iterator[str]:
    """The page from plain data: ``views.status_view``, ``views.clusters_view``'s clusters, ``traffic``,
    ``views.checkers_view``, ``views.history_view`` and ``QueryRate.sample``; in parts, a record's at a time."""
    now = time.time() if now is None else now
    colors = _colors([c["name"] for c in clusters])
    generated = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    history = history if history is not None else {"since": None, "endpoints": {}}
    yield (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta http-equiv='refresh' content='{REFRESH_SECONDS}'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>geodns status</title><style>{CSS}</style></head><body>"
        f"{_header(status, rate)}<main>"
        f"{LEGEND}"
        f"{_clusters_section(clusters, colors)}"
        f"{checkers_section(checkers or [])}"
        f"{discovery_section(origins or [], status.get('discovery'))}"
        f"{history_section(clusters, history, now)}"
    )
    yield from _traffic_sections(records, clusters, regions, colors)
    yield (
        f"<p class='muted'>Generated {escape(generated)}; refreshes every {REFRESH_SECONDS}s. "
        "JSON: <a href='/api/v1/clusters'>/api/v1/clusters</a>, <a href='/api/v1/traffic'>/api/v1/traffic</a>, "
        "<a href='/api/v1/status'>/api/v1/status</a>, <a href='/metrics'>/metrics</a>.</p></main></body></html>"
    )


def _utf8(*args: Any) -> list[bytes]:
    """``render_parts(*args)``, each part encoded: a page of 100 MB is neither joined nor encoded at once,
    which would hold the interpreter (and the DNS answers waiting for it) for a tenth of a second."""
    return [part.encode("utf-8") for part in render_parts(*args)]


def add_routes(app: web.Application, server: Server, traffic_views: TrafficViews) -> None:
    rate = QueryRate()

    async def page(request: web.Request) -> web.StreamResponse:
        records = await traffic_views.records(views.gslb(server))
        now = time.time()
        status = views.status_view(server)
        clusters = views.clusters_view(server)["clusters"]
        history = views.history_view(server, clusters)
        responder = views.gslb(server)
        snapshot = responder.live.snapshot if responder is not None else views.keeper_of(server).snapshot
        checkers = views.checkers_view(snapshot, now, server.history.checkers)
        parts = await traffic_views.run(
            _utf8,
            status,
            clusters,
            views.config_of(server).regions,
            records,
            checkers,
            history,
            rate.sample(now, status["queries"]),
            now,
            [r for r in views.records_view(server) if r["origin"] == "discovery"],
        )
        return await send_parts(request, parts, "text/html", "utf-8")

    app.router.add_get("/", page)
