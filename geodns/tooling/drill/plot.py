"""``geodns drill --plot FILE.svg``: the answer timeline as a picture.

One lane per client; each sample is a thin bar in the colour of the cluster it
was answered with (grey for an answer naming no known cluster, red with a cross
for a failed query); the fault window is shaded and its edges are marked, and
the detection window after the fault is hatched, so a late move shows at a
glance.  A standalone SVG written here: no scripts, fonts or assets from elsewhere.
"""

from __future__ import annotations

from html import escape

from .report import Report

PALETTE = ("#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#bcbd22")
FAILED, OTHER = "#d62728", "#9e9e9e"
LEFT, RIGHT, TOP, LANE, GAP = 70, 20, 40, 26, 10


def _ticks(end: float) -> list[float]:
    step = next(s for s in (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600) if end / s <= 12)
    return [i * step for i in range(int(end // step) + 1)]


def svg(report: Report, width: int = 900) -> str:
    """The report's samples as an SVG document (a string)."""
    clusters = list(report.series_clusters)
    colour = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(clusters)}
    end = max(report.duration_s, report.recover_s, 1.0)
    plot_w = width - LEFT - RIGHT
    lanes = len(report.series)
    height = TOP + lanes * (LANE + GAP) + 70

    def x(t: float) -> float:
        return LEFT + plot_w * min(max(t, 0.0), end) / end

    bar = max(1.0, plot_w / max(1, max((len(s) for s in report.series.values()), default=1)) * 0.8)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        '<defs><pattern id="window" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="3" height="6" fill="#f4c7c3"/></pattern></defs>',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="{LEFT}" y="20" font-size="14" font-weight="bold">'
        f"{escape(f'drill {report.scenario}: {report.record}')} "
        f"{'PASS' if report.passed else 'FAIL'}</text>",
    ]
    lanes_top, lanes_bottom = TOP, TOP + lanes * (LANE + GAP) - GAP
    fault, recover = x(report.fault_s), x(report.recover_s)
    window_end = x(min(report.fault_s + report.window_s, report.recover_s))
    out.append(
        f'<rect class="fault" x="{fault:.1f}" y="{lanes_top - 4}" width="{recover - fault:.1f}" '
        f'height="{lanes_bottom - lanes_top + 8}" fill="#fdecea"/>'
    )
    out.append(
        f'<rect class="window" x="{fault:.1f}" y="{lanes_top - 4}" width="{window_end - fault:.1f}" '
        f'height="{lanes_bottom - lanes_top + 8}" fill="url(#window)" opacity="0.6"/>'
    )
    for i, (client, points) in enumerate(report.series.items()):
        y = TOP + i * (LANE + GAP)
        out.append(f'<text x="{LEFT - 8}" y="{y + LANE / 2 + 4}" text-anchor="end">{escape(client)}</text>')
        out.append(f'<rect x="{LEFT}" y="{y}" width="{plot_w}" height="{LANE}" fill="none" stroke="#ddd"/>')
        for t, label in points:
            left = x(t) - bar / 2
            if label == "failed":
                out.append(
                    f'<g class="failed"><rect x="{left:.1f}" y="{y}" width="{bar:.1f}" height="{LANE}" '
                    f'fill="{FAILED}"/><path d="M{left:.1f},{y} l{bar:.1f},{LANE} M{left + bar:.1f},{y} '
                    f'l{-bar:.1f},{LANE}" stroke="white" stroke-width="0.6"/></g>'
                )
            else:
                fill = colour.get(label, OTHER)
                out.append(
                    f'<rect class="sample" data-cluster="{escape(label)}" x="{left:.1f}" y="{y + 3}" '
                    f'width="{bar:.1f}" height="{LANE - 6}" fill="{fill}"/>'
                )
    for t, label in ((report.fault_s, "fault"), (report.recover_s, "recovery")):
        out.append(
            f'<line x1="{x(t):.1f}" y1="{lanes_top - 8}" x2="{x(t):.1f}" y2="{lanes_bottom + 4}" '
            f'stroke="#b00020" stroke-width="1.5"/>'
        )
        out.append(f'<text x="{x(t):.1f}" y="{lanes_top - 12}" text-anchor="middle" fill="#b00020">{label}</text>')
    axis = lanes_bottom + 10
    out.append(f'<line x1="{LEFT}" y1="{axis}" x2="{LEFT + plot_w}" y2="{axis}" stroke="#444"/>')
    for t in _ticks(end):
        out.append(f'<line x1="{x(t):.1f}" y1="{axis}" x2="{x(t):.1f}" y2="{axis + 4}" stroke="#444"/>')
        out.append(f'<text x="{x(t):.1f}" y="{axis + 16}" text-anchor="middle">{t:g}s</text>')
    legend = [(name, colour[name]) for name in clusters] + [("other answer", OTHER), ("failed query", FAILED)]
    lx, ly = LEFT, axis + 36
    for name, fill in legend:
        out.append(f'<rect x="{lx}" y="{ly - 10}" width="12" height="12" fill="{fill}"/>')
        out.append(f'<text class="legend" x="{lx + 16}" y="{ly}">{escape(name)}</text>')
        lx += 28 + 7 * len(name)
    out.append(
        f'<rect x="{lx}" y="{ly - 10}" width="12" height="12" fill="url(#window)"/>'
        f'<text class="legend" x="{lx + 16}" y="{ly}">detection window ({report.window_s:g}s)</text>'
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"
