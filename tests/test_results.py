"""Results: paths, staging, and reading LoadGen's detail log."""

from __future__ import annotations

import json
from pathlib import Path

from harness.loadgen.results import StagedRun, parse_detail_log, run_dir


def _detail(path: Path, entries: dict) -> Path:
    lines = ["noise that is not an MLLOG line"]
    for key, value in entries.items():
        record = {"key": key, "value": value, "metadata": {"is_error": key.startswith("error")}}
        lines.append(":::MLLOG " + json.dumps(record))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_run_dir_mirrors_an_mlperf_submission(tmp_path: Path) -> None:
    perf = run_dir(tmp_path, "My System (2c)", "bert-99", "Offline", "performance")
    assert perf == tmp_path / "my-system-2c/bert-99/Offline/performance/run_1"
    assert run_dir(tmp_path, "s", "m", "Server", "accuracy") == tmp_path / "s/m/Server/accuracy"


def test_offline_result_and_reason_text(tmp_path: Path) -> None:
    log = _detail(tmp_path / "d.txt", {
        "result_validity": "INVALID", "result_samples_per_second": 12.5,
        "result_invalid_reason": "Increase expected QPS. ",
        "result_99.00_percentile_latency_ns": 2e9,
        "error_invalid_config": "Multiple conf files are used.",
    })
    result = parse_detail_log(log, "Offline", "performance")
    assert result.valid is False and result.samples_per_second == 12.5
    assert result.invalid_reasons == ("Increase expected QPS",)
    assert result.latencies_ns["99.00"] == 2e9
    assert result.errors == ("error_invalid_config: Multiple conf files are used.",)
    assert "latency p99: 2,000.00 ms" in result.summary_lines()


def test_invalid_without_reason_names_the_unmet_checks(tmp_path: Path) -> None:
    log = _detail(tmp_path / "d.txt", {
        "result_validity": "INVALID", "result_min_duration_met": True,
        "early_stopping_met": False, "early_stopping_result": " * Only processed 15 queries.",
        "result_qps_with_loadgen_overhead": 2.0, "effective_samples_per_query": 8,
    })
    result = parse_detail_log(log, "MultiStream", "performance")
    assert result.invalid_reasons == ("early stopping not met: Only processed 15 queries.",)
    assert result.samples_per_second == 16.0  # 2 queries/s of 8 samples


def test_staged_run_commits_or_keeps_failed_logs(tmp_path: Path) -> None:
    final = tmp_path / "Offline/performance/run_1"
    staged = StagedRun(final)
    (staged.path / "log.txt").write_text("ok")
    assert not final.exists()  # nothing at the final place until it succeeded
    assert staged.commit() == final and (final / "log.txt").read_text() == "ok"
    failing = StagedRun(final)
    (failing.path / "log.txt").write_text("partial")
    kept = failing.fail("backend exploded")
    assert (final / "log.txt").read_text() == "ok"  # the good result is untouched
    assert kept.name.startswith("run_1.failed-")
    assert "backend exploded" in (kept / "FAILED.txt").read_text()
    assert (kept / "log.txt").read_text() == "partial"
