"""LoadGen's logs as a submission reads them: detail-log values and errors, each scenario's
metric, and accuracy logs (responses by sample, sha256, the MLPerf truncation)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from common.files import file_sha256
from harness.loadgen.layout import ACCURACY_LOG, DETAIL_LOG, SUMMARY_LOG
from harness.loadgen.results import first_value, mllog_entries
from harness.loadgen.rules import MAX_ACCURACY_LOG_BYTES, TRUNCATE_KEEP_CHARS
from harness.submission.reading import DETAIL_LOG_LIMIT, TEXT_LIMIT, read_text

__all__ = ["ACCURACY_LOG", "DETAIL_LOG", "SUMMARY_LOG", "DetailLog", "Summary", "metric_value"]
TRUNCATION_MARK = "\n\n...\n\n"


@dataclasses.dataclass(frozen=True)
class DetailLog:
    """``mlperf_log_detail.txt``: the first value of each key (as MLCommons' log parser takes
    it), and the messages LoadGen flagged as errors and warnings."""

    path: Path
    values: dict[str, Any]
    errors: tuple[str, ...]
    warnings: tuple[str, ...]

    @classmethod
    def read(cls, path: Path) -> DetailLog:
        """Raises OSError when the file cannot be read, TreeFileError when it is over
        64 MiB; a marked line that is not a JSON entry is an error of the log."""
        values: dict[str, Any] = {}
        errors: list[str] = []
        warnings: list[str] = []
        text = read_text(Path(path), DETAIL_LOG_LIMIT)
        for number, entry in mllog_entries(text):
            metadata = entry.get("metadata") if entry is not None else None
            if entry is None or not isinstance(metadata or {}, dict):
                errors.append(f"line {number} is not a LoadGen log entry")
                continue
            key, value, metadata = str(entry["key"]), entry.get("value"), metadata or {}
            first_value(values, key, value)
            if metadata.get("is_error"):
                errors.append(f"{key}: {value}")
            elif metadata.get("is_warning"):
                warnings.append(f"{key}: {value}")
        return cls(Path(path), values, tuple(errors), tuple(warnings))

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    @property
    def valid(self) -> bool | None:
        validity = self.values.get("result_validity")
        return None if validity is None else validity == "VALID"

    @property
    def scenario(self) -> str | None:
        return self.values.get("effective_scenario")

    def invalid_reasons(self) -> str:
        reason = str(self.values.get("result_invalid_reason") or "").strip()
        unmet = [name for key, name in (("result_min_duration_met", "minimum duration"),
                                        ("result_min_queries_met", "minimum query count"),
                                        ("result_perf_constraints_met", "latency bound"),
                                        ("early_stopping_met", "early stopping"))
                 if self.values.get(key) is False]
        parts = [f"not met: {', '.join(unmet)}"] if unmet else []
        return "; ".join(parts + ([reason] if reason else [])) or "no reason given"


@dataclasses.dataclass(frozen=True)
class Metric:
    """A scenario's figure of merit, as MLPerf v1.0 reports and compares it."""

    key: str
    name: str
    higher_is_better: bool


METRICS = {
    "Offline": Metric("result_samples_per_second", "samples per second", True),
    "Server": Metric("result_scheduled_samples_per_sec", "scheduled samples per second", True),
    "SingleStream": Metric("result_90.00_percentile_latency_ns",
                           "90th percentile latency (ns)", False),
    "MultiStream": Metric("effective_samples_per_query", "samples per query", True),
}


def metric_value(log: DetailLog) -> float | None:
    """The log's figure of merit (samples/s, or ns for SingleStream); None when it has none
    or it is not a number."""
    metric = METRICS.get(str(log.scenario or ""))
    return _number(log.get(metric.key)) if metric else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if number == number and abs(number) != float("inf") else None


# The summary's line for each scenario's metric, as LoadGen prints it
SUMMARY_METRIC_LINES = {"Offline": "Samples per second",
                        "Server": "Scheduled samples per second",
                        "SingleStream": "90th percentile latency (ns)",
                        "MultiStream": "Samples per query"}


@dataclasses.dataclass(frozen=True)
class Summary:
    """``mlperf_log_summary.txt``: the ``name : value`` lines LoadGen prints (the first of
    each name)."""

    path: Path
    values: dict[str, str]

    @classmethod
    def read(cls, path: Path) -> Summary:
        """Raises OSError when the file cannot be read, TreeFileError when over 1 MiB."""
        values: dict[str, str] = {}
        for line in read_text(Path(path), TEXT_LIMIT).splitlines():
            name, colon, value = line.partition(":")
            if colon and name.strip() and not name.strip().startswith(("=", "*")):
                values.setdefault(" ".join(name.split()), value.strip())
        return cls(Path(path), values)

    @property
    def scenario(self) -> str | None:
        return self.values.get("Scenario", "").replace(" ", "") or None

    @property
    def valid(self) -> bool | None:
        verdict = self.values.get("Result is")
        return None if verdict is None else verdict == "VALID"

    def metric(self) -> float | None:
        line = SUMMARY_METRIC_LINES.get(self.scenario or "")
        return _number(self.values.get(line)) if line else None


def read_responses(path: Path) -> list[tuple[int, str]]:
    """(qsl_idx, hex data) of every entry of ``mlperf_log_accuracy.json``, in log order.

    Raises ValueError for a file that is not a LoadGen accuracy log.
    """
    try:
        entries = json.loads(Path(path).read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"{path}: not JSON ({exc})") from None
    if not isinstance(entries, list):
        raise ValueError(f"{path}: not a JSON list of LoadGen responses")
    responses = []
    for number, entry in enumerate(entries):
        if not (isinstance(entry, dict) and type(entry.get("qsl_idx")) is int
                and isinstance(entry.get("data"), str)):
            raise ValueError(f"{path}: entry {number} has no integer qsl_idx and data string")
        responses.append((entry["qsl_idx"], entry["data"]))
    return responses


def truncate_accuracy_log(source: Path, dest: Path) -> str:
    """Write ``source`` to ``dest`` the way MLCommons' ``truncate_accuracy_log.py`` leaves a
    submitted log: its first and last 4096 characters around a ``...`` line; a log already
    within 10 KiB is copied whole. Returns the sha256 of ``source`` (the ``hash=`` line)."""
    digest = file_sha256(source)
    data = Path(source).read_bytes()
    if len(data) > MAX_ACCURACY_LOG_BYTES:
        data = (data[:TRUNCATE_KEEP_CHARS] + TRUNCATION_MARK.encode()
                + data[-TRUNCATE_KEEP_CHARS:])
    Path(dest).parent.mkdir(parents=True, exist_ok=True)
    Path(dest).write_bytes(data)
    return digest
