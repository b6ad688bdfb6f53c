"""SingleStream and MultiStream sweeps: latency percentiles by point.

In the stream scenarios LoadGen sends the next query when the last one is answered, so the
rate achieved is 1 / latency (x samples per query): a plot of latency against it says
nothing the latency does not. What matters is the latency itself: SingleStream's metric is
the 90th percentile of a sample, MultiStream's the 99th percentile of a whole query (8
samples). :func:`stream_plot` draws p50, p90 and p99 (and MultiStream's query p99, with its
bound) against the varied setting, or point by point when nothing numeric varies.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

from harness.sweep.plan import number_text
from harness.sweep.plots import (
    BOUND_COLOUR,
    INVALID_COLOUR,
    MARKERS,
    PERCENTILE_STYLES,
    Row,
    _bound,
    _done,
    _name,
    _save,
    _series,
)

QUERY_STYLE = ("query_p99_ms", "query p99 (the metric)", "#d62728")


def stream_plot(rows: Sequence[Row], axes: Sequence[str], scenario: str, path: Path,
                title: str) -> Path | None:
    """Latency percentiles (ms) of each point against the first numeric varied setting (or
    point by point), one panel a group of the other settings' values."""
    rows = _done(rows, "p50_ms")
    if not rows:
        return None
    numeric = [a for a in axes if all(isinstance(r.get(a), (int, float))
                                      and not isinstance(r.get(a), bool) for r in rows)]
    x = numeric[0] if numeric else None
    styles = list(PERCENTILE_STYLES)
    if scenario == "MultiStream":
        styles.append(QUERY_STYLE)
    metric = "p90_ms" if scenario == "SingleStream" else "query_p99_ms"
    groups = _series(rows, x, axes) if x else {"all": list(rows)}
    figure = Figure(figsize=(8.5, 5.0))
    ax = figure.subplots()
    labels: list[str] = []
    for index, (label, members) in enumerate(groups.items()):
        xs = [m[x] for m in members] if x else list(range(len(members)))
        if not x:
            labels = [m.get("label", str(i)) for i, m in enumerate(members)]
        for key, name, colour in styles:
            with_value = [(px, m[key]) for px, m in zip(xs, members, strict=True)
                          if m.get(key) is not None]
            if not with_value:
                continue
            line = "-" if len(groups) == 1 else ("-", "--", ":", "-.")[index % 4]
            ax.plot([p for p, _ in with_value], [v for _, v in with_value], line,
                    marker=MARKERS.get(key, "o"), color=colour, ms=5,
                    label=name + ("" if len(groups) == 1 else f" {label}"),
                    lw=2.2 if key == metric else 1.2)
        for px, member in zip(xs, members, strict=True):
            if member.get("valid") is False and member.get(metric) is not None:
                ax.plot(px, member[metric], "x", color=INVALID_COLOUR, ms=11, mew=2.2,
                        zorder=5)
    if any(r.get("valid") is False for r in rows):
        ax.plot([], [], "x", color=INVALID_COLOUR, ms=11, mew=2.2, label="INVALID run")
    bound = _bound(rows)
    if bound:
        ax.axhline(bound, color=BOUND_COLOUR, ls="--", lw=1.3,
                   label=f"{number_text(bound)} ms bound (query p99)")
    if x:
        ax.set_xlabel(_name(x))
    else:
        ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right", fontsize=8)
        ax.set_xlabel("point")
    ax.set_ylabel("latency (ms)")
    ax.set_ylim(bottom=0)
    ax.set_title(f"{title}: latency percentiles ({scenario}; its metric drawn bold)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _save(figure, path)
