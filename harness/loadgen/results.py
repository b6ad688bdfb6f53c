"""Where results go, how they are written, and what a LoadGen run reported.

One function, :func:`run_dir`, computes every output path; the tree mirrors an MLPerf
submission: ``results/<system>/<model>/<scenario>/performance/run_1`` and
``.../<scenario>/accuracy``. A run writes into a staging directory beside its final place
and is moved there only when it succeeded; a failed run is kept as ``<dir>.failed-<time>``
(an interrupted one as ``<dir>.interrupted-<time>``) with a note saying why, so its logs are
never lost and never mistaken for a result. A replaced result goes to ``<scenario>/history/``.
Runs into one folder are serialised by a lock file.
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

from filelock import FileLock, Timeout

from common.errors import HarnessError
from common.files import slug, write_text_atomic
from harness.loadgen import layout

DIR_MODE = 0o755


def run_dir(results_root: Path, system: str, model: str, scenario: str, mode: str) -> Path:
    """Final directory of a run: ``performance/run_1`` or ``accuracy``."""
    base = Path(results_root) / slug(system) / slug(model) / scenario
    return layout.performance_run(base) if mode == "performance" else base / layout.ACCURACY


class RunBusyError(HarnessError):
    """Another run is writing into the same results folder."""


def _stamp() -> str:
    """A time stamp for folder names, unique per process: ``20261125-213000-123456-p4242``."""
    now = time.time()
    return (f"{time.strftime('%Y%m%d-%H%M%S', time.localtime(now))}-"
            f"{int(now % 1 * 1e6):06d}-p{os.getpid()}")


def _free_name(path: Path) -> Path:
    """``path``, or ``path-2``, ``path-3``... whichever does not exist yet."""
    candidate, number = path, 1
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.name}-{number}")
    return candidate


def history_dir(final: Path) -> Path:
    """Where replaced results of ``final`` go: ``<scenario>/history/`` beside the modes."""
    scenario_dir = final.parent.parent if final.name.startswith("run_") else final.parent
    return scenario_dir / "history"


class StagedRun:
    """A staging directory that becomes ``final`` on :meth:`commit`, or is kept as failed or
    interrupted (:meth:`keep`).

    It holds an exclusive lock on ``final`` from creation to :meth:`release`: a second run
    into the same folder is refused, never interleaved. Under the lock, staging folders left
    by a killed run are kept as ``<final>.killed-<time>`` with a note, and leftover temporary
    files are removed. A result that ``commit`` replaces is moved to :func:`history_dir`.
    """

    def __init__(self, final: Path) -> None:
        self.final = Path(final)
        try:
            self.final.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise HarnessError(f"cannot create the results folder {self.final.parent}: "
                               f"{exc.strerror or exc}") from None
        lock_path = self.final.parent / f".{self.final.name}.lock"
        self._lock = FileLock(str(lock_path))
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            raise RunBusyError(
                f"another run is writing {self.final} now (it holds {lock_path}); wait for it "
                "to finish, or give this run another --system or --results-dir"
            ) from None
        except OSError as exc:  # a read-only results folder
            raise HarnessError(f"cannot write in {self.final.parent}: "
                               f"{exc.strerror or exc}") from None
        try:
            self.recovered = self._recover_orphans()
            self.path = Path(tempfile.mkdtemp(dir=self.final.parent,
                                              prefix=f".{self.final.name}.staging-"))
            os.chmod(self.path, DIR_MODE)
        except OSError as exc:
            self.release()
            raise HarnessError(f"cannot write in {self.final.parent}: "
                               f"{exc.strerror or exc}") from None

    def _recover_orphans(self) -> list[Path]:
        """Under the lock, any staging folder of this target belongs to a dead run."""
        kept = []
        parent, name = self.final.parent, self.final.name
        for orphan in sorted(parent.glob(f".{name}.staging-*")):
            note = ("This run's process ended before the run finished (it was killed, or the "
                    "machine stopped); its logs are as it left them.\n")
            try:
                write_text_atomic(orphan / "FAILED.txt", note)
            except OSError:
                pass
            target = _free_name(self.final.with_name(f"{name}.killed-{_stamp()}"))
            os.replace(orphan, target)
            kept.append(target)
        for leftover in parent.glob(f".{name}.old-*"):  # a commit cut short
            shutil.rmtree(leftover, ignore_errors=True)
        for temp in parent.glob(".*.tmp"):  # atomic writes cut short
            temp.unlink(missing_ok=True)
        return kept

    def commit(self) -> Path:
        """Put this run at ``final``; a result already there moves to the history folder."""
        if self.final.exists():
            history = history_dir(self.final)
            history.mkdir(parents=True, exist_ok=True)
            mode = self.final.parent.name if self.final.name.startswith("run_") else ""
            label = f"{mode}-{self.final.name}" if mode else self.final.name
            os.replace(self.final, _free_name(history / f"{label}-replaced-{_stamp()}"))
        os.replace(self.path, self.final)
        self.release()
        return self.final

    def keep(self, reason: str, kind: str = "failed") -> Path:
        """Keep the logs as ``<final>.<kind>-<time>`` with ``FAILED.txt`` (or
        ``INTERRUPTED.txt``) saying why; best effort on a full or read-only disk."""
        note = "INTERRUPTED.txt" if kind == "interrupted" else "FAILED.txt"
        kept = self.path
        try:
            write_text_atomic(self.path / note, reason.rstrip() + "\n")
        except OSError:
            pass  # a full disk: the folder name still says what happened
        try:
            kept = _free_name(self.final.with_name(f"{self.final.name}.{kind}-{_stamp()}"))
            os.replace(self.path, kept)
        except OSError:
            kept = self.path
        self.release()
        return kept

    def fail(self, reason: str) -> Path:
        """Keep the logs under a name that says the run failed, with the reason beside them."""
        return self.keep(reason, "failed")

    def release(self) -> None:
        """Let other runs write into ``final`` again."""
        if self._lock.is_locked:
            self._lock.release()


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
            lines.append(harness_guard_text(error) or f"LoadGen error: {error}")
        return lines


OVERLOAD_MARK = "Too many outstanding queries"


def harness_guard_text(error: str) -> str | None:
    """LoadGen's error when the harness's own Server overload guard ended the test
    (``server_max_async_queries``, harness.loadgen.limits), said as what it is."""
    if OVERLOAD_MARK not in error:
        return None
    return ("stopped by the harness's overload guard (not a crash): more queries were "
            "outstanding than 2 s of the target rate, so the system could not keep up with "
            "this target QPS and the test was ended early (LoadGen: " + error.strip() + ")")


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


MLLOG_MARKER = ":::MLLOG"


def mllog_entries(text: str):
    """The entries of a LoadGen detail log (``:::MLLOG {json}`` lines), in order, as
    ``(line number, entry)``; ``entry`` is None for a marked line that is not a JSON object
    with a ``key`` (each reader decides whether that is an error)."""
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.startswith(MLLOG_MARKER):
            continue
        try:
            entry = json.loads(line[len(MLLOG_MARKER):])
        except (ValueError, RecursionError):  # not JSON, or nested past Python's stack
            entry = None
        if not isinstance(entry, dict) or "key" not in entry:
            entry = None
        yield number, entry


def first_value(values: dict[str, Any], key: str, value: Any) -> None:
    """Keep the first value of a key logged more than once: the rule of MLCommons' own
    ``tools/submission/log_parser.py`` ("choosing the first one"), which the submission
    checker reads logs with. Every reader of a detail log here applies it."""
    values.setdefault(key, value)


def parse_detail_log(path: Path, scenario: str, mode: str) -> LoadGenResult:
    """Read ``mlperf_log_detail.txt`` (``:::MLLOG {json}`` lines) into a result; a log whose
    figures are not what LoadGen writes (a word where a number goes) is a one-line
    HarnessError naming it."""
    try:
        return _parse_detail_log(path, scenario, mode)
    except (TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise HarnessError(f"{path}: not a detail log as LoadGen writes it ({exc})") from None


def _parse_detail_log(path: Path, scenario: str, mode: str) -> LoadGenResult:
    raw: dict[str, Any] = {}
    errors: list[str] = []
    if path.is_file():
        for _, entry in mllog_entries(path.read_text(encoding="utf-8", errors="replace")):
            if entry is None or not isinstance(entry["key"], str):
                continue
            first_value(raw, entry["key"], entry.get("value"))
            metadata = entry.get("metadata")
            if isinstance(metadata, dict) and metadata.get("is_error"):
                errors.append(f"{entry['key']}: {entry.get('value')}")
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
