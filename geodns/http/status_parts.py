"""The status page's smaller parts: the legend, the checkers, the state-change timelines, the query rate.

Pure HTML from plain data (``views.checkers_view``, ``views.history_view``), so
they can be built in the views' thread like the rest of the page.
"""

from __future__ import annotations

from collections import deque
from html import escape
from typing import Any

from . import timeline
from .traffic_map import RING, STATE_CLASS

RATE_WINDOW = 60.0  # seconds: the query rate is over about the last minute


def badge(state: str, text: str | None = None) -> str:
    return f'<span class="badge {STATE_CLASS.get(state, "none")}">{escape(text or state)}</span>'


class QueryRate:
    """Queries per second from the server's query counter, sampled when the page is loaded.

    No per-query work: the counter exists anyway (``/metrics``); the rate is
    its growth since the oldest load within the last ``RATE_WINDOW`` seconds,
    else since the previous load.
    """

    def __init__(self, window: float = RATE_WINDOW) -> None:
        self.window = window
        self._samples: deque[tuple[float, int]] = deque()

    def sample(self, now: float, total: int) -> tuple[float, float] | None:
        """(queries per second, over how many seconds), or None on the first load or after a counter reset."""
        samples = self._samples
        while len(samples) > 1 and now - samples[1][0] >= self.window:
            samples.popleft()  # keep one sample from before the window: the fallback
        base = None
        if samples:
            base = next((s for s in samples if now - s[0] <= self.window), samples[-1])
        samples.append((now, total))
        if base is None or now <= base[0] or total < base[1]:
            return None
        return (total - base[1]) / (now - base[0]), now - base[0]


def rate_text(rate: tuple[float, float] | None) -> str:
    if rate is None:
        return "rate shown from the next refresh"
    per_second, over = rate
    return f"{per_second:,.1f}/s over the last {timeline.duration(over)}"


LEGEND = f"""<section class="legend"><h2>Legend</h2><div class="cols">
<div><b>States</b><br>{badge("up")} up: gets traffic (forced-up too)<br>
{badge("drained")} drained, or unknown (no checker verdict yet; answered as up by default)<br>
{badge("down")} down, forced-down: no traffic<br>{badge("none", "gray")} nothing known</div>
<div><b>Map</b><br><svg width="60" height="14"><line x1="2" y1="7" x2="58" y2="7" stroke="#555" stroke-width="3.5"/>
</svg> all of a place's A answers go there<br><svg width="60" height="14"><line x1="2" y1="7" x2="58" y2="7"
stroke="#555" stroke-width="2" stroke-dasharray="5 4"/></svg> a share of them (thicker: more)<br>
<svg width="16" height="16"><circle cx="8" cy="8" r="5" fill="#777" stroke="#fff"/></svg> a place, in the colour
of its main cluster; <svg width="24" height="24"><circle cx="12" cy="12" r="8" fill="#777" stroke="{RING["ok"]}"
stroke-width="3"/></svg> a cluster, ringed by its state</div>
<div><b>Checkers</b><br>{badge("up", "voting")} reports verdicts<br>
{badge("drained", "suspect")} reports but casts no vote: judged itself partitioned, or has no verdict yet<br>
{badge("down", "silent")} no fresh report: its observations expired, it counts for nothing</div>
<div><b>Why</b><br>each filter of the record's policy in order, the clusters it kept, <s>dropped</s>, and its
reason; <code>weighted</code> shows one random order and the odds.<br><b>History</b><br>an endpoint's state
over time as this server saw it (colours as for states; grey: before it began noting), now at the right; hover a
segment for its times.</div>
</div></section>"""


