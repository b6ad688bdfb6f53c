"""Every run in a results tree, read tolerantly into flat records.

A run folder holds ``result.json`` (finished runs), ``settings.json`` (the resolved settings,
whose keys may change: a missing key reads as blank, never a crash) and LoadGen's
``mlperf_log_summary.txt``. The headline figure is what MLPerf's checker reads from that
summary (:data:`harness.published.build.METRIC`): samples/s in Offline, scheduled samples/s
in Server, the 90th percentile latency in ms in SingleStream; ``result.json`` when the
summary lacks it. Failed, interrupted and killed runs are listed too, without a figure.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.published.build import METRIC, parse_summary

KEPT = (".failed-", ".interrupted-", ".killed-")
NOTES = {"FAILED.txt": "failed", "INTERRUPTED.txt": "interrupted"}


@dataclass(frozen=True)
class RunRecord:
    """One run folder as the index and ``compare --published`` show it.

    ``metric`` is in ``unit`` (samples/s, or ms in SingleStream); ``created`` is the run's
    local time stamp (ISO 8601), ``timestamp`` the same in seconds since the epoch.
    """

    path: Path
    status: str          # result | history | failed | interrupted | killed
    sweep: str           # the sweep's name for a sweep point, else ""
    created: str
    timestamp: float
    system: str
    backend: str
    model: str
    precision: str
    mlperf_model: bool | None
    scenario: str
    mode: str
    rules: str
    short: bool | None
    metric: float | None
    unit: str
    valid: bool | None
    f1: float | None
    host_cpu: str
    host_cores: int | None

    @property
    def label(self) -> str:
        """``system/model`` with the backend, for legends."""
        return f"{self.system} {self.backend} {self.model}".strip()


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _get(data: Any, *keys: str) -> Any:
    """``data[k1][k2]...``, None where any level is missing or not a mapping."""
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _text(value: Any) -> str:
    return "" if value is None or isinstance(value, (dict, list)) else str(value)


def _status(folder: Path, results_dir: Path) -> tuple[str, str]:
    """(status, sweep name) from where the folder is and the notes it holds."""
    parts = folder.relative_to(results_dir).parts
    sweep = parts[1] if len(parts) > 1 and parts[0] == "sweeps" else ""
    for marker in KEPT:
        if marker in folder.name:
            return marker.strip(".-"), sweep
    for note, status in NOTES.items():
        if (folder / note).is_file():
            return status, sweep
    return ("history" if "history" in parts else "result"), sweep


def read_run(folder: Path, results_dir: Path) -> RunRecord:
    """One run folder's record; never raises for a missing or unreadable file."""
    folder, results_dir = Path(folder), Path(results_dir)
    result = _json(folder / "result.json")
    settings = _json(folder / "settings.json")
    config = _get(settings, "config") or {}
    status, sweep = _status(folder, results_dir)
    scenario = _text(result.get("scenario") or _get(config, "scenario"))
    mode = _text(result.get("mode") or _get(config, "mode")) or (
        "accuracy" if folder.name == "accuracy" else "performance")
    model = _get(settings, "model")
    model_name = _text(_get(model, "name") if isinstance(model, dict) else model) \
        or _text(_get(config, "model"))
    backend = _get(settings, "backend")
    backend_name = _text(_get(config, "backend")
                         or (_get(backend, "backend") if isinstance(backend, dict) else backend))
    metric, unit = None, METRIC.get(scenario, ("", "", 1.0))[1]
    if scenario in METRIC and mode == "performance" and status in ("result", "history"):
        field, unit, scale = METRIC[scenario]
        try:
            text = (folder / "mlperf_log_summary.txt").read_text(encoding="utf-8",
                                                                 errors="replace")
            metric = float(parse_summary(text)[field]) * scale
        except (OSError, KeyError, ValueError):
            metric = _fallback(result, scenario)
    accuracy = _json(folder / "accuracy.json")
    f1 = _get(accuracy, "scores", "f1")
    created = _text(settings.get("created"))
    try:
        stamp = (folder / "result.json").stat().st_mtime if result else folder.stat().st_mtime
    except OSError:
        stamp = 0.0
    if not created:
        created = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(stamp))
    cores = _get(settings, "host", "cores")
    short = _get(config, "short_run")
    return RunRecord(
        path=folder, status=status, sweep=sweep, created=created, timestamp=stamp,
        system=_text(settings.get("system")) or _guess_system(folder, results_dir),
        backend=backend_name, model=model_name,
        precision=_text(_get(model, "precision") if isinstance(model, dict) else None),
        mlperf_model=_get(model, "mlperf") if isinstance(model, dict) else None,
        scenario=scenario, mode=mode,
        rules=_text(_get(config, "rules") or _get(settings, "rules", "name")),
        short=short if isinstance(short, bool) else None,
        metric=metric, unit=unit,
        valid=result.get("valid") if isinstance(result.get("valid"), bool) else None,
        f1=float(f1) if isinstance(f1, (int, float)) else None,
        host_cpu=_text(_get(settings, "host", "cpu")),
        host_cores=cores if isinstance(cores, int) else None,
    )


def _fallback(result: dict[str, Any], scenario: str) -> float | None:
    """The figure from result.json when the summary has none."""
    if scenario == "SingleStream":
        value = _get(result, "latencies_ns", "90.00")
        return value / 1e6 if isinstance(value, (int, float)) else None
    value = result.get("samples_per_second")
    return float(value) if isinstance(value, (int, float)) else None


def _guess_system(folder: Path, results_dir: Path) -> str:
    parts = folder.relative_to(results_dir).parts
    return parts[0] if parts and parts[0] != "sweeps" else ""


def _is_run(folder: Path, names: list[str]) -> bool:
    if "result.json" in names or any(note in names for note in NOTES):
        return True
    return any(marker in folder.name for marker in KEPT) and "settings.json" in names


def find_runs(results_dir: Path) -> list[RunRecord]:
    """Every run under ``results_dir`` (results, history, kept failures, sweep points),
    newest first. Hidden folders (staging, locks) are skipped."""
    results_dir = Path(results_dir)
    records = []
    for root, dirs, files in os.walk(results_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        folder = Path(root)
        if folder != results_dir and _is_run(folder, files):
            records.append(read_run(folder, results_dir))
            dirs[:] = []
    records.sort(key=lambda r: r.timestamp, reverse=True)
    return records
