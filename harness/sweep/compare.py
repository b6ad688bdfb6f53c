"""``compare A B``: the change in every figure between two runs, or two sweeps.

A side is a run folder (one with ``result.json``, or a folder holding exactly one
``performance/run_1``), a sweep folder (``sweep.json``) or a sweep file (its folder under
``results/sweeps``). Two runs: every figure side by side with the change. Two sweeps: the
peak search or best point, then the points both have (matched by their axis values), each
figure side by side. The text is the result; nothing is written.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common.errors import HarnessError, HarnessWarning
from common.files import slug
from harness.sweep.comparison import (
    differences,
    identity,
    mismatches,
    run_settings_flat,
    run_verdicts,
    sweep_settings_flat,
    sweep_verdicts,
)
from harness.sweep.record import FIGURES, find_run, run_figures, run_settings
from harness.sweep.spec import load_sweep

# Figures two sweeps' points are compared on (all of them for two runs).
POINT_FIGURES = ("samples_per_second", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "max_ms",
                 "valid", "early_stopping_met")
TEXT_FIGURES = ("reason", "early_stopping", "loadgen_errors")
LABELS = {"samples_per_second": "samples/s", "scheduled_qps": "scheduled QPS",
          "loadgen_target_qps": "target QPS", "valid": "verdict", "wall_s": "wall s",
          "sut_samples_per_s": "SUT samples/s", "query_count": "queries",
          "overlatency_count": "over-latency queries", "latency_bound_ms": "bound ms",
          "early_stopping_met": "early stopping met",
          "early_stopping_estimate_ms": "early-stopping estimate ms"}
LOWER_IS_BETTER = ("_ms", "wall_s", "overlatency_count")


@dataclasses.dataclass(frozen=True)
class Side:
    """One side of a comparison."""

    path: Path
    kind: str  # "run" or "sweep"
    data: dict[str, Any]  # figures (run) or sweep.json (sweep)
    about: str  # one line: what it is
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)  # flat (comparison)


def load_side(path: Path, sweeps_dir: Path) -> Side:
    """Read a run folder, a sweep folder or ``sweep.json``, or a sweep file's results."""
    path = Path(path)
    if path.suffix == ".toml" and path.is_file():
        folder = Path(sweeps_dir) / slug(load_sweep(path).name)
        if not (folder / "sweep.json").is_file():
            raise HarnessError(f"{path}: this sweep has no results in {folder} yet; run it first")
        path = folder
    if path.is_file() and path.name == "sweep.json":
        path = path.parent
    if not path.exists():
        raise HarnessError(f"{path}: no such run or sweep folder")
    if (path / "sweep.json").is_file():
        try:
            data = json.loads((path / "sweep.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise HarnessError(f"{path / 'sweep.json'}: cannot read ({exc})") from None
        if not isinstance(data, dict):
            raise HarnessError(f"{path / 'sweep.json'}: not a JSON object but a "
                               f"{type(data).__name__}; run the sweep again to rewrite it")
        host = (data.get("host") or {}).get("cpu", "?")
        return Side(path, "sweep", data, f"sweep {data.get('sweep')} on {host}",
                    sweep_settings_flat(data))
    run = find_run(path) if path.is_dir() else None
    if run is None:
        raise HarnessError(f"{path}: neither a run folder (result.json) nor a sweep folder "
                           "(sweep.json)")
    settings = run_settings(run)
    config = settings.get("config") or {}
    about = " ".join(str(x) for x in (config.get("scenario"), config.get("backend"),
                                      (settings.get("model") or {}).get("name"),
                                      f"batch {config.get('batch_size') or 'default'}",
                                      (settings.get("host") or {}).get("cpu")) if x)
    return Side(run, "run", run_figures(run), about, run_settings_flat(settings))


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _show(figure: str, value: Any) -> str:
    if value is None:
        return "-"
    if figure == "valid":
        return "VALID" if value else "INVALID"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if _number(value):
        return f"{value:,.2f}" if isinstance(value, float) else f"{value:,}"
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def change(figure: str, a: Any, b: Any) -> str:
    """``+8.20 (+15.7%, better)``, ``same``, ``changed``, or ``-`` when a side has none."""
    if a is None or b is None:
        return "-" if a is None and b is None else "only one side has it"
    if _number(a) and _number(b):
        delta = b - a
        if delta == 0:
            return "same"
        text = f"{delta:+,.2f}" if isinstance(delta, float) else f"{delta:+,}"
        if a:
            text += f" ({delta / abs(a) * 100:+.1f}%"
            lower = figure.endswith(LOWER_IS_BETTER)
            if figure in ("samples_per_second", "scheduled_qps", "sut_samples_per_s") or lower:
                text += ", better" if (delta < 0) == lower else ", worse"
            text += ")"
        return text
    if a == b:
        return "same"
    if figure == "valid":
        return "now VALID" if b else "now INVALID"
    return "changed"


def _table(rows: Sequence[tuple[str, str, str, str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return ["  ".join(cell.ljust(widths[i]) if i in (0, 3) else cell.rjust(widths[i])
                      for i, cell in enumerate(row)).rstrip() for row in rows]


def _figure_rows(a: dict[str, Any], b: dict[str, Any],
                 figures: Sequence[str]) -> list[tuple[str, str, str, str]]:
    rows = []
    for figure in figures:
        if a.get(figure) is None and b.get(figure) is None:
            continue
        rows.append((LABELS.get(figure, figure.replace("_ms", " ms").replace("_", " ")),
                     _show(figure, a.get(figure)), _show(figure, b.get(figure)),
                     change(figure, a.get(figure), b.get(figure))))
    return rows


def compare_runs(a: Side, b: Side) -> list[str]:
    figures = [f for f in FIGURES if f not in TEXT_FIGURES]
    lines = _table([("figure", "A", "B", "change (B - A)"),
                    *_figure_rows(a.data, b.data, figures)])
    for figure in TEXT_FIGURES:
        if a.data.get(figure) != b.data.get(figure):
            lines.append(f"{figure.replace('_', ' ')}:")
            lines.append(f"  A: {a.data.get(figure) or '-'}")
            lines.append(f"  B: {b.data.get(figure) or '-'}")
    return lines


def _key(row: dict[str, Any], axes: Sequence[str]) -> tuple:
    return tuple(row.get(axis) for axis in axes)


def _comparable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Finished points, but not LoadGen's own peak searches (figures of one probe)."""
    return [r for r in rows if r.get("status") == "done" and r.get("phase") != "loadgen"]


def matched_points(a: Side, b: Side) -> tuple[list[str], list[tuple[dict, dict]], int]:
    """The axes two sweeps' points are matched on, the matched pairs, and how many points
    are in one sweep only (or unfinished)."""
    axes_a = list((a.data.get("axes") or {}).keys())
    axes_b = list((b.data.get("axes") or {}).keys())
    axes = [axis for axis in axes_a if axis in axes_b]
    if a.data.get("find_peak") and "target_qps" not in axes:
        axes.append("target_qps")
    rows_b = {_key(r, axes): r for r in _comparable(b.data.get("points") or [])}
    pairs = [(row, rows_b[_key(row, axes)]) for row in _comparable(a.data.get("points") or [])
             if _key(row, axes) in rows_b]
    only = len(a.data.get("points") or []) + len(b.data.get("points") or []) - 2 * len(pairs)
    return axes, pairs, only


def compare_sweeps(a: Side, b: Side) -> list[str]:
    lines: list[str] = []
    peaks_a, peaks_b = a.data.get("peaks") or [], b.data.get("peaks") or []
    for index in range(max(len(peaks_a), len(peaks_b))):
        pa = peaks_a[index] if index < len(peaks_a) else {}
        pb = peaks_b[index] if index < len(peaks_b) else {}
        group = pa.get("group") or pb.get("group")
        lines += _table([("peak search" + (f" {group}" if group else ""), "A", "B",
                          "change (B - A)"),
                         ("peak QPS", _show("peak", pa.get("peak_qps")),
                          _show("peak", pb.get("peak_qps")),
                          change("samples_per_second", pa.get("peak_qps"), pb.get("peak_qps"))),
                         ("probes", str(len(pa.get("probes") or [])),
                          str(len(pb.get("probes") or [])), "")])
        lines.append("")
    best_a, best_b = a.data.get("best") or {}, b.data.get("best") or {}
    if best_a or best_b:
        lines.append(f"best point: A {best_a.get('label', '-')}, B {best_b.get('label', '-')}")
        lines += _table([("figure", "A", "B", "change (B - A)"),
                         *_figure_rows(best_a, best_b, ("samples_per_second", "p99_ms",
                                                        "valid"))])
        lines.append("")
    axes, pairs, only = matched_points(a, b)
    for row, other in pairs:
        name = row.get("label") if axes else "the point"
        lines.append(f"point {name}:")
        lines += ["  " + line for line in _table(
            [("figure", "A", "B", "change (B - A)"),
             *_figure_rows(row, other, POINT_FIGURES)])]
    if only:
        lines.append(f"({only} points are in one sweep only, or unfinished: matched on "
                     f"{', '.join(axes) or 'no axes'})")
    return lines


def _figures_json(a: dict[str, Any], b: dict[str, Any],
                  figures: Sequence[str]) -> list[dict[str, Any]]:
    return [{"figure": f, "a": a.get(f), "b": b.get(f), "change": change(f, a.get(f), b.get(f))}
            for f in figures if a.get(f) is not None or b.get(f) is not None]


def _side_json(side: Side) -> dict[str, Any]:
    return {"path": str(side.path), "kind": side.kind, "about": side.about}


def comparison_json(a: Side, b: Side) -> dict[str, Any]:
    """The comparison as data (``compare --json``), without the checks around it."""
    if a.kind == "run":
        return {"figures": _figures_json(a.data, b.data, FIGURES)}
    axes, pairs, only = matched_points(a, b)
    return {"peaks": {"a": a.data.get("peaks") or [], "b": b.data.get("peaks") or []},
            "best": {"a": a.data.get("best"), "b": b.data.get("best")},
            "matched_on": axes, "unmatched_points": only,
            "points": [{"label": row.get("label"),
                        "figures": _figures_json(row, other, POINT_FIGURES)}
                       for row, other in pairs]}


@dataclasses.dataclass(frozen=True)
class Comparison:
    """``compare A B`` in full: the text (or JSON) and whether B regressed."""

    text: str
    regressed: bool


def compare_sides(path_a: Path, path_b: Path, sweeps_dir: Path, force: bool = False,
                  fail_below_pct: float | None = None, as_json: bool = False) -> Comparison:
    """Compare two runs or two sweeps. Sides of different scenarios, models or rules raise
    HarnessError (``force``: a warning, and the comparison); ``fail_below_pct``: B's
    headline figure worse than A's by more than this percentage is a regression."""
    a, b = load_side(path_a, sweeps_dir), load_side(path_b, sweeps_dir)
    if a.kind != b.kind:
        raise HarnessError(f"{a.path} is a {a.kind} and {b.path} a {b.kind}: compare two runs "
                           "or two sweeps (a sweep's points are runs: name their folders)")
    differ = mismatches(a.kind, a.settings, b.settings)
    if differ and not force:
        raise HarnessError(f"A and B measure different things ({'; '.join(differ)}); their "
                           "figures do not compare (--force compares them anyway)")
    if differ:
        warnings.warn(f"comparing different things: {'; '.join(differ)}", HarnessWarning,
                      stacklevel=2)
    allowed = 0.0 if fail_below_pct is None else fail_below_pct
    if a.kind == "run":
        verdicts = run_verdicts(a.data, b.data, identity("run", a.settings)["scenario"],
                                allowed)
    else:
        verdicts = sweep_verdicts(a.data, b.data, allowed)
    regressed = fail_below_pct is not None and any(v.regression for v in verdicts)
    settings = differences(a.settings, b.settings)
    if as_json:
        data = {"a": _side_json(a), "b": _side_json(b), "mismatch": differ,
                "settings": [{"setting": k, "a": va, "b": vb} for k, va, vb in settings],
                **comparison_json(a, b), "fail_below_pct": fail_below_pct,
                "headline": [v.to_json() for v in verdicts], "regressed": regressed}
        return Comparison(json.dumps(data, indent=2, default=str) + "\n", regressed)
    head = [f"A: {a.path}  ({a.about})", f"B: {b.path}  ({b.about})", ""]
    if settings:
        head += ["settings that differ:", *_table(
            [("setting", "A", "B", ""), *((k, _show(k, va), _show(k, vb), "")
                                          for k, va, vb in settings)]), ""]
    else:
        head += ["settings: the same", ""]
    body = compare_runs(a, b) if a.kind == "run" else compare_sweeps(a, b)
    tail = []
    if fail_below_pct is not None:
        bad = [v for v in verdicts if v.regression]
        tail = ["", f"regression: {'; '.join(f'{v.figure} {v.why}' for v in bad)}" if bad
                else f"no regression past {fail_below_pct:g}%: "
                + "; ".join(f"{v.figure} {v.why or 'same'}" for v in verdicts)]
    return Comparison("\n".join(head + body + tail).rstrip() + "\n", regressed)


def compare(path_a: Path, path_b: Path, sweeps_dir: Path) -> str:
    """The comparison's text (sides that measure different things are refused)."""
    return compare_sides(path_a, path_b, sweeps_dir).text
