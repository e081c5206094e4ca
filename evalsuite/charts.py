"""Inline SVG charts shared by ``report.html`` and the app: no scripts, no files, no fonts.

Every chart is a plain ``<svg>`` string, so the same picture prints in the report and shows
in a ``gr.HTML`` block of the app. Values come with their 95% CI where there is one.
"""

from __future__ import annotations

import html
from typing import Any

from evalsuite.gates import EVIDENCE, FAILS, NO_INTERVAL, POINT_ONLY
from evalsuite.verdict import num

PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#ff9da6",
           "#9d755d")
WIDTH = 560


def _label(v: float) -> str:
    return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"


def _open(title: str, height: int) -> list[str]:
    return [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
            f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{html.escape(title)}" '
            'font-family="system-ui,sans-serif">',
            f'<text x="4" y="16" font-size="13" font-weight="bold">{html.escape(title)}</text>']


def _whisker(x_lo: float, x_hi: float, y: float, h: float) -> list[str]:
    ym = y + h / 2
    out = [f'<line class="ci" x1="{x_lo:.1f}" x2="{x_hi:.1f}" y1="{ym}" y2="{ym}" '
           'stroke="#222" stroke-width="1.5"/>']
    for e in (x_lo, x_hi):
        out.append(f'<line x1="{e:.1f}" x2="{e:.1f}" y1="{y + 2}" y2="{y + h - 2}" '
                   'stroke="#222" stroke-width="1.5"/>')
    return out


