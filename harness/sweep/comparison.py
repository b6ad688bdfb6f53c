"""What ``compare`` checks around the figures: whether two sides compare at all, every
setting that differs, the regression a CI gate watches, and what there is to compare.

Two runs (or sweeps) of different scenarios, models or rules measure different things:
``compare`` refuses them unless told ``--force``. A regression is the side's headline
figure (:data:`HEADLINE`: the scenario's MLPerf metric, a sweep's peak QPS or best
samples/s) worse in B than in A by more than the allowed percentage, or a verdict that went
from VALID to INVALID.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.report.runs import find_runs

# Settings that decide whether two sides measure the same thing.
IDENTITY = ("scenario", "model", "rules")
# Where things are kept, not what was measured: never shown as a difference.
LOCATIONS = ("data", "results_dir", "model_store", "model_mirrors", "progress", "user_conf",
             "path", "source", "model_path", "node", "command")
# A run's headline figure by scenario, and whether higher is better.
HEADLINE = {"Offline": ("samples_per_second", True), "Server": ("samples_per_second", True),
            "SingleStream": ("p90_ms", False), "MultiStream": ("query_p99_ms", False)}


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as ``a.b.c`` keys (lists as their text), locations left out."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key in LOCATIONS:
            continue
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = ", ".join(map(str, value)) if isinstance(value, list) else value
    return flat


def run_settings_flat(settings: Mapping[str, Any]) -> dict[str, Any]:
    """A run's settings.json as the flat settings ``compare`` shows."""
    keep = {"config": settings.get("config") or {}, "model": settings.get("model") or {},
            "backend": {k: v for k, v in (settings.get("backend") or {}).items()
                        if k in ("version", "providers", "intra_op_threads", "optimizer",
                                 "graph_optimization_level", "fusions", "instances")},
            "host": settings.get("host") or {}, "python": settings.get("python"),
            "loadgen_version": settings.get("loadgen_version")}
    return flatten(keep)


def sweep_settings_flat(summary: Mapping[str, Any]) -> dict[str, Any]:
    """A sweep.json's settings (its base, axes, machine) as flat settings."""
    keep = {"base": summary.get("base") or {}, "axes": summary.get("axes") or {},
            "host": summary.get("host") or {}, "python": summary.get("python"),
            "loadgen_version": summary.get("loadgen_version"),
            "backend_version": summary.get("backend_version")}
    return flatten(keep)


def identity(kind: str, flat: Mapping[str, Any]) -> dict[str, Any]:
    """Scenario, model and rules of a side (a sweep's from its base; LoadGen's own rules and
    the default model when the base does not name them)."""
    prefix = "config." if kind == "run" else "base."
    found = {key: flat.get(prefix + key) for key in IDENTITY}
    if kind == "sweep":
        for key in IDENTITY:
            if f"axes.{key}" in flat:
                found[key] = f"varied: {flat[f'axes.{key}']}"
        found["rules"] = found["rules"] or "loadgen"
    return found


def mismatches(kind: str, a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """``scenario: Server in A, Offline in B`` for each identity setting that differs."""
    ia, ib = identity(kind, a), identity(kind, b)
    return [f"{key}: {ia[key] or 'default'} in A, {ib[key] or 'default'} in B"
            for key in IDENTITY if ia[key] != ib[key]]


def differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """Every setting whose value differs, in A's order then B's own."""
    keys = list(a) + [key for key in b if key not in a]
    return [(key, a.get(key), b.get(key)) for key in keys if a.get(key) != b.get(key)]


@dataclasses.dataclass(frozen=True)
class Verdict:
    """One headline figure judged against the allowed regression."""

    figure: str
    a: Any
    b: Any
    change_pct: float | None  # B against A, signed so that negative is worse
    regression: bool
    why: str

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def judge(figure: str, a: Any, b: Any, higher_is_better: bool, allowed_pct: float) -> Verdict:
    """A figure worse in B than in A by more than ``allowed_pct`` percent is a regression;
    so is one that A has and B lacks (a peak no longer found)."""
    if a is None:
        return Verdict(figure, a, b, None, False, "A has none")
    if b is None:
        return Verdict(figure, a, b, None, True, "B has none")
    if isinstance(a, bool) or isinstance(b, bool):
        worse = bool(a) and not b
        return Verdict(figure, a, b, None, worse, "now INVALID" if worse else "")
    if not a:
        return Verdict(figure, a, b, None, False, "A is 0")
    pct = (b - a) / abs(a) * 100 * (1 if higher_is_better else -1)
    worse = pct < -allowed_pct
    return Verdict(figure, a, b, round(pct, 2), worse,
                   f"{abs(pct):.1f}% {'worse' if pct < 0 else 'better'}"
                   + (f", past the {allowed_pct:g}% allowed" if worse else ""))


def run_verdicts(a: Mapping[str, Any], b: Mapping[str, Any], scenario: str | None,
                 allowed_pct: float) -> list[Verdict]:
    """Two runs' figures: the scenario's headline figure and the verdict."""
    figure, higher = HEADLINE.get(scenario or "", ("samples_per_second", True))
    return [judge(figure, a.get(figure), b.get(figure), higher, allowed_pct),
            judge("valid", a.get("valid"), b.get("valid"), True, allowed_pct)]


def sweep_verdicts(a: Mapping[str, Any], b: Mapping[str, Any],
                   allowed_pct: float) -> list[Verdict]:
    """Two sweeps: each peak search's peak QPS, else the best point's samples/s."""
    peaks_a, peaks_b = a.get("peaks") or [], b.get("peaks") or []
    if peaks_a:
        return [judge(f"peak QPS {pa.get('group') or ''}".rstrip(), pa.get("peak_qps"),
                      (peaks_b[i] if i < len(peaks_b) else {}).get("peak_qps"), True,
                      allowed_pct) for i, pa in enumerate(peaks_a)]
    best_a, best_b = a.get("best") or {}, b.get("best") or {}
    return [judge("best samples_per_second", best_a.get("samples_per_second"),
                  best_b.get("samples_per_second"), True, allowed_pct)]


def comparable_list(results_dir: Path, sweeps_dir: Path) -> str:
    """What ``compare`` can be given, newest first: finished runs and sweeps."""
    lines = ["compare takes two runs or two sweeps: python -m harness compare A B "
             "(make compare A=... B=...)"]
    sweeps = sorted((p.parent for p in Path(sweeps_dir).glob("*/sweep.json")),
                    key=lambda p: p.stat().st_mtime, reverse=True)
    lines.append(f"sweeps ({len(sweeps)} in {sweeps_dir}):")
    lines += [f"  {folder}" for folder in sweeps] or ["  (none yet: make sweep)"]
    runs = [r for r in find_runs(results_dir) if r.status == "result" and not r.sweep] \
        if Path(results_dir).is_dir() else []
    lines.append(f"runs ({len(runs)} in {results_dir}, not counting sweep points):")
    for run in runs:
        verdict = {True: "VALID", False: "INVALID"}.get(run.valid, "")
        figure = f"{run.metric:.4g} {run.unit}" if run.metric is not None else ""
        lines.append(f"  {run.path}  {run.scenario} {run.backend} {run.model} {figure} "
                     f"{verdict}".rstrip())
    if not runs:
        lines.append("  (none yet: make run)")
    return "\n".join(lines) + "\n"
