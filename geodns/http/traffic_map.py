"""The status page's map of one GSLB record: each cluster at its region, a line from every place to where it goes.

Inline SVG on ``worldmap``'s canvas.  Clusters of one region sit side by side;
their labels are placed so that none covers another or a marker
(``worldmap.place_labels``), with a leader line when a label had to move away.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

from ..config.model import Region
from . import worldmap

MAP_WIDTH = 680  # on screen; the SVG scales from worldmap's canvas
RING = {"ok": "#1e8e3e", "warn": "#e37400", "bad": "#c5221f"}
STATE_CLASS = {"up": "ok", "forced-up": "ok", "unknown": "warn", "drained": "warn", "down": "bad", "forced-down": "bad"}
FONT = 16
CHAR_W = 0.6 * FONT  # a bold sans-serif character, generously: a label's box is never too small
MARKER_GAP = 26  # between the markers of clusters in one region (radius 11 + ring)


def anchors(clusters: list[dict[str, Any]], regions: Mapping[str, Region]) -> dict[str, tuple[float, float]]:
    """Cluster name -> marker position: at its region, clusters of one region side by side."""
    by_region: dict[str, list[str]] = {}
    for cluster in clusters:
        if cluster["region"] in regions:
            by_region.setdefault(cluster["region"], []).append(cluster["name"])
    out: dict[str, tuple[float, float]] = {}
    for region_name, names in sorted(by_region.items()):
        region = regions[region_name]
        x, y = worldmap.project(region.lat, region.lon)
        for i, name in enumerate(sorted(names)):
            out[name] = (round(x + MARKER_GAP * (i - (len(names) - 1) / 2), 1), y)
    return out


def label_text(name: str, state: str) -> str:
    return name if state == "up" else f"{name} ({state})"


def draw(
    record: dict[str, Any], clusters: list[dict[str, Any]], regions: Mapping[str, Region], colors: dict[str, str]
) -> str:
    """Land, each cluster at its region, and a line from every place to where its A answers go."""
    w, h = worldmap.WIDTH, worldmap.HEIGHT
    out = [
        f'<svg class="map" xmlns="http://www.w3.org/2000/svg" width="{MAP_WIDTH}" '
        f'height="{round(MAP_WIDTH * h / w)}" viewBox="0 0 {w} {h}" '
        f'role="img" aria-label="where traffic for {escape(record["record"])} goes">',
        f'<rect width="{w}" height="{h}" fill="#dbe8f4"/>',
        f'<path d="{worldmap.graticule()}" stroke="#c4d6e8" stroke-width="1" fill="none"/>',
        f'<path d="{worldmap.land_paths()}" fill="#f3f1ea" stroke="#c9c5b8" stroke-width="1"/>',
    ]
    anchor = anchors(clusters, regions)
    for place in record["places"]:
        px, py = worldmap.project(place["lat"], place["lon"])
        for cluster, share in place["shares"].items():
            if cluster not in anchor:
                continue
            cx, cy = anchor[cluster]
            mx, my = (px + cx) / 2, (py + cy) / 2 - min(60.0, abs(px - cx) / 5 + 8)
            dash = "" if share >= 0.999 else ' stroke-dasharray="5 4"'
            out.append(
                f'<path d="M{px},{py} Q{mx:.1f},{my:.1f} {cx},{cy}" fill="none" stroke="{colors[cluster]}" '
                f'stroke-width="{1 + 2.5 * share:.1f}" stroke-opacity="0.8"{dash}/>'
            )
        color = colors.get(place["primary"], "#555")
        out.append(
            f'<circle cx="{px}" cy="{py}" r="5" fill="{color}" stroke="#fff" stroke-width="1.5">'
            f"<title>{escape(place['place'])}</title></circle>"
        )
    states = {c["name"]: c["state"] for c in clusters}
    names = sorted(anchor, key=lambda n: (anchor[n][0], anchor[n][1]))
    texts = [label_text(n, states[n]) for n in names]
    boxes = worldmap.place_labels(
        [(*anchor[n], CHAR_W * len(t) + 6, FONT + 4) for n, t in zip(names, texts)],
        [(x - 13, y - 13, 26, 26) for x, y in anchor.values()],
        w,
        h,
    )
    for name in names:
        x, y = anchor[name]
        ring = RING.get(STATE_CLASS.get(states[name], ""), "#555")
        out.append(
            f'<circle cx="{x}" cy="{y}" r="11" fill="{colors[name]}" stroke="{ring}" stroke-width="4">'
            f"<title>{escape(name)}: {escape(states[name])}</title></circle>"
        )
    for name, text, (bx, by, bw, bh) in zip(names, texts, boxes):
        x, y = anchor[name]
        near_x = min(max(x, bx), bx + bw)
        near_y = min(max(y, by), by + bh)
        if abs(near_x - x) > 18 or abs(near_y - y) > 18:  # moved away: a leader line says whose it is
            out.append(
                f'<line x1="{x}" y1="{y}" x2="{near_x:.1f}" y2="{near_y:.1f}" stroke="#1d2330" stroke-width="1.2"/>'
            )
        out.append(
            f'<text class="label" x="{bx + 3:.1f}" y="{by + FONT:.1f}" font-size="{FONT}" font-weight="700" '
            f'fill="#1d2330" stroke="#fff" stroke-width="3" paint-order="stroke">{escape(text)}</text>'
        )
    out.append("</svg>")
    return "".join(out)
