"""The checker on real, accepted MLPerf submissions (shared/mlperf-results, see its README)
and on mutated copies of them.

Each mutation's ``official`` column is what the round's MLCommons checker did on the same
mutated tree (v1.0.1's checker, ``--version v1.0``, run by hand: see docs/submission.md);
the harness must fail every one, with the tag saying that.
"""

from __future__ import annotations

import json
import re
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.cli import main
from harness.submission import tree
from harness.submission.checker import check_submission
from harness.submission.findings import ERROR, FAIL, LOGGED, UNCHECKED, WARN

SAMPLE = Path(__file__).resolve().parents[1] / "shared" / "mlperf-results"


@pytest.fixture(scope="module")
def real_trees(tmp_path_factory) -> dict[str, Path]:
    trees = {}
    for rules in ("v1.0", "v1.1"):
        root = tmp_path_factory.mktemp(rules)
        with tarfile.open(SAMPLE / f"{rules}.tar.xz") as archive:
            archive.extractall(root, filter="data")
        trees[rules] = root
    return trees


def copy_of(tree: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tree, tmp_path / "tree", symlinks=True))


def test_real_v1_1_trees_pass_with_no_fail(real_trees) -> None:
    report = check_submission(real_trees["v1.1"], rules="v1.1")
    assert report.ok, report.text()
    assert len(report.results) == 8  # as many as the official r1.1 checker accepts
    # Dell's MaxQ description has fields the checker does not know: the official warns
    assert any("psu_details" in w.message for w in report.warnings)


def test_real_v1_0_trees_fail_only_where_the_official_checker_logs_an_error(real_trees):
    report = check_submission(real_trees["v1.0"], rules="v1.0")
    assert len(report.results) == 12
    # the official v1.0.1 checker: "closed/DellEMC/compliance/R7525_A100-PCIe-40GBx2_TRT/
    # bert-99/Server/TEST01 has no accuracy directory" (it keeps the result)
    [failure] = report.failures
    assert failure.path.endswith("R7525_A100-PCIe-40GBx2_TRT/bert-99/Server/TEST01")
    assert "no accuracy folder" in failure.message and failure.official == LOGGED
    assert main(["check", str(real_trees["v1.0"]), "--rules", "v1.0"]) == 1


def test_what_the_issue_found_on_real_trees_is_accepted(real_trees) -> None:
    report = check_submission(real_trees["v1.0"], rules="v1.0")
    text = report.text()
    # Intel's offline/ and server/ folders are checked as Offline and Server
    intel = [r for r in report.results if "/Intel/" in r.path]
    assert sorted(r.scenario for r in intel) == ["Offline", "Server"]
    assert all(r.valid and r.compliance == {"TEST01": "PASS", "TEST05": "PASS"} for r in intel)
    # TEST01 passed on accuracy (verify_accuracy.txt says TEST FAIL; F1s within 1%)
    nvidia = [r for r in report.results if "A100-PCIex8_TRT/bert-99/Offline" in r.path]
    assert nvidia[0].compliance["TEST01"] == "PASS"
    assert "spl.txt" not in text  # MaxQ power files are where they belong
    assert "implementation ''" not in text
    assert "whole number" not in text  # DellEMC's "number_of_nodes": "1"


def test_a_round_is_held_to_its_own_seeds(real_trees) -> None:
    report = check_submission(real_trees["v1.0"], rules="v1.1")
    seeds = [f for f in report.failures if "seed" in f.message]
    assert len(seeds) == 12 * 3 and all(f.official == LOGGED for f in seeds)
    assert "v1.1 seed is 1624344308455410291" in seeds[0].message


# ---- mutations ------------------------------------------------------------------------------

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
        "is not UTF-8 text", "stops with a Python exception", "crash (UnicodeDecodeError)"),
}


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_each_mutation_of_a_real_tree_fails(real_trees, tmp_path: Path, name: str) -> None:
    root = copy_of(real_trees["v1.0"], tmp_path)
    mutate, fragment, official, _ = MUTATIONS[name]
    mutate(root)
    report = check_submission(root, rules="v1.0")
    matching = [f for f in report.failures if fragment in f"{f.path}: {f.message}"]
    assert matching, report.text()
    assert matching[0].level == FAIL and matching[0].official == official, report.text()


def test_a_hash_line_that_is_not_the_full_logs(real_trees, tmp_path: Path) -> None:
    root = copy_of(real_trees["v1.0"], tmp_path)
    full = tmp_path / "full" / OFFLINE / "accuracy" / "mlperf_log_accuracy.json"
    full.parent.mkdir(parents=True)
    full.write_text("[]\n")  # not the log NVIDIA hashed
    report = check_submission(root, tmp_path / "full", rules="v1.0")
    [wrong] = [f for f in report.failures if "is not the sha256 of the full log" in f.message]
    assert wrong.path == f"{OFFLINE}/accuracy/mlperf_log_accuracy.json"
    # the other full logs are not there: said, not failed
    assert any("full accuracy log is not there" in w.message for w in report.warnings)


def test_a_failed_test01_performance_is_a_warning_as_the_official_ignores_it(
        real_trees, tmp_path: Path) -> None:
    root = copy_of(real_trees["v1.0"], tmp_path)
    edit(root / COMPLIANCE / "TEST01/verify_performance.txt", "TEST PASS", "TEST FAIL")
    report = check_submission(root, rules="v1.0")
    [warning] = [w for w in report.findings if "TEST01 did not pass" in w.message]
    assert warning.level == WARN and "last compliance test" in warning.official


def test_submission_exits_1_when_the_check_of_its_tree_fails(real_trees, monkeypatch,
                                                             capsys) -> None:
    built = SimpleNamespace(root=real_trees["v1.0"], submitter_dir=real_trees["v1.0"],
                            full_logs=None, scenarios=(), defaulted_fields=())
    monkeypatch.setattr(tree, "build_submission", lambda config: built)
    assert main(["submission", "--short", "--backend", "null", "--rules", "v1.0"]) == 1
    out = capsys.readouterr().out
    assert "FAIL closed/DellEMC" in out and "a short run (--short, SHORT=1) always fails" in out
    built.root = real_trees["v1.1"]
    assert main(["submission", "--backend", "null", "--rules", "v1.1"]) == 0
