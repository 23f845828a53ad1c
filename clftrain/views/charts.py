"""Small inline SVG charts of the unit square for the report: ROC, precision-recall and reliability curves.

All three live on [0, 1] x [0, 1], so they need no plotting library: axes, a grid, ticks at every 0.2, a
polyline per curve and a legend, written as SVG elements straight into the page (crisp at any zoom, nothing
to load, and no matplotlib figure to render at the end of every fit: the three cost well under a
millisecond). Plain data in (lists of floats), text out.
"""

from __future__ import annotations

import html
import math

COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf"]  # matplotlib's tab10: the colours of the run's other figures
WIDTH, HEIGHT = 400, 390
LEFT, RIGHT, TOP, BOTTOM = 54, 50, 30, 46
MAX_CURVES = 10  # drawn with a legend entry each; the page says when there are more


def _x(value: float) -> float:
    return LEFT + value * (WIDTH - LEFT - RIGHT)


def _y(value: float) -> float:
    return HEIGHT - BOTTOM - value * (HEIGHT - TOP - BOTTOM)


def _esc(text) -> str:
    return html.escape(str(text), quote=True)


def _points(xs: list, ys: list, step: bool = False) -> str:
    pairs = [(x, y) for x, y in zip(xs, ys) if x is not None and y is not None and math.isfinite(x) and math.isfinite(y)]
    if step:  # each value holds until the next x, as matplotlib's drawstyle="steps-post"
        pairs = [p for (x0, y0), (x1, _) in zip(pairs, pairs[1:] + pairs[-1:]) for p in ((x0, y0), (x1, y0))]
    return " ".join(f"{_x(min(max(x, 0), 1)):.1f},{_y(min(max(y, 0), 1)):.1f}" for x, y in pairs)


def unit_chart(title: str, x_label: str, y_label: str, series: list[dict], legend: str = "lower right",
               bars: dict | None = None) -> str:
    """One chart. `series`: {label, xs, ys, colour?, dash?, step?, dots?}; `bars`: {centres, widths, counts,
    label}: drawn in the lower third, scaled to the largest count (named on the right axis)."""
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
             f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{_esc(title)}" '
             'font-family="system-ui, sans-serif" font-size="12">',
             f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#fff"/>']
    for tick in (0, 0.2, 0.4, 0.6, 0.8, 1.0):
        parts.append(f'<line x1="{_x(tick):.1f}" y1="{_y(0):.1f}" x2="{_x(tick):.1f}" y2="{_y(1):.1f}" '
                     'stroke="#e3e6ea"/>')
        parts.append(f'<line x1="{_x(0):.1f}" y1="{_y(tick):.1f}" x2="{_x(1):.1f}" y2="{_y(tick):.1f}" '
                     'stroke="#e3e6ea"/>')
        parts.append(f'<text x="{_x(tick):.1f}" y="{_y(0) + 16:.1f}" text-anchor="middle" fill="#333">{tick:.1f}</text>')
        parts.append(f'<text x="{_x(0) - 6:.1f}" y="{_y(tick) + 4:.1f}" text-anchor="end" fill="#333">{tick:.1f}</text>')
    if bars is not None and bars["counts"] and max(bars["counts"]) > 0:
        top = max(bars["counts"])
        third = (HEIGHT - TOP - BOTTOM) / 3
        for centre, width, count in zip(bars["centres"], bars["widths"], bars["counts"]):
            h = count / top * third
            parts.append(f'<rect x="{_x(centre - width * 0.45):.1f}" y="{_y(0) - h:.1f}" '
                         f'width="{width * 0.9 * (WIDTH - LEFT - RIGHT):.1f}" height="{h:.1f}" fill="#7f7f7f" '
                         f'fill-opacity="0.25"><title>{count:,} rows</title></rect>')
        parts.append(f'<text x="{_x(1) + 6:.1f}" y="{_y(0) - third + 4:.1f}" fill="#666">{top:,}</text>')
        parts.append(f'<text x="{_x(1) + 6:.1f}" y="{_y(0) + 4:.1f}" fill="#666">0</text>')
        parts.append(f'<text transform="translate({WIDTH - 8},{_y(0) - third / 2:.1f}) rotate(-90)" '
                     f'text-anchor="middle" fill="#666">{_esc(bars["label"])}</text>')
    parts.append(f'<rect x="{_x(0):.1f}" y="{_y(1):.1f}" width="{_x(1) - _x(0):.1f}" height="{_y(0) - _y(1):.1f}" '
                 'fill="none" stroke="#333"/>')
    for i, line in enumerate(series):
        colour = line.get("colour") or COLOURS[i % len(COLOURS)]
        dash = ' stroke-dasharray="3 3"' if line.get("dash") else ""
        width = 1 if line.get("dash") else 1.8
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="{width}"{dash} '
                     f'points="{_points(line["xs"], line["ys"], line.get("step", False))}"/>')
        if line.get("dots"):
            parts += [f'<circle cx="{_x(x):.1f}" cy="{_y(y):.1f}" r="3" fill="{colour}"/>'
                      for x, y in zip(line["xs"], line["ys"]) if x is not None and y is not None
                      and math.isfinite(x) and math.isfinite(y)]
    parts.append(f'<text x="{(_x(0) + _x(1)) / 2:.1f}" y="18" text-anchor="middle" font-weight="600" '
                 f'font-size="14">{_esc(title)}</text>')
    parts.append(f'<text x="{(_x(0) + _x(1)) / 2:.1f}" y="{HEIGHT - 10}" text-anchor="middle">{_esc(x_label)}</text>')
    parts.append(f'<text transform="translate(14,{(_y(0) + _y(1)) / 2:.1f}) rotate(-90)" '
                 f'text-anchor="middle">{_esc(y_label)}</text>')
    parts.append(_legend(series, legend))
    parts.append("</svg>")
    return "".join(parts)


