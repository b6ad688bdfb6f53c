"""The checker on real, accepted MLPerf submissions (shared/mlperf-results, see its README)
and on mutated copies of them.

Each mutation's ``official`` column is what the round's MLCommons checker did on the same
mutated tree (v1.0.1's checker, ``--version v1.0``, run by hand: see docs/submission.md);
the harness must fail every one, with the tag saying that.
"""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.cli import main
from harness.submission import tree
from harness.submission.checker import check_submission
from harness.submission.findings import FAIL, LOGGED, WARN
from tests.checker_mutations import COMPLIANCE, MUTATIONS, OFFLINE, edit

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