def metric_chart(title: str, items: list[tuple[str, dict[str, Any]]],
                 points: bool = False) -> str:
    """Horizontal bars with CI whiskers, one per model.

    ``items = [(name, {value, ci_low, ci_high})]``. Values within [0, 1] get a fixed 0..1
    axis, so charts compare at a glance. ``points``: a dot per model on an axis fitted to the
    intervals (ratings such as Bradley-Terry/Elo, where a bar from 0 hides the differences).
    """
    vals = [v for _, m in items for k in ("value", "ci_low", "ci_high")
            if (v := num(m.get(k))) is not None]
    if not vals:
        return ""
    lo, hi = min(0.0, min(vals)), max(vals)
    if points:
        pad = max((max(vals) - min(vals)) * 0.1, 1.0)
        lo, hi = min(vals) - pad, max(vals) + pad
    if hi - lo < 1e-9:
        hi = lo + 1.0
    if 0 <= min(vals) and max(vals) <= 1 and not points:
        lo, hi = 0.0, 1.0
    left, bar_h, gap = 150, 18, 8
    height = 30 + len(items) * (bar_h + gap) + 20
    plot_w = WIDTH - left - 56  # room on the right for the value label

    def x(v: float) -> float:
        return left + (v - lo) / (hi - lo) * plot_w

    parts = _open(title, height)
    for i, (name, m) in enumerate(items):
        y = 30 + i * (bar_h + gap)
        parts.append(f'<text x="{left - 6}" y="{y + 13}" font-size="12" '
                     f'text-anchor="end">{html.escape(name)}</text>')
        v, a, b = num(m.get("value")), num(m.get("ci_low")), num(m.get("ci_high"))
        if v is not None and points:
            parts.append(f'<circle cx="{x(v):.1f}" cy="{y + bar_h / 2}" r="5" '
                         f'fill="{PALETTE[i % len(PALETTE)]}"/>')
            label_x = max(x(v), x(b) if b is not None else x(v)) + 8
            parts.append(f'<text x="{label_x:.1f}" y="{y + 13}" font-size="11">'
                         f'{_label(v)}</text>')
        elif v is not None:
            x0, x1 = sorted((x(0.0 if lo <= 0 else lo), x(v)))
            parts.append(f'<rect x="{x0:.1f}" y="{y}" width="{max(x1 - x0, 1):.1f}" '
                         f'height="{bar_h}" fill="{PALETTE[i % len(PALETTE)]}" opacity="0.8"/>')
            label_x = max(x1, x(b) if b is not None else x1) + 4
            parts.append(f'<text x="{label_x:.1f}" y="{y + 13}" font-size="11">'
                         f'{_label(v)}</text>')
        if a is not None and b is not None:
            parts += _whisker(x(a), x(b), y, bar_h)
    axis_y = height - 16
    parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{axis_y}" y2="{axis_y}" '
                 'stroke="#999"/>')

    def tick(t: float) -> str:
        return f"{t:.2f}" if abs(hi) < 10 else f"{t:.0f}"

    for t in (lo, (lo + hi) / 2, hi):
        parts.append(f'<text x="{x(t):.1f}" y="{axis_y + 13}" font-size="10" '
                     f'text-anchor="middle">{tick(t)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def loss_curves(title: str, curves: dict[str, list[list[float]]]) -> str:
    """Line chart of ``{series: [[step, value], ...]}`` (train / held-out loss of a run)."""
    pts = [p for c in curves.values() for p in c]
    if not pts:
        return ""
    height, left, bottom = 260, 50, 30
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    y0, y1 = min(p[1] for p in pts), max(p[1] for p in pts)
    x1 = x1 if x1 > x0 else x0 + 1
    y1 = y1 if y1 > y0 else y0 + 1

    def sx(v: float) -> float:
        return left + (v - x0) / (x1 - x0) * (WIDTH - left - 110)

    def sy(v: float) -> float:
        return 24 + (1 - (v - y0) / (y1 - y0)) * (height - bottom - 24)

    parts = _open(title, height) + [
        f'<line x1="{left}" x2="{left}" y1="24" y2="{height - bottom}" stroke="#999"/>',
        f'<line x1="{left}" x2="{WIDTH - 110}" y1="{height - bottom}" '
        f'y2="{height - bottom}" stroke="#999"/>',
        f'<text x="{left - 4}" y="30" font-size="10" text-anchor="end">{y1:.2f}</text>',
        f'<text x="{left - 4}" y="{height - bottom}" font-size="10" '
        f'text-anchor="end">{y0:.2f}</text>',
        f'<text x="{left}" y="{height - 10}" font-size="10">step {x0:g}</text>',
        f'<text x="{WIDTH - 110}" y="{height - 10}" font-size="10" '
        f'text-anchor="end">step {x1:g}</text>']
    for i, (name, c) in enumerate(curves.items()):
        if not c:
            continue
        color = PALETTE[i % len(PALETTE)]
        path = " ".join(f"{sx(a):.1f},{sy(b):.1f}" for a, b in c)
        parts.append(f'<polyline class="curve" fill="none" stroke="{color}" stroke-width="2" '
                     f'points="{path}"/>')
        parts.append(f'<text x="{WIDTH - 104}" y="{34 + 16 * i}" font-size="11" '
                     f'fill="{color}">{html.escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def group_bars(title: str, data: dict[str, dict[str, dict[str, Any]]]) -> str:
    """Grouped bars per model, one colour per group, CI whiskers where given.

    ``data[model][group] = {value, ci_low, ci_high}`` (or ``{value, ci: [lo, hi]}``).
    """
    groups = sorted({g for per in data.values() for g in per})
    if not groups:
        return ""
    left, bar_h = 150, 14
    block = bar_h * len(groups) + 10
    height = 30 + block * len(data) + 20 + 16 * len(groups)
    plot_w = WIDTH - left - 60
    values = [num(v.get("value")) for per in data.values() for v in per.values()]
    highs = [num(_ci(v)[1]) for per in data.values() for v in per.values()]
    top = max([1.0, *(v for v in values + highs if v is not None)])
    parts = _open(title, height)
    for i, (model, per) in enumerate(data.items()):
        y = 30 + i * block
        parts.append(f'<text x="{left - 6}" y="{y + bar_h}" font-size="12" '
                     f'text-anchor="end">{html.escape(model)}</text>')
        for k, g in enumerate(groups):
            summary = per.get(g, {})
            v = num(summary.get("value"))
            if v is None:
                continue
            yk = y + k * bar_h
            w = max(v / top, 0.0) * plot_w
            parts.append(f'<rect class="group-bar" x="{left}" y="{yk}" width="{w:.1f}" '
                         f'height="{bar_h - 2}" fill="{PALETTE[k % len(PALETTE)]}"/>')
            a, b = (num(c) for c in _ci(summary))
            if a is not None and b is not None:
                parts += _whisker(left + a / top * plot_w, left + b / top * plot_w, yk,
                                  bar_h - 2)
            label_x = left + max(w, (b or 0) / top * plot_w) + 4
            parts.append(f'<text x="{label_x:.1f}" y="{yk + bar_h - 3}" font-size="10">'
                         f'{_label(v)}</text>')
    ly = 30 + block * len(data) + 10
    for k, g in enumerate(groups):
        parts.append(f'<rect x="{left}" y="{ly + 16 * k}" width="10" height="10" '
                     f'fill="{PALETTE[k % len(PALETTE)]}"/>')
        parts.append(f'<text x="{left + 14}" y="{ly + 16 * k + 9}" font-size="11">'
                     f'{html.escape(g)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _ci(summary: dict[str, Any]) -> tuple[Any, Any]:
    ci = summary.get("ci")
    if isinstance(ci, list | tuple) and len(ci) == 2:
        return ci[0], ci[1]
    return summary.get("ci_low"), summary.get("ci_high")


STATE_COLOURS = {EVIDENCE: "#2a7a2a", POINT_ONLY: "#a66300", NO_INTERVAL: "#4c78a8",
                 FAILS: "#b00"}
"""Gate states (``evalsuite.gates.STATUSES``) as marker colours."""


def gate_chart(gate: str, threshold: float, items: list[tuple[str, dict[str, Any]]]) -> str:
    """One gate across models: the point (dot), its 95% interval, the bound read, the gate.

    ``items = [(model, {value, lower, upper, bound, status})]``: ``bound`` is the companion
    the gate was read against (a triangle), ``status`` colours the dot; the gate's threshold
    is a dashed line. Values within [0, 1] get a fixed 0..1 axis.
    """
    vals = [v for _, m in items for k in ("value", "lower", "upper", "bound")
            if (v := num(m.get(k))) is not None] + [threshold]
    if len(vals) == 1:
        return ""
    lo, hi = min(vals), max(vals)
    if 0 <= lo and hi <= 1:
        lo, hi = 0.0, 1.0
    elif hi - lo < 1e-9:
        lo, hi = lo - 1.0, hi + 1.0
    left, row_h = 150, 26
    height = 40 + len(items) * row_h + 34
    plot_w = WIDTH - left - 70

    def x(v: float) -> float:
        return left + (v - lo) / (hi - lo) * plot_w

    parts = _open(f"gate: {gate}", height)
    tx = x(threshold)
    parts.append(f'<line class="threshold" x1="{tx:.1f}" x2="{tx:.1f}" y1="24" '
                 f'y2="{height - 30}" stroke="#b00" stroke-dasharray="4 3"/>')
    for i, (name, m) in enumerate(items):
        y = 34 + i * row_h
        parts.append(f'<text x="{left - 6}" y="{y + 13}" font-size="12" '
                     f'text-anchor="end">{html.escape(name)}</text>')
        a, b = num(m.get("lower")), num(m.get("upper"))
        if a is not None and b is not None:
            parts += _whisker(x(a), x(b), y, 18)
        bound = num(m.get("bound"))
        if bound is not None:
            bx = x(bound)
            parts.append(f'<path class="bound" d="M{bx:.1f},{y + 1} l-5,-7 h10 z" '
                         f'fill="#222"><title>bound read by the gate: {_label(bound)}'
                         '</title></path>')
        v = num(m.get("value"))
        colour = STATE_COLOURS.get(str(m.get("status")), "#777")
        if v is not None:
            parts.append(f'<circle class="point" cx="{x(v):.1f}" cy="{y + 9}" r="5" '
                         f'fill="{colour}"/>')
        parts.append(f'<text x="{left + plot_w + 6}" y="{y + 13}" font-size="10" '
                     f'fill="{colour}">{html.escape(_state_short(m.get("status")))}</text>')
    axis_y = height - 26
    parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{axis_y}" y2="{axis_y}" '
                 'stroke="#999"/>')
    for t in (lo, (lo + hi) / 2, hi):
        parts.append(f'<text x="{x(t):.1f}" y="{axis_y + 13}" font-size="10" '
                     f'text-anchor="middle">{_label(t)}</text>')
    parts.append(f'<text x="{left}" y="{height - 2}" font-size="10">dot: estimate; bar: 95% '
                 'interval; triangle: the bound the gate reads; dashed: the gate</text>')
    parts.append("</svg>")
    return "".join(parts)


def _state_short(status: Any) -> str:
    return {EVIDENCE: "evidence", POINT_ONLY: "point only", NO_INTERVAL: "no interval",
            FAILS: "fails"}.get(str(status), "")
