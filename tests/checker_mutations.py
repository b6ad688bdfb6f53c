"""Mutations of a real submission tree (the v1.0 sample of shared/mlperf-results): what each
breaks, the FAIL line the harness gives, and what MLCommons' v1.0.1 checker did on the same
mutated tree (``benchmarks/bench_checker.py --mutations`` runs it again)."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from harness.submission.findings import CRASHES, ERROR, LOGGED, UNCHECKED

NV = "closed/NVIDIA"
SERVER = f"{NV}/results/A100-PCIex8_TRT/bert-99/Server"
OFFLINE = f"{NV}/results/A100-PCIex8_TRT/bert-99/Offline"
COMPLIANCE = f"{NV}/compliance/A100-PCIex8_TRT/bert-99/Offline"


def set_logged(path: Path, key: str, value) -> None:
    """Give ``key`` another value in a LoadGen detail log (its first entry)."""
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines):
        if line.startswith(":::MLLOG") and f'"key": "{key}"' in line:
            entry = json.loads(line[len(":::MLLOG"):])
            entry["value"] = value
            lines[number] = ":::MLLOG " + json.dumps(entry)
            break
    else:
        raise AssertionError(f"{key} is not in {path}")
    path.write_text("\n".join(lines) + "\n")


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert re.search(old, text), (old, path)
    path.write_text(re.sub(old, new, text, count=1))


# name -> (mutation, fragment of the FAIL line, its tag, what the official checker did)
MUTATIONS: dict[str, tuple[Callable[[Path], None], str, str, str]] = {
    "accuracy below target": (
        lambda r: edit(r / OFFLINE / "accuracy/accuracy.txt", r'"f1": [\d.]+', '"f1": 89.9651'),
        "F1 89.9651 is below the bert-99 target 89.9653", ERROR, "ERROR: accuracy not valid"),
    "missing summary": (
        lambda r: (r / OFFLINE / "performance/run_1/mlperf_log_summary.txt").unlink(),
        "missing mlperf_log_summary.txt", LOGGED, "ERROR: file list mismatch"),
    "TEST05 marked failed": (
        lambda r: edit(r / COMPLIANCE / "TEST05/verify_performance.txt", "TEST PASS",
                       "TEST FAIL"),
        "TEST05 did not pass", LOGGED, "ERROR: compliance dir has issues"),
    "short minimum duration": (
        lambda r: set_logged(r / OFFLINE / "performance/run_1/mlperf_log_detail.txt",
                             "effective_min_duration_ms", 60000),
        "min_duration 60000 ms", LOGGED, "ERROR: test duration lesser than 600s"),
    "missing accuracy log": (
        lambda r: (r / OFFLINE / "accuracy/mlperf_log_accuracy.json").unlink(),
        "mlperf_log_accuracy.json: missing", ERROR, "ERROR: accuracy not valid"),
    "missing TEST01": (
        lambda r: shutil.rmtree(r / COMPLIANCE / "TEST01"),
        "missing: TEST01", LOGGED, "ERROR: Missing TEST01 in compliance dir"),
    "too few queries": (
        lambda r: set_logged(r / SERVER / "performance/run_1/mlperf_log_detail.txt",
                             "effective_min_query_count", 1000),
        "min_query_count 1000", LOGGED, "ERROR: minimum Query Count not met"),
    "p99 over the bound": (
        lambda r: set_logged(r / SERVER / "performance/run_1/mlperf_log_detail.txt",
                             "result_99.00_percentile_latency_ns", 140_000_000),
        "99th percentile latency 140000000 ns is over", LOGGED,
        "ERROR: Latency constraint not met"),
    "wrong RNG seed": (
        lambda r: set_logged(r / OFFLINE / "performance/run_1/mlperf_log_detail.txt",
                             "effective_qsl_rng_seed", 1),
        "qsl_rng_seed is 1, the v1.0 seed", LOGGED, "ERROR: qsl_rng_seed is wrong"),
    "TEST05 rate edited to differ": (
        lambda r: set_logged(r / COMPLIANCE / "TEST05/performance/run_1/mlperf_log_detail.txt",
                             "result_samples_per_second", 15000.0),
        "says TEST PASS, but the logs in the tree say", UNCHECKED, "nothing"),
    "summary INVALID over a VALID detail log": (
        lambda r: edit(r / OFFLINE / "performance/run_1/mlperf_log_summary.txt",
                       "Result is : VALID", "Result is : INVALID"),
        "the summary's validity is INVALID, the detail log's VALID", UNCHECKED, "nothing"),
    "summary metric edited": (
        lambda r: edit(r / OFFLINE / "performance/run_1/mlperf_log_summary.txt",
                       r"Samples per second\s*: [\d.]+", "Samples per second : 30000"),
        "the summary's metric is 30000", UNCHECKED, "nothing"),
    "binary system description": (
        lambda r: (r / NV / "systems/A100-PCIex8_TRT.json").write_bytes(b"\xff\xfe\x00{" * 99),
        "is not UTF-8 text", CRASHES, "crash (UnicodeDecodeError)"),
}
