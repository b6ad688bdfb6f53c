"""Submissions end to end with LoadGen (each test in its own process): a short-run tree from
the null backend and what the checker says of it, and TEST01 against a backend that answers
otherwise in performance mode."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from backends import BackendSettings
from backends.null import NullBackend
from harness.cli import main
from harness.runner import RunConfig
from harness.submission.checker import ERROR, LOGGED, UNCHECKED, check_submission
from harness.submission.rescore import squad_rescorer
from harness.submission.runs import run_compliance
from harness.submission.tree import SubmissionConfig, build_submission
from tests.helpers import FAST_CONF, isolated, squad_data

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


class ShiftedNullBackend(NullBackend):
    """The null backend's answers, three tokens later: a backend that answers otherwise."""

    def predict(self, batch):
        start, end = super().predict(batch)
        return np.roll(start, 3, axis=1), np.roll(end, 3, axis=1)


def _compliance_in_a_fresh_process(config: RunConfig, backend_target: str | None):
    import backends

    if backend_target is not None:  # this process's "null" answers otherwise
        backends.REGISTRY["null"] = dataclasses.replace(backends.REGISTRY["null"],
                                                        target=backend_target)
    return run_compliance(config, "TEST01", "bert-99")


def _spawned(function, *args, timeout_s: float = 180):
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(function, *args).result(timeout=timeout_s)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, squad_dir: Path) -> dict:
    root = tmp_path_factory.mktemp("submission")
    model = root / "null-model.onnx"
    model.write_bytes(b"placeholder")
    return {"root": root, "model": model, "squad": squad_dir}


def test_test01_fails_a_backend_that_answers_otherwise_in_performance_mode(workspace) -> None:
    root = workspace["root"] / "test01"
    root.mkdir()
    conf = root / "user.conf"
    conf.write_text(FAST_CONF)
    config = RunConfig(backend="null", model=str(workspace["model"]), system="sys",
                       user_conf=conf, data=squad_data(root, workspace["squad"], 100),
                       results_dir=root / "results", progress=False, batch_size=4)
    isolated(config)  # the submission's performance run
    isolated(dataclasses.replace(config, mode="accuracy"))
    folder, checks = _spawned(_compliance_in_a_fresh_process, config,
                              f"{__name__}:ShiftedNullBackend")
    accuracy = checks[0]
    assert accuracy.kind == "accuracy" and not accuracy.passed
    text = (folder / "verify_accuracy.txt").read_text()
    assert text.rstrip().splitlines()[-1].startswith("TEST FAIL") and "TEST PASS" not in text
    assert "their F1 differs" in text or "at F1 0" in text
    # the same test against the backend as it is passes
    folder, checks = _spawned(_compliance_in_a_fresh_process, config, None)
    assert checks[0].passed, checks[0].text
    assert (folder / "performance/run_1/audit.config").is_file()
    settings = json.loads((folder / "performance/run_1/settings.json").read_text())
    assert settings["rules"]["audit"]["name"] == "TEST01"
    detail = (folder / "performance/run_1/mlperf_log_detail.txt").read_text()
    assert '"effective_accuracy_log_rng_seed", "value": 720381539243781796' in detail
    # and the compliance command says so in its exit status
    result = subprocess.run(
        [sys.executable, "-m", "harness", "compliance", "TEST05", "--rules", "loadgen",
         "--backend", "null", "--model", str(workspace["model"]), "--system", "sys",
         "--user-conf", str(conf), "--results-dir", str(root / "results"),
         "--batch-size", "4", "--no-progress", "--max-examples", "100",
         "--data-dir", str(root / "squad"), "--cache-dir", str(root / "cache"),
         "--mirror", str(workspace["squad"]), "--no-download"],
        cwd=REPO, capture_output=True, text=True, timeout=180)
    verdict = (root / "results/compliance/TEST05/sys/null-model/Offline/"
               "verify_performance.txt").read_text()
    assert result.returncode == (0 if "TEST PASS" in verdict else 1), result.stderr
    assert "TEST05: PASS" in result.stdout or "TEST05: FAIL" in result.stdout
    assert '"effective_qsl_rng_seed", "value": 313588358309856706' in (
        root / "results/compliance/TEST05/sys/null-model/Offline/performance/run_1/"
        "mlperf_log_detail.txt").read_text()


