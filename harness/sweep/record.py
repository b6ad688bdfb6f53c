"""What one finished run measured, read back from its folder as flat figures.

A run folder (``.../performance/run_1``) holds ``result.json`` (the harness's reading of
LoadGen's detail log), ``settings.json`` and LoadGen's logs; the figures here are what a
sweep's table, plots and ``compare`` show. Per-sample latencies come from LoadGen's trace,
which only runs started with ``run --keep-trace`` keep.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from common.errors import HarnessError
from harness.loadgen.results import parse_detail_log

PERCENTILES = {"50.00": "p50_ms", "90.00": "p90_ms", "95.00": "p95_ms", "97.00": "p97_ms",
               "99.00": "p99_ms", "99.90": "p999_ms", "min": "min_ms", "mean": "mean_ms",
               "max": "max_ms"}
# Every figure a run has, in the order tables show them.
FIGURES = ("samples_per_second", "scheduled_qps", "loadgen_target_qps", "valid", "reason",
           "p50_ms", "p90_ms", "p95_ms", "p97_ms", "p99_ms", "p999_ms", "mean_ms", "max_ms",
           "min_ms", "query_p99_ms", "latency_bound_ms", "early_stopping_met",
           "early_stopping_estimate_ms", "early_stopping", "query_count",
           "overlatency_count", "loadgen_errors", "sut_samples_per_s", "wall_s")
_SAMPLE = re.compile(r'"name":"Sample".*?"ts":([\d.]+).*?"complete_ns":(\d+)')
_ESTIMATE = re.compile(r"(\d+(?:\.\d+)?)(?:th)? percentile estimate:\s*(\d+)")


def find_run(folder: Path) -> Path | None:
    """The finished run in ``folder``: the folder itself, or the one ``performance/run_1``
    below it; None when there is none, HarnessError when there are several."""
    folder = Path(folder)
    if (folder / "result.json").is_file():
        return folder
    found = sorted(p.parent for p in folder.glob("**/performance/run_1/result.json"))
    if len(found) > 1:
        raise HarnessError(f"{folder} holds {len(found)} runs; name one of them: "
                           + ", ".join(str(p) for p in found[:3]))
    return found[0] if found else None


def readable_run(folder: Path) -> tuple[Path | None, str | None]:
    """``(run, None)`` for the finished run in ``folder`` whose figures can be read,
    ``(None, why)`` when a run there is damaged (a binary or non-object ``result.json`` or
    ``settings.json``, several runs), ``(None, None)`` when there is none. A sweep re-runs
    a damaged point."""
    try:
        run = find_run(folder)
        if run is not None:
            run_figures(run)
            run_settings(run)
    except HarnessError as exc:
        return None, str(exc)
    return run, None


def _json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path`` ({} when missing); one-line HarnessError when the file is
    not readable UTF-8 JSON or not an object (a list, a number)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:  # ValueError: bad JSON and bad UTF-8 alike
        raise HarnessError(f"{path}: cannot read ({exc})") from None
    except RecursionError:
        raise HarnessError(f"{path}: cannot read (nested too deeply)") from None
    if not isinstance(data, dict):
        raise HarnessError(f"{path}: not a JSON object but a {type(data).__name__}; the "
                           "harness writes an object here")
    return data


def run_figures(run_dir: Path) -> dict[str, Any]:
    """Every figure of a finished run (None where the scenario has none)."""
    run_dir = Path(run_dir)
    result = _json(run_dir / "result.json")
    if not result:
        raise HarnessError(f"{run_dir}: no result.json; not a finished run")
    raw = parse_detail_log(run_dir / "mlperf_log_detail.txt", result.get("scenario", ""),
                           result.get("mode", "performance")).raw
    figures: dict[str, Any] = dict.fromkeys(FIGURES)
    figures["samples_per_second"] = result.get("samples_per_second")
    figures["scheduled_qps"] = raw.get("result_scheduled_samples_per_sec")
    figures["loadgen_target_qps"] = raw.get("effective_target_qps")
    figures["valid"] = result.get("valid")
    reasons = list(result.get("invalid_reasons") or [])
    figures["reason"] = "; ".join(reasons) if reasons else ("" if result.get("valid") else None)
    for key, name in PERCENTILES.items():
        value = (result.get("latencies_ns") or {}).get(key)
        figures[name] = None if value is None else value / 1e6
    query_p99 = (result.get("query_latencies_ns") or {}).get("99.00")
    figures["query_p99_ms"] = None if query_p99 is None else query_p99 / 1e6
    if result.get("scenario") in ("Server", "MultiStream") \
            and raw.get("effective_target_latency_ns"):
        figures["latency_bound_ms"] = raw["effective_target_latency_ns"] / 1e6
    figures["early_stopping_met"] = raw.get("early_stopping_met")
    text = " ".join(str(raw.get("early_stopping_result", "")).replace("*", " ").split())
    figures["early_stopping"] = text or None
    estimate = _ESTIMATE.search(text)
    figures["early_stopping_estimate_ms"] = int(estimate.group(2)) / 1e6 if estimate else None
    figures["query_count"] = result.get("query_count")
    figures["overlatency_count"] = raw.get("result_overlatency_query_count")
    figures["loadgen_errors"] = " | ".join(result.get("errors") or []) or None
    figures["sut_samples_per_s"] = result.get("sut_samples_per_s")
    figures["wall_s"] = result.get("wall_s")
    return figures


def run_settings(run_dir: Path) -> dict[str, Any]:
    """The run's ``settings.json`` ({} when missing)."""
    return _json(Path(run_dir) / "settings.json")


def recorded_value(run_dir: Path, path: str) -> Any:
    """What the run recorded at ``settings.a.b`` (settings.json) or ``result.a.b``; None
    when it recorded nothing there."""
    source, _, keys = path.partition(".")
    data: Any = _json(Path(run_dir) / f"{source}.json")
    for key in keys.split("."):
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def recorded(run_dir: Path, path: str) -> float | None:
    """A number the run recorded: ``settings.a.b`` (settings.json) or ``result.a.b``."""
    data = recorded_value(run_dir, path)
    return float(data) if isinstance(data, (int, float)) and not isinstance(data, bool) else None


def sample_latencies(run_dir: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """Every sample's scheduled time (s into the run) and latency (ms, LoadGen's: scheduled
    to completed), from the run's trace; None when the run kept no trace."""
    trace = Path(run_dir) / "mlperf_log_trace.json"
    if not trace.is_file() or trace.stat().st_size == 0:
        return None
    when, latency = [], []
    with trace.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:  # LoadGen's trace is JSON-like, not always valid JSON: by line
            found = _SAMPLE.search(line)
            if found:
                when.append(float(found.group(1)))
                latency.append(int(found.group(2)))
    if not latency:
        return None
    start = min(when)
    return (np.asarray(when) - start) / 1e6, np.asarray(latency, dtype=np.float64) / 1e6
