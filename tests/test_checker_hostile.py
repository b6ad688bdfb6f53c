"""The checker survives any tree: hostile bytes in any file it reads are a FAIL line naming
the file, never a traceback, a hang, or an unbounded read (issue 25, item 3)."""

from __future__ import annotations

import json
import os
import tarfile
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.submission.checker import check_submission
from harness.submission.logs import DetailLog, Summary
from harness.submission.reading import TreeFileError, read_json_object

SAMPLE = Path(__file__).resolve().parents[1] / "shared" / "mlperf-results"
INTEL = "closed/Intel"
RESULT = f"{INTEL}/results/1-node-2S-ICX-MXNet-INT8/bert-99/offline"
COMPLIANCE = f"{INTEL}/compliance/1-node-2S-ICX-MXNet-INT8/bert-99/offline"
# the files of one real result that the checker parses
PARSED = (f"{INTEL}/systems/1-node-2S-ICX-MXNet-INT8.json",
          f"{INTEL}/measurements/1-node-2S-ICX-MXNet-INT8/bert-99/offline/"
          "1-node-2S-ICX-MXNet-INT8_mxnet_Offline.json",
          f"{RESULT}/accuracy/accuracy.txt", f"{RESULT}/accuracy/mlperf_log_detail.txt",
          f"{RESULT}/accuracy/mlperf_log_accuracy.json",
          f"{RESULT}/performance/run_1/mlperf_log_detail.txt",
          f"{RESULT}/performance/run_1/mlperf_log_summary.txt",
          f"{COMPLIANCE}/TEST01/verify_accuracy.txt",
          f"{COMPLIANCE}/TEST01/verify_performance.txt",
          f"{COMPLIANCE}/TEST05/performance/run_1/mlperf_log_detail.txt")


@pytest.fixture(scope="module")
def intel_tree(tmp_path_factory) -> Path:
    """Intel's v1.0 BERT submission alone (two results), from the real sample."""
    root = tmp_path_factory.mktemp("intel")
    with tarfile.open(SAMPLE / "v1.0.tar.xz") as archive:
        members = [m for m in archive.getmembers() if m.name.startswith(INTEL)]
        archive.extractall(root, members=members, filter="data")
    assert check_submission(root).ok
    return root


def _check_with(root: Path, relative: str, data: bytes):
    path = root / relative
    original = path.read_bytes()
    try:
        path.write_bytes(data)
        return check_submission(root)
    finally:
        path.write_bytes(original)


hostile_bytes = st.one_of(
    st.binary(max_size=2048),
    st.text(max_size=512).map(str.encode),
    st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                 lambda inner: st.lists(inner, max_size=4)
                 | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                 max_leaves=20).map(lambda value: json.dumps(value).encode()),
)
# detail-log entries with any JSON value where LoadGen writes numbers and strings
mllog_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats()
                            | st.text(max_size=12),
                            lambda inner: st.lists(inner, max_size=3), max_leaves=6)
KEYS = ("effective_scenario", "result_validity", "effective_min_duration_ms",
        "effective_samples_per_query", "effective_min_query_count", "result_samples_per_second",
        "effective_performance_sample_count", "effective_qsl_rng_seed", "result_invalid_reason")


@settings(max_examples=60, deadline=5000,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.sampled_from(PARSED), data=hostile_bytes)
def test_hostile_bytes_in_any_parsed_file_are_a_finding_never_a_crash(intel_tree, which, data):
    report = _check_with(intel_tree, which, data)
    text = report.text()  # renders whatever was found
    assert "Traceback" not in text


@settings(max_examples=60, deadline=5000,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.dictionaries(st.sampled_from(KEYS), mllog_values, min_size=1))
def test_a_detail_log_with_any_values_is_checked_without_a_crash(intel_tree, values):
    lines = [":::MLLOG " + json.dumps({"key": key, "value": value, "metadata": {}})
             for key, value in values.items()]
    original = (intel_tree / RESULT / "performance/run_1/mlperf_log_detail.txt").read_text()
    report = _check_with(intel_tree, f"{RESULT}/performance/run_1/mlperf_log_detail.txt",
                         ("\n".join(lines) + "\n" + original).encode())
    report.text()
    # the first value of a repeated key counts: the edited ones, so the checker notices
    if values.get("result_validity") not in (None, "VALID"):
        assert not report.ok


@given(data=hostile_bytes)
@settings(max_examples=100, deadline=2000)
def test_parsers_answer_any_bytes_with_a_value_or_one_error(tmp_path_factory, data) -> None:
    path = tmp_path_factory.mktemp("p") / "f"
    path.write_bytes(data)
    DetailLog.read(path)  # a detail log of junk is a log with no values
    Summary.read(path)
    try:
        read_json_object(path)
    except TreeFileError as exc:
        assert "\n" not in str(exc)


def test_a_200000_deep_json_is_one_fail_line(intel_tree) -> None:
    report = _check_with(intel_tree, PARSED[0], b"[" * 200_000 + b"]" * 200_000)
    [failure] = report.failures
    assert failure.path == PARSED[0] and "nested too deeply" in failure.message
    report = _check_with(intel_tree, f"{RESULT}/performance/run_1/mlperf_log_detail.txt",
                         b':::MLLOG {"key": ' + b"[" * 200_000 + b"\n")
    assert any("not a LoadGen" in f.message for f in report.failures)


def test_a_binary_system_description_is_one_fail_line(intel_tree) -> None:
    report = _check_with(intel_tree, PARSED[0], bytes(range(256)) * 4)
    [failure] = report.failures
    assert failure.path == PARSED[0] and "not UTF-8" in failure.message


def test_an_8_gib_accuracy_log_is_not_read(intel_tree) -> None:
    path = intel_tree / RESULT / "accuracy/mlperf_log_accuracy.json"
    original = path.read_bytes()
    try:
        with open(path, "r+b") as handle:
            handle.truncate(8 << 30)  # sparse: 8 GiB that take no disk
        tracemalloc.start()
        report = check_submission(intel_tree)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    finally:
        path.write_bytes(original)
        os.truncate(path, len(original))
    assert any("not truncated" in f.message for f in report.failures)
    assert peak < 64 << 20, peak


def test_huge_text_files_are_refused_unread(intel_tree) -> None:
    path = intel_tree / RESULT / "accuracy/accuracy.txt"
    original = path.read_bytes()
    try:
        with open(path, "r+b") as handle:
            handle.truncate(8 << 30)
        report = check_submission(intel_tree)
    finally:
        path.write_bytes(original)
        os.truncate(path, len(original))
    [failure] = [f for f in report.failures if f.path.endswith("accuracy/accuracy.txt")]
    assert "over 1,048,576" in failure.message


def test_a_folder_where_a_file_belongs_is_one_fail_line(intel_tree, tmp_path: Path) -> None:
    path = intel_tree / PARSED[0]
    original = path.read_bytes()
    path.unlink()
    path.mkdir()
    try:
        report = check_submission(intel_tree)
    finally:
        path.rmdir()
        path.write_bytes(original)
    [failure] = report.failures
    assert failure.path == PARSED[0] and "cannot be read" in failure.message
