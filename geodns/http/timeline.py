"""An endpoint's recent states as a small inline SVG strip, and durations in words.

Drawn by the server (no scripts, no external assets): one coloured segment
per state from the history's transitions (``gslb/history.py``), oldest on the
left (when the server began noting, or the oldest change kept), now at the
right edge; each segment has a ``<title>`` (hover) with its state, start and
length.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from html import escape

from .traffic_map import RING, STATE_CLASS

WIDTH, HEIGHT = 220, 14
MIN_WINDOW = 10.0  # seconds: a strip never spans less


def duration(seconds: float) -> str:
    """3s, 4m 05s, 2h 03m, 3d 04h: two units at most."""
    s = int(max(0.0, seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600:02d}h"


def clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at))


def strip(transitions: Sequence[tuple[float, str]], now: float, since: float | None) -> str:
    """The SVG for one endpoint; ``since``: when the server began noting (nothing is known before)."""
    if not transitions:
        return '<span class="muted">no history</span>'
    start = min(transitions[0][0], since if since is not None else now, now - MIN_WINDOW)
    span = max(now - start, 1e-9)
    out = [
        f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="state changes">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#e8eaed" rx="2"/>',
    ]
    for i, (at, state) in enumerate(transitions):
        end = transitions[i + 1][0] if i + 1 < len(transitions) else now
        x0 = (at - start) / span * WIDTH
        x1 = (end - start) / span * WIDTH
        width = max(x1 - x0, 2.0)  # a flap shorter than a pixel still shows
        first = i == 0 and since is not None and at <= since
        label = f"{state} from {'at least ' if first else ''}{clock(at)} for {duration(end - at)}"
        out.append(
            f'<rect x="{x0:.1f}" y="1" width="{width:.1f}" height="{HEIGHT - 2}" '
            f'fill="{RING.get(STATE_CLASS.get(state, ""), "#9aa0a6")}"><title>{escape(label)}</title></rect>'
        )
        if i:
            out.append(f'<line x1="{x0:.1f}" x2="{x0:.1f}" y1="0" y2="{HEIGHT}" stroke="#1d2330" stroke-width="1"/>')
    out.append("</svg>")
    return "".join(out)


def current(transitions: Sequence[tuple[float, str]], now: float, since: float | None) -> str:
    """'down for 3m 05s (since 12:01:02)'; 'at least' when it has not changed since the server began noting."""
    if not transitions:
        return ""
    at, state = transitions[-1]
    least = "at least " if len(transitions) == 1 and since is not None and at <= since else ""
    return f"{state} for {least}{duration(now - at)} (since {clock(at)})"
