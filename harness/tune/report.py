"""What ``tune`` found: rows, the Pareto front, a table, a PNG, an HTML page, ``tuned.toml``.

A row is a candidate with its gate F1 (percent) and, when it raced, its median ratio to the
fp32 default measured beside it and the samples/s that ratio gives at the default's median
rate. The front holds the rows no other row beats on both F1 and speed.
"""

from __future__ import annotations

import dataclasses
import html
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common.files import write_json_atomic, write_text_atomic

TUNED_FILE = "tuned.toml"


@dataclasses.dataclass(frozen=True)
class Row:
    """One candidate's outcome. ``status``: winner, raced, eliminated, below target,
    not raced or baseline; ``ratio``: median samples/s ratio to the fp32 default."""

    label: str
    f1: float | None
    status: str
    ratio: float | None = None
    samples_per_second: float | None = None
    runs: int = 0
    note: str = ""
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def pareto_front(rows: Sequence[Row]) -> list[Row]:
    """Rows with speed and F1 that no other row matches on both and beats on one, fastest
    first."""
    timed = [r for r in rows if r.samples_per_second and r.f1 is not None
             and r.status != "below target"]

    def beaten(r: Row) -> bool:
        return any(o is not r and o.samples_per_second >= r.samples_per_second
                   and o.f1 >= r.f1 and (o.samples_per_second > r.samples_per_second
                                         or o.f1 > r.f1) for o in timed)

    return sorted((r for r in timed if not beaten(r)), key=lambda r: -r.samples_per_second)


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def table(rows: Sequence[Row]) -> str:
    """A Markdown table of every row, fastest first."""
    lines = ["| candidate | F1 | samples/s | x fp32 default | runs | status |",
             "|---|---|---|---|---|---|"]
    order = sorted(rows, key=lambda r: (-(r.ratio or 0.0), -(r.f1 or 0.0)))
    for r in order:
        status = r.status + (f": {r.note}" if r.note else "")
        lines.append(f"| {r.label} | {_num(r.f1, '.2f')} | {_num(r.samples_per_second, '.2f')}"
                     f" | {_num(r.ratio, '.2f')} | {r.runs} | {status} |")
    return "\n".join(lines) + "\n"


def toml_value(value: Any) -> str:
    """A TOML literal for a setting's value (text, number, switch or a table of them)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(str(value))


def tuned_toml(settings: dict[str, Any], comments: Sequence[str]) -> str:
    """The text of a ``--settings`` file: comments, then ``key = value`` lines."""
    head = "".join(f"# {line}\n" for line in comments)
    return head + "".join(f"{key} = {toml_value(value)}\n" for key, value in settings.items())


def plot_front(rows: Sequence[Row], path: Path, target_f1: float | None) -> Path:
    """samples/s against F1: every timed row, the front joined, the target as a line."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4.5), dpi=110)
    axes = figure.add_subplot()
    timed = [r for r in rows if r.samples_per_second and r.f1 is not None]
    for r in timed:
        color = {"winner": "tab:green", "baseline": "tab:gray"}.get(r.status, "tab:blue")
        axes.scatter(r.f1, r.samples_per_second, color=color, zorder=3)
        words = r.label.split(" ")  # "backend:model b8 s1 key=value ...": backend, options
        name = " ".join([words[0].split(":")[0], *words[1:]])
        axes.annotate(name + (" (int8)" if "int8" in words[0] else ""),
                      (r.f1, r.samples_per_second), fontsize=5, xytext=(3, 3),
                      textcoords="offset points")
    front = pareto_front(rows)
    if front:
        axes.plot([r.f1 for r in front], [r.samples_per_second for r in front],
                  color="tab:green", linestyle="--", label="Pareto front")
    if target_f1 is not None:
        axes.axvline(target_f1, color="tab:red", linestyle=":", label=f"F1 target {target_f1:.2f}")
    axes.set_xlabel("F1 on the gate's questions (%)")
    axes.set_ylabel("samples/s (short Offline runs)")
    axes.set_title("tune: speed against accuracy")
    axes.grid(alpha=0.3)
    if front or target_f1 is not None:
        axes.legend(fontsize=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path


def html_page(title: str, summary: Sequence[str], rows: Sequence[Row], png: str | None) -> str:
    """A standalone page: the summary lines, the picture and the table."""
    head = "".join(f"<p>{html.escape(line)}</p>\n" for line in summary)
    image = f'<img src="{html.escape(png)}" alt="speed against F1">\n' if png else ""
    cells = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in (
            r.label, _num(r.f1, ".2f"), _num(r.samples_per_second, ".2f"),
            _num(r.ratio, ".2f"), str(r.runs), r.status + (f": {r.note}" if r.note else "")))
        + "</tr>\n" for r in sorted(rows, key=lambda r: (-(r.ratio or 0.0), -(r.f1 or 0.0))))
    return (f"<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}"
            f"</title></head><body>\n<section id=\"tune\"><h1>{html.escape(title)}</h1>\n"
            f"{head}{image}<table border=\"1\"><tr><th>candidate</th><th>F1</th>"
            "<th>samples/s</th><th>x fp32 default</th><th>runs</th><th>status</th></tr>\n"
            f"{cells}</table></section></body></html>\n")


def write_outcome(folder: Path, title: str, summary: Sequence[str], rows: Sequence[Row],
                  winner: Row | None, target_f1: float | None,
                  extra: dict[str, Any]) -> dict[str, Path]:
    """``tune.json``, ``table.md``, ``front.png``, ``report.html`` and (with a winner)
    ``tuned.toml`` in ``folder``; returns their paths by kind."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"json": folder / "tune.json", "table": folder / "table.md",
             "html": folder / "report.html"}
    write_json_atomic(paths["json"], {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "summary": list(summary),
        "target_f1": target_f1, "rows": [r.to_json() for r in rows],
        "front": [r.label for r in pareto_front(rows)],
        "winner": winner.to_json() if winner else None, **extra})
    write_text_atomic(paths["table"], table(rows))
    png = None
    try:
        paths["png"] = plot_front(rows, folder / "front.png", target_f1)
        png = "front.png"
    except ImportError:  # matplotlib is optional: the table and the page still come
        pass
    write_text_atomic(paths["html"], html_page(title, summary, rows, png))
    if winner is not None:
        paths["tuned"] = folder / TUNED_FILE
        write_text_atomic(paths["tuned"], tuned_toml(winner.settings, [
            title, *summary,
            "use with: python -m harness run|accuracy|submission --settings THIS_FILE"]))
    return paths
