"""Where results go, how they are written, and what a LoadGen run reported.

One function, :func:`run_dir`, computes every output path; the tree mirrors an MLPerf
submission: ``results/<system>/<model>/<scenario>/performance/run_1`` and
``.../<scenario>/accuracy``. A run writes into a staging directory beside its final place
and is moved there only when it succeeded; a failed run is kept as ``<dir>.failed-<time>``
with a FAILED.txt saying why, so its logs are never lost and never mistaken for a result.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from harness.files import slug, write_text_atomic

DEFAULT_RESULTS = Path("results")
DIR_MODE = 0o755


def run_dir(results_root: Path, system: str, model: str, scenario: str, mode: str) -> Path:
    """Final directory of a run: ``performance/run_1`` or ``accuracy``."""
    base = Path(results_root) / slug(system) / slug(model) / scenario
    return base / "performance" / "run_1" if mode == "performance" else base / "accuracy"


class StagedRun:
    """A staging directory that becomes ``final`` on :meth:`commit` or is kept as failed."""

    def __init__(self, final: Path) -> None:
        self.final = Path(final)
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(dir=self.final.parent, prefix=f".{self.final.name}."))
        os.chmod(self.path, DIR_MODE)

    def commit(self) -> Path:
        """Replace any previous result at ``final`` with this run."""
        if self.final.exists():
            trash = self.final.with_name(f".{self.final.name}.old-{os.getpid()}")
            os.replace(self.final, trash)
            os.replace(self.path, self.final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(self.path, self.final)
        return self.final

    def fail(self, reason: str) -> Path:
        """Keep the logs under a name that says the run failed, with the reason beside them."""
        write_text_atomic(self.path / "FAILED.txt", reason.rstrip() + "\n")
        failed = self.final.with_name(f"{self.final.name}.failed-{time.strftime('%Y%m%d-%H%M%S')}")
        os.replace(self.path, failed)
        return failed


@dataclasses.dataclass(frozen=True)
class LoadGenResult:
    """What LoadGen's detail log says about a run (latencies in ns)."""

    scenario: str
    mode: str
    valid: bool | None
    samples_per_second: float | None
    latencies_ns: dict[str, float]
    query_latencies_ns: dict[str, float]
    query_count: int | None
    invalid_reasons: tuple[str, ...]
    errors: tuple[str, ...]
    raw: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("raw")
        return data

    def summary_lines(self) -> list[str]:
        lines = [f"scenario: {self.scenario}   mode: {self.mode}"]
        if self.samples_per_second is not None:
            lines.append(f"samples/s: {self.samples_per_second:,.2f}")
        if self.valid is not None:
            lines.append(f"result: {'VALID' if self.valid else 'INVALID'}")
        for reason in self.invalid_reasons:
            lines.append(f"  invalid because: {reason}")
        for name in ("50.00", "90.00", "99.00"):
            value = self.latencies_ns.get(name)
            if value is not None:
                lines.append(f"latency p{name.split('.')[0]}: {value / 1e6:,.2f} ms")
        query_p99 = self.query_latencies_ns.get("99.00")
        if query_p99 is not None:
            lines.append(f"query latency p99: {query_p99 / 1e6:,.2f} ms")
        for error in self.errors:
            lines.append(f"LoadGen error: {error}")
        return lines


_VALIDITY_CHECKS = {
    "result_min_duration_met": lambda raw: "minimum duration not met",
    "result_min_queries_met": lambda raw: "minimum query count not met",
    "result_perf_constraints_met": lambda raw: "latency constraint not met",
    "early_stopping_met": lambda raw: "early stopping not met: "
    + " ".join(str(raw.get("early_stopping_result", "")).replace("*", "").split()),
}


def _percentiles(raw: dict[str, Any], suffix: str) -> dict[str, float]:
    return {
        key[len("result_") : -len(suffix)]: float(value)
        for key, value in raw.items()
        if key.startswith("result_") and key.endswith(suffix)
    }


def parse_detail_log(path: Path, scenario: str, mode: str) -> LoadGenResult:
    """Read ``mlperf_log_detail.txt`` (``:::MLLOG {json}`` lines) into a result."""
    raw: dict[str, Any] = {}
    errors: list[str] = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if not line.startswith(":::MLLOG "):
                continue
            try:
                entry = json.loads(line[len(":::MLLOG ") :])
            except json.JSONDecodeError:
                continue
            raw[entry.get("key")] = entry.get("value")
            if entry.get("metadata", {}).get("is_error"):
                errors.append(f"{entry.get('key')}: {entry.get('value')}")
    latencies = _percentiles(raw, "_percentile_latency_ns")
    # MultiStream's metric: latency of whole queries (8 samples each)
    query_latencies = _percentiles(raw, "_percentile_per_query_latency_ns")
    for key in ("min", "max", "mean"):
        if f"result_{key}_latency_ns" in raw:
            latencies[key] = float(raw[f"result_{key}_latency_ns"])
    validity = raw.get("result_validity")
    reasons = raw.get("result_invalid_reason") or ""
    # Some INVALID verdicts carry no reason text: name the unmet checks instead.
    unmet = [key for key in _VALIDITY_CHECKS if raw.get(key) is False]
    if validity == "INVALID" and not reasons.strip() and unmet:
        reasons = ". ".join(_VALIDITY_CHECKS[key](raw) for key in unmet)
    # Offline reports samples/s; Server completed samples/s; the stream scenarios report
    # queries/s, each query holding effective_samples_per_query samples.
    throughput = raw.get("result_samples_per_second", raw.get("result_completed_samples_per_sec"))
    if throughput is None and "result_qps_with_loadgen_overhead" in raw:
        per_query = raw.get("effective_samples_per_query", 1)
        throughput = float(raw["result_qps_with_loadgen_overhead"]) * per_query
    return LoadGenResult(
        scenario=scenario,
        mode=mode,
        valid=None if validity is None else validity == "VALID",
        samples_per_second=None if throughput is None else float(throughput),
        latencies_ns=latencies,
        query_latencies_ns=query_latencies,
        query_count=raw.get("result_query_count"),
        invalid_reasons=tuple(r.strip() for r in str(reasons).split(". ") if r.strip())
        if reasons
        else (),
        errors=tuple(errors),
        raw=raw,
    )
