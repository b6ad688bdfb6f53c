"""A sweep as a table: one row a point, written as ``sweep.csv`` and ``sweep.json``.

A row holds the point's settings (every axis, and the base's scenario, backend, model,
batch size and threads), its status, every figure of its run (:data:`record.FIGURES`:
achieved samples/s or QPS, latency percentiles, mean and max, validity and the reason,
early stopping), the peak search's probe number where it was a probe, a modelled figure
where the sweep has one, and the run's folder. ``sweep.json`` adds the sweep's command,
the machine, the peak or best point and the distribution point.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from common.files import write_json_atomic, write_text_atomic
from harness.sweep.launch import PointRun
from harness.sweep.plan import Point
from harness.sweep.record import FIGURES, run_figures
from harness.sweep.spec import SweepSpec

SETTING_COLUMNS = ("scenario", "backend", "model", "batch_size", "threads")
HEAD = ("point", "label", "status")
TAIL = ("probe", "phase", "modelled", "run_dir", "seconds", "error")


def setting_columns(spec: SweepSpec) -> list[str]:
    """The settings a row shows: the axes, then the base's main ones."""
    names = [axis.name for axis in spec.axes]
    for name in ("target_qps", *SETTING_COLUMNS):
        if name not in names and (name in spec.base or name == "target_qps" and
                                  spec.setting("scenario") == "Server"):
            names.append(name)
    return names


def point_row(run: PointRun, columns: list[str], sweep_dir: Path) -> dict[str, Any]:
    """A row for a point, finished or not."""
    point: Point = run.point
    row: dict[str, Any] = {"point": point.id, "label": point.label, "status": run.status}
    row.update({name: point.setting(name) for name in columns})
    row.update(dict.fromkeys(FIGURES))
    if run.run_dir is not None:
        row.update(run_figures(run.run_dir))
    row.update(dict.fromkeys(TAIL))
    row["run_dir"] = _relative(run.run_dir or run.folder, sweep_dir)
    row["seconds"] = None if run.seconds is None else round(run.seconds, 1)
    row["error"] = run.error
    return row


def _relative(path: Path, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def csv_text(rows: list[dict[str, Any]]) -> str:
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(column)) for column in columns])
    return out.getvalue()


def write_tables(sweep_dir: Path, rows: list[dict[str, Any]], summary: dict[str, Any]) -> tuple[
        Path, Path]:
    """``sweep.csv`` and ``sweep.json`` (the rows under ``points``, beside ``summary``)."""
    csv_path, json_path = Path(sweep_dir) / "sweep.csv", Path(sweep_dir) / "sweep.json"
    write_text_atomic(csv_path, csv_text(rows))
    write_json_atomic(json_path, {**summary, "points": rows})
    return csv_path, json_path