def test_short_run_submission_from_the_null_backend(workspace) -> None:
    root = workspace["root"] / "tree"
    root.mkdir()
    conf = root / "user.conf"
    # the null backend sleeping 50 ms a batch of 8 does about 160 samples/s
    conf.write_text("bert.Offline.target_qps = 160\n")
    template = RunConfig(
        backend="null", model=str(workspace["model"]), system="sys", batch_size=8,
        backend_settings=BackendSettings(options={"delay_ms": 50}), user_conf=conf,
        short_run=True, data=squad_data(root, workspace["squad"], 40),
        results_dir=root / "results", progress=False, rules="v1.0")
    config = SubmissionConfig(run=template, out=root / "submission", submitter="org")
    lines: list[str] = []
    outcome = build_submission(config, lines.append)
    base = root / "submission/closed/org"
    assert outcome.submitter_dir == base
    where = "sys/bert-99/Offline"
    for name in ("systems/sys.json", "code/bert-99/null/README.md",
                 f"measurements/{where}/sys_null_Offline.json",
                 f"measurements/{where}/mlperf.conf", f"measurements/{where}/user.conf",
                 f"measurements/{where}/README.md",
                 f"results/{where}/performance/run_1/mlperf_log_detail.txt",
                 f"results/{where}/accuracy/accuracy.txt",
                 f"compliance/{where}/TEST01/verify_accuracy.txt",
                 f"compliance/{where}/TEST01/verify_performance.txt",
                 f"compliance/{where}/TEST01/accuracy/mlperf_log_accuracy.json",
                 f"compliance/{where}/TEST05/verify_performance.txt",
                 f"compliance/{where}/TEST05/performance/run_1/mlperf_log_summary.txt",
                 f"compliance/{where}/README.md"):
        assert (base / name).is_file(), name
    assert "TEST04" in (base / f"compliance/{where}/README.md").read_text()
    assert (root / "submission-full-logs/closed/org/results" / where /
            "accuracy/mlperf_log_accuracy.json").is_file()
    assert not list((root / "submission").glob(".*"))  # no staging folder left
    report = check_submission(root / "submission", root / "submission-full-logs",
                              rescore=squad_rescorer(template.data))
    assert not any("scores" in f.message for f in report.findings), report.text()
    found = {(f.official, f.message.split(":")[0].split(" ")[0]) for f in report.failures}
    # only what the rules demand of short runs on 40 questions with no real model
    assert {kind for kind, _ in found} <= {ERROR, LOGGED, UNCHECKED}, report.text()
    messages = " | ".join(f.message for f in report.findings)
    for expected in ("below the bert-99 target", "min_duration 10000 ms",
                     "samples: v1.0 requires at least 24576", "performance_sample_count",
                     "the accuracy run's QSL held"):
        assert expected in messages, report.text()
    assert not any("compliance" in f.path for f in report.failures), report.text()
    assert main(["check", str(root / "submission")]) == 1
    assert report.results[0].compliance == {"TEST01": "PASS", "TEST05": "PASS"}
    # an F1 that is not the full log's score fails (--full-logs scores each log again)
    accuracy_txt = base / f"results/{where}/accuracy/accuracy.txt"
    stated = accuracy_txt.read_text()
    f1 = report.results[0].f1
    accuracy_txt.write_text(stated.replace(f'"f1": {f1}', '"f1": 95.0', 1))
    edited = check_submission(root / "submission", root / "submission-full-logs",
                              rescore=squad_rescorer(template.data))
    [wrong] = [f for f in edited.failures if "but the full accuracy log" in f.message]
    assert f"scores {f1:.4f}" in wrong.message and wrong.official == UNCHECKED
    accuracy_txt.write_text(stated)
    # a second build reuses every run
    lines.clear()
    build_submission(config, lines.append)
    assert sum("reusing" in line for line in lines) == 4, lines