def _legend(series: list[dict], where: str) -> str:
    entries = [(line.get("colour") or COLOURS[i % len(COLOURS)], line.get("dash"), line["label"])
               for i, line in enumerate(series)]
    if not entries:
        return ""
    row, width = 15, min(230, 28 + 6.4 * max(len(label) for _, _, label in entries))
    height = row * len(entries) + 8
    x = _x(1) - width - 6 if where.endswith("right") else _x(0) + 6
    y = _y(0) - height - 6 if where.startswith("lower") else _y(1) + 6
    parts = [f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{height}" fill="#fff" fill-opacity="0.85" '
             'stroke="#ccc"/>']
    for i, (colour, dash, label) in enumerate(entries):
        cy = y + 4 + row * i + row / 2
        style = ' stroke-dasharray="3 3"' if dash else ""
        parts.append(f'<line x1="{x + 6:.1f}" y1="{cy:.1f}" x2="{x + 22:.1f}" y2="{cy:.1f}" stroke="{colour}" '
                     f'stroke-width="2"{style}/>')
        parts.append(f'<text x="{x + 26:.1f}" y="{cy + 4:.1f}" font-size="11">{_esc(label)}</text>')
    return "".join(parts)


def _score(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def ranking_charts(curves: list[dict], calibration: dict) -> str:
    """ROC, precision-recall and reliability side by side, as the report shows them (MAX_CURVES curves at most)."""
    shown = curves[:MAX_CURVES]
    roc = [{"label": f"{c['label']} (AUC {_score(c['auc'])})", "xs": c["fpr"], "ys": c["tpr"]} for c in shown]
    roc.append({"label": "chance", "xs": [0, 1], "ys": [0, 1], "colour": "#999", "dash": True})
    pr = [{"label": f"{c['label']} (AP {_score(c['ap'])})", "xs": c["recall"], "ys": c["precision"], "step": True}
          for c in shown]
    if len(shown) == 1:
        level = shown[0]["prevalence"]
        pr.append({"label": f"chance ({level:.2f})", "xs": [0, 1], "ys": [level, level], "colour": "#999",
                   "dash": True})
    edges = calibration["edges"]
    observed = {"label": f"model (ECE {calibration['ece']:.3f})", "xs": calibration["predicted"],
                "ys": calibration["observed"], "colour": "#d62728", "dots": True}
    diagonal = {"label": "perfectly calibrated", "xs": [0, 1], "ys": [0, 1], "colour": "#999", "dash": True}
    bars = {"centres": [(a + b) / 2 for a, b in zip(edges, edges[1:])], "widths": [b - a for a, b in zip(edges, edges[1:])],
            "counts": calibration["counts"], "label": "rows per bin"}
    return (unit_chart("ROC", "false positive rate", "true positive rate", roc)
            + unit_chart("Precision-recall", "recall", "precision", pr, legend="lower left")
            + unit_chart("Reliability (calibration)", f"mean predicted {calibration['what']}",
                         calibration["observed_label"], [diagonal, observed], legend="upper left", bars=bars))
