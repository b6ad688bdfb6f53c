"""A sweep's pictures, as PNG files (matplotlib, no display needed).

* latency against the target and the achieved QPS: p50, p90, p99, the latency bound,
  INVALID points crossed out (:func:`latency_plot`; SingleStream and MultiStream:
  :mod:`harness.sweep.stream_plots`);
* the peak search: every probe's rate in order, VALID or not, and the peak (:func:`peak_plot`);
* throughput against batch size and threads (:func:`throughput_plot`), or against any other
  varied setting (:func:`axis_plot`);
* one point's latency distribution, histogram and CDF (:func:`distribution_plot`);
* a modelled figure against the measured one (:func:`modelled_plot`).

Each function writes one file atomically and returns its path.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from common.files import atomic_path
from harness.sweep.plan import number_text
from harness.sweep.spec import OPTION_PREFIX

Row = dict[str, Any]
VALID_COLOUR = "#2a9d3a"
INVALID_COLOUR = "#d62728"
BOUND_COLOUR = "#444444"
PERCENTILE_STYLES = (("p50_ms", "p50", "#1f77b4"), ("p90_ms", "p90", "#ff7f0e"),
                     ("p99_ms", "p99", "#9467bd"))
DPI = 110
MARKERS = {"p50_ms": "o", "p90_ms": "s", "p99_ms": "^"}
FIGURE_NAMES = {"samples_per_second": ("throughput", "samples/s"), "p50_ms": ("p50 latency", "ms"),
                "p90_ms": ("p90 latency", "ms"), "p99_ms": ("p99 latency", "ms"),
                "mean_ms": ("mean latency", "ms")}


def _save(figure: Figure, path: Path) -> Path:
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=DPI)
    return path


def _name(axis: str) -> str:
    """How a plot names a setting: ``batch size``; options by their own name."""
    if axis.startswith(OPTION_PREFIX):
        return axis[len(OPTION_PREFIX):]
    return axis.replace("_", " ")


def _series(rows: Sequence[Row], x: str, axes: Sequence[str]) -> dict[str, list[Row]]:
    """Rows grouped by the values of every axis but ``x`` (label -> rows, sorted by x)."""
    others = [a for a in axes if a != x]
    groups: dict[str, list[Row]] = {}
    for row in rows:
        label = " ".join(f"{_name(a)}={number_text(row.get(a))}" for a in others) or "all"
        groups.setdefault(label, []).append(row)
    for members in groups.values():
        members.sort(key=lambda r: _sort_key(r.get(x)))
    return groups


def _sort_key(value: Any) -> tuple:
    return (0, value, "") if isinstance(value, (int, float)) else (1, 0, str(value))


def _done(rows: Sequence[Row], *figures: str) -> list[Row]:
    return [r for r in rows if all(r.get(f) is not None for f in figures)]


def _bound(rows: Sequence[Row]) -> float | None:
    bounds = [r["latency_bound_ms"] for r in rows if r.get("latency_bound_ms")]
    return bounds[0] if bounds else None


def latency_plot(rows: Sequence[Row], axes: Sequence[str], path: Path, title: str) -> Path | None:
    """Latency percentiles against the target QPS asked for (when every point has one) and
    against the QPS achieved, the bound, INVALID points crossed out. Past saturation the
    achieved rate stalls while latency climbs, so the target panel stays readable there."""
    rows = _done(rows, "samples_per_second", "p99_ms")
    if not rows:
        return None
    targeted = all(r.get("target_qps") is not None for r in rows)
    xs = ("target_qps", "samples_per_second") if targeted else ("samples_per_second",)
    figure = Figure(figsize=(7.0 * len(xs), 5.2))
    for ax, x in zip(np.atleast_1d(figure.subplots(1, len(xs))), xs, strict=True):
        _latency_panel(ax, rows, axes, x, targeted)
        ax.set_title(f"{title}: against the {'target' if x == 'target_qps' else 'achieved'} "
                     "QPS", fontsize=10)
    return _save(figure, path)


def _latency_panel(ax: Any, rows: Sequence[Row], axes: Sequence[str], x: str,
                   targeted: bool) -> None:
    varied = [a for a in axes if a != "target_qps"]
    # each line follows the load asked for (achieved rates stall past the peak)
    order = "target_qps" if targeted else "samples_per_second"
    groups = _series(rows, order, varied)
    if all(len(members) == 1 for members in groups.values()):  # one run a setting: one line
        groups = {"all": sorted(rows, key=lambda r: r[order])}
    single = len(groups) == 1
    for index, (label, members) in enumerate(groups.items()):
        xs = [r[x] for r in members]
        # past the peak the achieved rate stalls or falls: then the line is only a faint
        # guide through the points in the order of the load asked for
        faint = any(b <= a for a, b in zip(xs, xs[1:], strict=False))
        line = {"alpha": 0.3, "lw": 1} if faint else {"lw": 1.5}
        styles = PERCENTILE_STYLES if single else (("p99_ms", f"p99 {label}", f"C{index % 10}"),)
        for key, name, colour in styles:
            ys = [r[key] for r in members]
            ax.plot(xs, ys, "-", color=colour, **line)
            ax.plot(xs, ys, MARKERS.get(key, "o"), color=colour, label=name, ms=5)
    other = "samples_per_second" if x == "target_qps" else "target_qps"
    for row in rows:  # the other rate of each point (asked or achieved), and its settings
        note = [f"{row[other]:.4g}"] if row.get(other) is not None else []
        if single:
            note += [f"{_name(a)}={number_text(row.get(a))}" for a in varied]
        if note:
            ax.annotate(" ".join(note), (row[x], row["p99_ms"]), textcoords="offset points",
                        xytext=(5, -10), fontsize=7, color="#555555")
    invalid = [r for r in rows if r.get("valid") is False]
    if invalid:
        ax.plot([r[x] for r in invalid], [r["p99_ms"] for r in invalid],
                "x", color=INVALID_COLOUR, ms=11, mew=2.2, label="INVALID run", zorder=5)
    bound = _bound(rows)
    if bound:
        ax.axhline(bound, color=BOUND_COLOUR, ls="--", lw=1.3,
                   label=f"{number_text(bound)} ms bound (p99)")
    values = [r[k] for r in rows for k in ("p50_ms", "p99_ms") if r.get(k)]
    if values and max(values) / max(min(values), 1e-6) > 30:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(
            lambda v, _: f"{v:g}" if f"{v:e}"[0] in "25" else ""))
    grey = ("achieved QPS" if x == "target_qps" else "target QPS") if targeted else ""
    if single and varied:
        grey = " and ".join(part for part in (grey, "settings") if part)
    ax.set_xlabel(("target QPS (the rate LoadGen was asked for)" if x == "target_qps"
                   else "achieved QPS (LoadGen's samples/s)")
                  + (f"; grey: {grey}, at each point's p99" if grey else ""))
    ax.set_ylabel("latency (ms)")
    ax.margins(x=0.12)  # room for the labels of the outermost points
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="best")


def peak_plot(probes: Sequence[Row], peak: float | None, ceiling: float | None,
              tolerance: float, path: Path, title: str) -> Path | None:
    """Each probe's target QPS in the order tried, VALID or INVALID, with its p99; the peak
    and the bracket it was narrowed to."""
    if not probes:
        return None
    figure = Figure(figsize=(8.5, 5.2))
    ax = figure.subplots()
    order = list(range(1, len(probes) + 1))
    rates = [p["qps"] for p in probes]
    ax.plot(order, rates, "-", color="#bbbbbb", zorder=1)
    for index, probe in zip(order, probes, strict=True):
        valid = probe.get("valid")
        ax.plot(index, probe["qps"], "o" if valid else "x", ms=9, mew=2.2, zorder=3,
                color=VALID_COLOUR if valid else INVALID_COLOUR)
        p99 = probe.get("p99_ms")
        note = f"{probe['qps']:.4g}" + (f"\np99 {p99:.0f} ms" if p99 is not None else "")
        ax.annotate(note, (index, probe["qps"]), textcoords="offset points", xytext=(6, 4),
                    fontsize=7)
    if peak is not None:
        ax.axhline(peak, color=VALID_COLOUR, ls="--", lw=1.2,
                   label=f"peak {peak:.4g} QPS (VALID)")
    if peak is not None and ceiling is not None:
        ax.axhspan(peak, ceiling, color=VALID_COLOUR, alpha=0.12,
                   label=f"final bracket {ceiling - peak:.3g} QPS (tolerance {tolerance:g})")
    ax.plot([], [], "o", color=VALID_COLOUR, label="VALID probe")
    ax.plot([], [], "x", color=INVALID_COLOUR, mew=2.2, label="INVALID probe")
    ax.set_xlabel("probe (in the order run)")
    ax.set_ylabel("target QPS")
    ax.set_xticks(order)
    ax.set_xlim(0.5, len(order) + 1.2)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=4)
    return _save(figure, path)


def throughput_plot(rows: Sequence[Row], axes: Sequence[str], path: Path,
                    title: str) -> Path | None:
    """Samples/s against batch size and against threads (one panel each that varies)."""
    rows = _done(rows, "samples_per_second")
    panels = [a for a in ("batch_size", "threads") if a in axes]
    if not rows or not panels:
        return None
    figure = Figure(figsize=(6.2 * len(panels), 4.6))
    best = max(rows, key=lambda r: (bool(r.get("valid")), r["samples_per_second"]))
    for ax, x in zip(np.atleast_1d(figure.subplots(1, len(panels))), panels, strict=True):
        for index, (label, members) in enumerate(_series(rows, x, axes).items()):
            colour = f"C{index % 10}"
            xs = [m[x] for m in members]
            ax.plot(xs, [m["samples_per_second"] for m in members], "o-", color=colour,
                    label=label, ms=5)
            for member in members:
                if member.get("valid") is False:
                    ax.plot(member[x], member["samples_per_second"], "x", ms=10, mew=2,
                            color=INVALID_COLOUR)
        ax.plot(best[x], best["samples_per_second"], "*", ms=16, color="#f2b400",
                mec="black", zorder=5, label=f"best {best['samples_per_second']:.4g}/s")
        if x == "batch_size" and max(r[x] for r in rows) / max(min(r[x] for r in rows), 1) >= 8:
            ax.set_xscale("log", base=2)
        values = sorted({r[x] for r in rows})
        ax.set_xticks(values, [number_text(v) for v in values])
        ax.set_xlabel(_name(x) + (" (0: framework default)" if x == "threads" else ""))
        ax.set_ylabel("samples/s")
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_title(f"{title}: samples/s by {_name(x)}")
    return _save(figure, path)


def axis_plot(rows: Sequence[Row], axis: str, axes: Sequence[str], path: Path,
              title: str) -> Path | None:
    """Samples/s and latency (p50, p99) against any other varied setting."""
    rows = _done(rows, "samples_per_second")
    if not rows:
        return None
    numeric = all(isinstance(r.get(axis), (int, float)) and not isinstance(r.get(axis), bool)
                  for r in rows)
    categories = sorted({str(r.get(axis)) for r in rows})

    def x_of(row: Row) -> float:
        return row[axis] if numeric else categories.index(str(row.get(axis)))

    figure = Figure(figsize=(8.5, 6.4))
    top, bottom = figure.subplots(2, 1, sharex=True)
    for index, (label, members) in enumerate(_series(rows, axis, axes).items()):
        colour = f"C{index % 10}"
        xs = [x_of(m) for m in members]
        top.plot(xs, [m["samples_per_second"] for m in members], "o-", color=colour, label=label)
        with_p99 = [m for m in members if m.get("p99_ms") is not None]
        bottom.plot([x_of(m) for m in with_p99], [m["p99_ms"] for m in with_p99], "o-",
                    color=colour, label=f"p99 {label}")
        bottom.plot([x_of(m) for m in with_p99], [m["p50_ms"] for m in with_p99], ".--",
                    color=colour, alpha=0.6, label=f"p50 {label}")
        for member in members:
            if member.get("valid") is False:
                top.plot(x_of(member), member["samples_per_second"], "x", ms=10, mew=2,
                         color=INVALID_COLOUR)
    bound = _bound(rows)
    if bound:
        bottom.axhline(bound, color=BOUND_COLOUR, ls="--", lw=1.2,
                       label=f"{number_text(bound)} ms bound")
    if not numeric:
        bottom.set_xticks(range(len(categories)), categories)
    top.set_ylabel("samples/s")
    top.set_ylim(bottom=0)
    bottom.set_ylabel("latency (ms)")
    bottom.set_xlabel(_name(axis))
    top.set_title(f"{title}: by {_name(axis)}")
    for ax in (top, bottom):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    return _save(figure, path)


def distribution_plot(when_s: np.ndarray, latencies_ms: np.ndarray, row: Row, path: Path,
                      title: str) -> Path:
    """One run's per-sample latencies: histogram, CDF (with p50/p90/p99 and the bound, drawn
    when within reach of the slowest samples) and each sample's latency over the run, where
    a stall shows as a ridge."""
    figure = Figure(figsize=(15, 4.4))
    hist, cdf, timeline = figure.subplots(1, 3)
    values = np.sort(np.asarray(latencies_ms, dtype=np.float64))
    top = float(np.percentile(values, 99.9))
    shown = values[values <= top]
    bound = row.get("latency_bound_ms")
    right = top * 1.08
    if bound and bound <= 2 * top:
        right = max(right, bound * 1.05)
    left = 0.0 if values[0] < 0.3 * right else values[0] * 0.9  # narrow: zoom in
    hist.hist(shown, bins=min(80, max(12, int(math.sqrt(len(values)) * 1.5))),
              color="#4c72b0", alpha=0.85)
    cdf.plot(values, np.arange(1, len(values) + 1) / len(values), color="#4c72b0", lw=1.5)
    for ax in (hist, cdf):
        for _key, name, colour in PERCENTILE_STYLES:
            q = float(np.percentile(values, float(name[1:])))
            ax.axvline(q, color=colour, ls="-", lw=1.2, label=f"{name} {q:.1f} ms")
        if bound and bound <= right:
            ax.axvline(bound, color=BOUND_COLOUR, ls="--", lw=1.3,
                       label=f"{number_text(bound)} ms bound")
        ax.set_xlim(left, right)
        ax.set_xlabel("latency (ms, LoadGen: scheduled to completed)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="center right")
    hist.set_ylabel("samples")
    cut = len(values) - len(shown)
    hist.set_title(f"{len(values)} samples" + (f" ({cut} slowest past p99.9 not shown)"
                                                if cut else ""))
    cdf.set_ylabel("share of samples at or below")
    cdf.set_ylim(0, 1.01)
    cdf.axhline(0.99, color="#9467bd", ls=":", lw=1)
    cdf.set_title("CDF" + (f" (the {number_text(bound)} ms bound is off the chart)"
                           if bound and bound > right else ""))
    if float(np.ptp(when_s)) == 0.0:  # Offline: one query; its samples complete over time
        done = np.sort(np.asarray(latencies_ms)) / 1e3
        timeline.plot(done, np.arange(1, len(done) + 1), "-", color="#4c72b0")
        timeline.set_xlabel("seconds into the run")
        timeline.set_ylabel("samples completed")
        timeline.set_title("completions (one query: the slope is samples/s)")
        timeline.grid(True, alpha=0.3)
        figure.suptitle(title)
        return _save(figure, path)
    timeline.plot(when_s, latencies_ms, ".", ms=2.5, color="#4c72b0", alpha=0.7)
    if bound:
        timeline.axhline(bound, color=BOUND_COLOUR, ls="--", lw=1.3,
                         label=f"{number_text(bound)} ms bound")
        timeline.legend(fontsize=8, loc="upper right")
    if float(np.max(latencies_ms)) / max(float(np.min(latencies_ms)), 1e-6) > 30:
        timeline.set_yscale("log")
        timeline.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    timeline.set_xlabel("when the sample was scheduled (s into the run)")
    timeline.set_ylabel("latency (ms)")
    timeline.set_title("over the run (a stall is a ridge)")
    timeline.grid(True, alpha=0.3)
    figure.suptitle(title)
    return _save(figure, path)


def modelled_plot(rows: Sequence[Row], axis: str | None, figure_name: str, path: Path,
                  title: str) -> Path | None:
    """The modelled figure against the measured one: both against the varied setting, and
    measured against modelled with the line where they agree."""
    rows = _done(rows, "modelled", figure_name)
    if not rows:
        return None
    figure = Figure(figsize=(11, 4.6))
    left, right = figure.subplots(1, 2)
    label, unit = FIGURE_NAMES.get(figure_name, (figure_name, ""))
    if axis is not None:
        ordered = sorted(rows, key=lambda r: _sort_key(r.get(axis)))
        numeric = all(isinstance(r.get(axis), (int, float)) for r in ordered)
        xs = [r[axis] if numeric else i for i, r in enumerate(ordered)]
        left.plot(xs, [r[figure_name] for r in ordered], "o-", label="measured (LoadGen)")
        left.plot(xs, [r["modelled"] for r in ordered], "s--", label="modelled")
        if not numeric:
            left.set_xticks(xs, [str(r.get(axis)) for r in ordered])
        left.set_xlabel(_name(axis))
    else:
        left.bar(["measured", "modelled"], [rows[0][figure_name], rows[0]["modelled"]])
    left.set_ylabel(f"{label} ({unit})")
    left.set_title(f"{title}: modelled and measured")
    left.grid(True, alpha=0.3)
    left.legend(fontsize=8)
    measured = [r[figure_name] for r in rows]
    modelled = [r["modelled"] for r in rows]
    right.plot(modelled, measured, "o", ms=7)
    for row in rows:
        if axis is not None:
            right.annotate(number_text(row.get(axis)), (row["modelled"], row[figure_name]),
                           textcoords="offset points", xytext=(5, 3), fontsize=7)
    low, high = min(measured + modelled), max(measured + modelled)
    right.plot([low, high], [low, high], "--", color=BOUND_COLOUR, lw=1,
               label="measured = modelled")
    right.set_xlabel(f"modelled {label} ({unit})")
    right.set_ylabel(f"measured {label} ({unit})")
    ratios = [m / p for m, p in zip(measured, modelled, strict=True) if p]
    if ratios:
        right.set_title(f"measured / modelled: median {float(np.median(ratios)):.3g}")
    right.grid(True, alpha=0.3)
    right.legend(fontsize=8)
    return _save(figure, path)
