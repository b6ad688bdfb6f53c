"""The published-results picture: per scenario, every published result as a point (ranked,
log scale, coloured by accelerator family), the user's runs and wafer plans as labelled
lines at their figure. One PNG, written atomically (matplotlib's Agg canvas, no display)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from common.files import atomic_path
from harness.published.compare import WaferPlan, tags
from harness.published.table import (
    FAMILY_COLOURS,
    LOWER_IS_BETTER,
    RUN_COLOUR,
    Published,
    ranked,
)
from harness.report.runs import RunRecord

DPI = 110
PLAN_COLOUR = "#111111"
ORDER = ("Offline", "Server", "SingleStream", "MultiStream")


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def published_plot(path: Path, rows: Sequence[Published], runs: Sequence[RunRecord],
                   plans: Sequence[WaferPlan] = (), title: str = "") -> Path:
    """Write the picture to ``path`` and return it; one panel per scenario that has
    published results or runs."""
    scenarios = [s for s in ORDER if any(r.scenario == s for r in rows)
                 or any(r.scenario == s for r in runs)]
    if not scenarios:
        scenarios = ["Offline"]
    fig = Figure(figsize=(5.2 * len(scenarios), 5.0), dpi=DPI)
    axes = fig.subplots(1, len(scenarios), squeeze=False)[0]
    seen: set[str] = set()
    for ax, scenario in zip(axes, scenarios, strict=True):
        mine = ranked(r for r in rows if r.scenario == scenario)
        for family in FAMILY_COLOURS:
            points = [(i + 1, r.metric) for i, r in enumerate(mine) if r.family == family]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.scatter(xs, ys, s=18, color=FAMILY_COLOURS[family], alpha=0.85,
                           label=None if family in seen else family, zorder=3)
                seen.add(family)
        marks = [(run.metric, f"{run.system} {run.model}\n{tags(run).strip()}", RUN_COLOUR,
                  "--")
                 for run in runs if run.scenario == scenario and run.metric]
        marks += [(plan.metric(scenario), f"wafer plan {plan.label} ({plan.precision})",
                   PLAN_COLOUR, ":") for plan in plans if plan.metric(scenario)]
        for value, label, colour, style in marks:
            ax.axhline(value, color=colour, linestyle=style, linewidth=1.2, zorder=2)
            note = ax.annotate(f"{label}: {_number(value)}", xy=(0.02, value),
                               xycoords=("axes fraction", "data"), fontsize=7, color=colour,
                               va="bottom", annotation_clip=False, clip_on=True)
            note.set_in_layout(False)  # long labels are clipped, never squeeze the panels
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: _number(v)))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
        unit = mine[0].unit if mine else ("ms" if scenario in LOWER_IS_BETTER else "samples/s")
        better = "lower is better" if scenario in LOWER_IS_BETTER else "higher is better"
        ax.set_ylabel(f"{'p90 latency' if scenario in LOWER_IS_BETTER else 'throughput'} "
                      f"({unit}, log; {better})")
        ax.set_xlabel("published rank (1 = best)")
        ax.set_title(f"{scenario}: {len(mine)} published", fontsize=10)
        ax.grid(True, which="both", alpha=0.25)
        if not mine and not marks:
            ax.text(0.5, 0.5, "no published results", ha="center", transform=ax.transAxes)
    if seen:
        fig.legend(loc="lower center", ncol=min(len(seen), 5), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.08 if seen else 0, 1, 0.95 if title else 1))
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png")
    return Path(path)
