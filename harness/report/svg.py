"""Small inline SVG charts for the results page (no matplotlib: the page is rebuilt after
every run, so it must be cheap). Coordinates are in SVG user units (px)."""

from __future__ import annotations

import html
import math
import time
from collections.abc import Sequence

from harness.published.table import FAMILY_COLOURS, RUN_COLOUR, Published
from harness.report.runs import RunRecord

SERIES_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2",
                  "#17becf", "#bcbd22", "#7f7f7f", "#d62728")
WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 640, 250, 70, 16, 14, 40


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high]."""
    if high <= low:
        return [low]
    step = 10 ** math.floor(math.log10((high - low) / count))
    for factor in (1, 2, 5, 10):
        if (high - low) / (step * factor) <= count:
            step *= factor
            break
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step) + 1)]


def _number(value: float) -> str:
    """An axis label: ``120,000``, ``12.5``, ``0.25``."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def series_key(run: RunRecord) -> str:
    """Runs of one series share system, backend and model (and sweep)."""
    return " / ".join(x for x in (run.system, run.backend, run.model, run.sweep) if x)


def time_chart(scenario: str, runs: Sequence[RunRecord], unit: str) -> str:
    """The metric of every run of ``scenario`` over time: one line per series, VALID filled,
    INVALID hollow; each point carries the run's filter attributes."""
    points = sorted((r for r in runs if r.scenario == scenario and r.metric is not None),
                    key=lambda r: r.timestamp)
    if not points:
        return ""
    t0, t1 = points[0].timestamp, points[-1].timestamp
    if t1 - t0 < 60:
        t0, t1 = t0 - 1800, t1 + 1800
    top = max(r.metric for r in points) * 1.1 or 1.0  # type: ignore[type-var]
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(t: float) -> float:
        return LEFT + (t - t0) / (t1 - t0) * inner_w

    def y(v: float) -> float:
        return TOP + inner_h - v / top * inner_h

    parts = [f'<svg class="chart" data-scenario="{_e(scenario)}" width="{WIDTH}" '
             f'height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
             f'aria-label="{_e(scenario)} {_e(unit)} over time">']
    for tick in _ticks(0, top):
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(tick):.1f}" '
                     f'y2="{y(tick):.1f}" class="grid"/><text x="{LEFT - 6}" '
                     f'y="{y(tick) + 4:.1f}" text-anchor="end">{_number(tick)}</text>')
    for t, anchor in ((t0, "start"), ((t0 + t1) / 2, "middle"), (t1, "end")):
        label = time.strftime("%Y-%m-%d %H:%M", time.localtime(t))
        parts.append(f'<text x="{x(t):.1f}" y="{HEIGHT - 22}" text-anchor="{anchor}">'
                     f"{label}</text>")
    parts.append(f'<text x="{LEFT}" y="{HEIGHT - 4}">{_e(unit)} '
                 f'({"lower" if unit == "ms" else "higher"} is better) over time</text>')
    keys = sorted({series_key(r) for r in points})
    for index, key in enumerate(keys):
        colour = SERIES_COLOURS[index % len(SERIES_COLOURS)]
        mine = [r for r in points if series_key(r) == key]
        if len(mine) > 1:
            coords = " ".join(f"{x(r.timestamp):.1f},{y(r.metric):.1f}" for r in mine)
            parts.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" '
                         'stroke-width="1.2"/>')
        for r in mine:
            fill = colour if r.valid else "white"
            parts.append(
                f'<circle class="pt" cx="{x(r.timestamp):.1f}" cy="{y(r.metric):.1f}" r="4" '
                f'fill="{fill}" stroke="{colour}" stroke-width="1.5" '
                f'data-scenario="{_e(r.scenario)}" data-backend="{_e(r.backend)}" '
                f'data-model="{_e(r.model)}"><title>{_e(r.created)} {_e(key)}: '
                f'{r.metric:,.4g} {_e(unit)} {"VALID" if r.valid else "INVALID"}'
                f"</title></circle>")
    legend_y = TOP + 10
    for index, key in enumerate(keys[:6]):
        colour = SERIES_COLOURS[index % len(SERIES_COLOURS)]
        parts.append(f'<text x="{LEFT + 8}" y="{legend_y + 13 * index}" fill="{colour}">'
                     f"&#9679; {_e(key)}</text>")
    parts.append("</svg>")
    return "".join(parts)


def strip_chart(rows: Sequence[Published], marks: Sequence[tuple[float, str]]) -> str:
    """Every published result of one scenario on a log axis, coloured by accelerator family,
    and the runs' figures as red marks."""
    values = [r.metric for r in rows] + [v for v, _ in marks]
    values = [v for v in values if v > 0]
    if not values:
        return ""
    width, height, pad = 420, 70, 14
    lo, hi = math.log10(min(values)) - 0.1, math.log10(max(values)) + 0.1

    def x(v: float) -> float:
        return pad + (math.log10(v) - lo) / (hi - lo) * (width - 2 * pad)

    parts = [f'<svg class="strip" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}">']
    parts.append(f'<line x1="{pad}" x2="{width - pad}" y1="30" y2="30" class="grid"/>')
    for decade in range(math.ceil(lo), math.floor(hi) + 1):
        parts.append(f'<text x="{x(10 ** decade):.1f}" y="{height - 4}" '
                     f'text-anchor="middle">{10 ** decade:,g}</text>')
    for r in rows:
        colour = FAMILY_COLOURS.get(r.family, "#bcbd22")
        parts.append(f'<line x1="{x(r.metric):.1f}" x2="{x(r.metric):.1f}" y1="20" y2="40" '
                     f'stroke="{colour}" stroke-width="2"><title>{_e(r.submitter)} '
                     f"{_e(r.system)}: {r.metric:,.4g} {_e(r.unit)}</title></line>")
    for value, label in marks:
        if value > 0:
            parts.append(f'<path d="M{x(value):.1f},44 l-5,9 h10 z" fill="{RUN_COLOUR}">'
                         f"<title>{_e(label)}: {value:,.4g}</title></path>")
    parts.append("</svg>")
    return "".join(parts)