def checkers_section(checkers: list[dict[str, Any]]) -> str:
    if not checkers:
        return (
            "<section><h2>Checkers</h2><p class='muted'>No checker has reported into the table "
            "(no observations).</p></section>"
        )
    status_badge = {"voting": "up", "suspect": "drained", "silent": "down"}
    rows = "".join(
        f"<tr data-checker='{escape(c['checker'])}'><td><b>{escape(c['checker'])}</b></td>"
        f"<td>{escape(c['vantage'])}</td><td class='liveness'>{badge(status_badge[c['status']], c['status'])}</td>"
        f"<td class='age'>{timeline.duration(c['age_s'])} ago</td>"
        f"<td>{c['fresh']} of {c['observations']}</td><td>{c['votes']} ({c['down_votes']} down)</td></tr>"
        for c in checkers
    )
    return (
        "<section><h2>Checkers <span class='muted'>from their observations in the table</span></h2><table>"
        "<tr><th>Checker</th><th>Vantage</th><th>Liveness</th><th>Last report</th><th>Fresh observations</th>"
        f"<th>Votes</th></tr>{rows}</table></section>"
    )


def discovery_section(records: list[dict[str, Any]], discovery: dict[str, Any] | None) -> str:
    """Records from discovery: who registered each (cluster, agent, Kubernetes object), the lease's
    age and whether it is stale; then the claims refused or in conflict with the config."""
    if discovery is None:
        return ""
    rows = []
    for r in records:
        for o in r.get("registrations", ()):
            lease = f"{timeline.duration(o['lease_age_s'])} ago"
            state = (
                badge("drained", f"stale, removed in {timeline.duration(o['removed_in_s'])}")
                if o["stale"]
                else badge("up", "served")
            )
            rows.append(
                f"<tr class='discovered' data-record='{escape(r['name'])}'><td><b>{escape(r['name'])}</b></td>"
                f"<td>{escape(o['cluster'])}</td><td>{escape(o['region'])}</td><td>{escape(o['agent'])}</td>"
                f"<td>{escape(o['source'] or '-')}</td><td>{lease}</td><td>{state}</td></tr>"
            )
    for kind, claims in (("refused", discovery.get("refused", ())), ("conflict", discovery.get("conflicts", ()))):
        for c in claims:
            rows.append(
                f"<tr class='{kind}' data-record='{escape(c['name'])}'><td>{escape(c['name'])}</td>"
                f"<td>{escape(c['cluster'])}</td><td>-</td><td>-</td><td>{escape(c['source'] or '-')}</td><td>-</td>"
                f"<td>{badge('down', kind)} {escape(c['reason'])}</td></tr>"
            )
    if not rows:
        return "<section><h2>Discovery</h2><p class='muted'>No cluster has registered anything.</p></section>"
    return (
        "<section><h2>Discovery <span class='muted'>records clusters registered themselves</span></h2><table>"
        "<tr><th>Name</th><th>Cluster</th><th>Region</th><th>Agent</th><th>Source</th><th>Lease renewed</th>"
        f"<th>Status</th></tr>{''.join(rows)}</table></section>"
    )


def history_section(clusters: list[dict[str, Any]], history: dict[str, Any], now: float) -> str:
    since = history["since"]
    rows = []
    for c in clusters:
        for e in c["endpoints"]:
            changes = history["endpoints"].get((c["name"], e["address"]), [])
            last = ", ".join(f"{timeline.clock(at)} {escape(state)}" for at, state in changes[-4:][::-1])
            rows.append(
                f"<tr data-endpoint='{escape(c['name'])}/{escape(e['address'])}'>"
                f"<td class='cl'>{escape(c['name'])}</td>"
                f"<td>{escape(e['address'])}</td><td>{badge(e['state'])}</td>"
                f"<td class='for'>{escape(timeline.current(changes, now, since))}</td>"
                f"<td>{timeline.strip(changes, now, since)}</td><td class='muted'>{last}</td></tr>"
            )
    noted = f"since {timeline.clock(since)}" if since is not None else "nothing noted yet"
    return (
        f"<section><h2>State changes <span class='muted'>per endpoint, as this server saw them ({noted}; "
        f"the last few kept)</span></h2><table><tr><th>Cluster</th><th>Endpoint</th><th>Now</th>"
        f"<th>For</th><th>History</th><th>Latest changes</th></tr>{''.join(rows)}</table></section>"
    )
