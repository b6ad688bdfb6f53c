"""MLPerf v1.0 submissions without LoadGen: the rules, the logs, TEST01/TEST05 verification,
the system description and the checker on synthetic trees (each failure kind, and a tree
that passes everything)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from common.errors import ConfigError
from harness.cli import _run_config, build_parser, main
from harness.loadgen import rules
from harness.loadgen.settings import resolved_user_conf
from harness.runner import RunConfig, execute
from harness.submission import compliance, runs, system_desc
from harness.submission.checker import check_submission
from harness.submission.findings import ERROR, FAIL, LOGGED, UNCHECKED, WARN, WARNING
from harness.submission.logs import DetailLog, read_responses, truncate_accuracy_log
from harness.submission.tree import read_description_file

V1_SEEDS = rules.V1_0_SEEDS.to_json()


# ---- rules --------------------------------------------------------------------------------


def test_v1_rules_are_user_conf_lines_in_the_form_loadgen_looks_up_first() -> None:
    offline = rules.conf_lines(rules.V1_0, "Offline", 10833, short_run=False)
    assert offline == ["bert.Offline.min_duration = 600000",
                       "bert.Offline.min_query_count = 24576",
                       "bert.Offline.target_latency_percentile = 90",
                       "bert.Offline.performance_sample_count_override = 10833"]
    server = rules.conf_lines(rules.V1_0, "Server", 10833, short_run=False)
    assert "bert.Server.min_query_count = 270336" in server
    assert "bert.Server.target_latency = 130" in server
    assert "bert.Server.target_latency_percentile = 99" in server
    single = rules.conf_lines(rules.V1_0, "SingleStream", 10833, short_run=False)
    assert "bert.SingleStream.min_query_count = 1024" in single
    # a short run keeps its short duration; a small QSL keeps its own sample count
    short = rules.conf_lines(rules.V1_0, "Offline", 50, short_run=True)
    assert not any("min_duration" in line or "min_query" in line or "sample_count" in line
                   for line in short)
    assert rules.conf_lines(rules.LOADGEN, "Offline", 10833, short_run=False) == []


def test_rules_lines_come_between_the_users_file_and_the_harness_lines(tmp_path: Path) -> None:
    conf = tmp_path / "user.conf"
    conf.write_text("bert.Offline.min_duration = 1000\n")
    text = resolved_user_conf(conf, "Offline", 100, True,
                              rules.conf_lines(rules.V1_0, "Offline", 100, True), rules.V1_0)
    user, rule, harness = (text.index(mark) for mark in
                           ("# --- from", "# --- rules v1.0", "# --- added by the harness"))
    assert user < rule < harness


def test_seeds_and_audits() -> None:
    assert rules.settings_overrides(rules.V1_0, None) == V1_SEEDS
    assert rules.settings_overrides(rules.V1_0, "TEST01") == V1_SEEDS
    assert rules.settings_overrides(rules.V1_0, "TEST05") == {
        "qsl_rng_seed": 313588358309856706, "sample_index_rng_seed": 471397156132239067,
        "schedule_rng_seed": 413914573387865862}
    assert rules.settings_overrides(rules.LOADGEN, None) == {}
    text = rules.audit_config_text("TEST01")
    for line in ("*.*.mode = 2", "*.*.accuracy_log_rng_seed = 720381539243781796",
                 "*.*.accuracy_log_sampling_target = 4096"):
        assert line in text.splitlines()
    assert rules.results_root(Path("r"), "TEST05") == Path("r/compliance/TEST05")
    assert rules.results_root(Path("r"), None) == Path("r")


def test_rules_refuse_what_v1_0_does_not_have() -> None:
    with pytest.raises(ConfigError, match="MultiStream is not a v1.0 BERT scenario"):
        rules.check_rules(rules.V1_0, "MultiStream", "performance", None)
    with pytest.raises(ConfigError, match="performance-mode test"):
        rules.check_rules(rules.V1_0, "Offline", "accuracy", "TEST01")
    with pytest.raises(ConfigError, match="unknown compliance test"):
        rules.check_rules(rules.V1_0, "Offline", "performance", "TEST04")
    rules.check_rules(rules.LOADGEN, "MultiStream", "performance", None)


def test_the_rules_record_says_why_a_run_cannot_be_submitted() -> None:
    full = rules.rules_record(rules.V1_0, "Server", "performance", False, 10833, None,
                              {"max_run_s": 86400.0, "server_max_async_queries": 920})
    assert full["submittable"] and full["seeds"] == V1_SEEDS
    assert full["min_query_count"] == 270336 and full["server_target_latency_ms"] == 130
    assert full["limits"] == {"max_duration_ms": 86_400_000, "server_max_async_queries": 920}
    short = rules.rules_record(rules.V1_0, "Offline", "performance", True, 52, None)
    assert not short["submittable"]
    assert any("short run" in why for why in short["not_submittable_because"])
    assert any("52 of the 10833" in why for why in short["not_submittable_because"])
    loadgen = rules.rules_record(rules.LOADGEN, "Offline", "accuracy", False, 10833, None)
    assert not loadgen["submittable"]


def test_a_stray_audit_config_in_the_working_directory_is_refused(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "audit.config").write_text("*.*.mode = 2\n")
    with pytest.raises(ConfigError, match="LoadGen would apply this audit.config"):
        execute(RunConfig(backend="null", user_conf=None))


def test_run_flags_round_trip_through_the_command_line(tmp_path: Path) -> None:
    args = build_parser().parse_args([
        "submission", "--backend", "null", "--model", "m.onnx", "--batch-size", "4",
        "--backend-option", "delay_ms=5", "--short", "--system", "sys", "--max-examples", "20",
        "--results-dir", str(tmp_path), "--no-progress", "--seq-bucket", "0"])
    template = _run_config(args, "performance")
    assert template.rules == rules.V1_0
    argv = runs.run_argv(template, runs.RunSpec("Server", audit="TEST01"), Path("u.conf"))
    assert argv[1:4] == ["-m", "harness", "run"]
    again = _run_config(build_parser().parse_args(argv[3:]), "performance")
    data = dataclasses.replace(template.data, data_dir=template.data.data_dir.absolute(),
                               cache_dir=template.data.cache_dir.absolute())
    assert again == dataclasses.replace(
        template, scenario="Server", audit="TEST01", user_conf=Path("u.conf").absolute(),
        max_run_minutes=runs.SUBMISSION_MAX_RUN_MINUTES, data=data,
        model_store=template.model_store.absolute())


# ---- logs ---------------------------------------------------------------------------------


def mllog(path: Path, values: dict, errors: dict | None = None) -> Path:
    """A LoadGen detail log holding ``values`` (and error entries)."""
    lines = []
    for key, value in values.items():
        meta = {"is_error": False, "is_warning": False}
        lines.append(":::MLLOG " + json.dumps({"key": key, "value": value, "metadata": meta}))
    for key, value in (errors or {}).items():
        meta = {"is_error": True, "is_warning": False}
        lines.append(":::MLLOG " + json.dumps({"key": key, "value": value, "metadata": meta}))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_detail_log_takes_first_values_and_collects_errors(tmp_path: Path) -> None:
    path = mllog(tmp_path / "d.txt", {"a": 1, "result_validity": "INVALID",
                                      "result_min_duration_met": False},
                 {"error_invalid_config": "bad"})
    path.write_text(path.read_text() + ':::MLLOG {"key": "a", "value": 2}\n:::MLLOG {oops\n')
    log = DetailLog.read(path)
    assert log.get("a") == 1 and log.valid is False
    assert "error_invalid_config: bad" in log.errors
    assert any("not a LoadGen log entry" in error for error in log.errors)
    assert "minimum duration" in log.invalid_reasons()


def accuracy_log(path: Path, entries: list[tuple[int, np.ndarray]]) -> Path:
    """An mlperf_log_accuracy.json: (qsl_idx, float32 [S, 2] logits) per entry."""
    items = [{"seq_id": n, "qsl_idx": idx, "data": np.asarray(a, "<f4").tobytes().hex().upper()}
             for n, (idx, a) in enumerate(entries)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("[\n" + ",\n".join(json.dumps(i) for i in items) + "\n]\n")
    return path


def test_truncation_keeps_4096_characters_each_end_and_hashes_the_full_log(tmp_path) -> None:
    rng = np.random.default_rng(0)
    big = accuracy_log(tmp_path / "big.json", [(i, rng.normal(size=(384, 2))) for i in range(9)])
    data = big.read_bytes()
    digest = truncate_accuracy_log(big, tmp_path / "out" / "log.json")
    out = (tmp_path / "out" / "log.json").read_bytes()
    assert digest == hashlib.sha256(data).hexdigest()
    assert out == data[:4096] + b"\n\n...\n\n" + data[-4096:] and len(out) <= 10 * 1024
    small = accuracy_log(tmp_path / "small.json", [(0, np.zeros((2, 2)))])
    truncate_accuracy_log(small, tmp_path / "small-out.json")
    assert (tmp_path / "small-out.json").read_bytes() == small.read_bytes()
    assert read_responses(small) == [(0, np.zeros(4, "<f4").tobytes().hex().upper())]


# ---- compliance verification ----------------------------------------------------------------


def perf_values(scenario: str = "Offline", score: float = 100.0, **changes) -> dict:
    metric = {"Offline": "result_samples_per_second",
              "Server": "result_scheduled_samples_per_sec",
              "SingleStream": "result_90.00_percentile_latency_ns"}[scenario]
    values = {
        "effective_scenario": scenario, "effective_test_mode": "PerformanceOnly",
        "result_validity": "VALID", "effective_performance_sample_count": 10833,
        **{f"effective_{k}": v for k, v in V1_SEEDS.items()},
        "effective_min_query_count": rules.MIN_QUERY_COUNT[scenario],
        "effective_samples_per_query": 24576 if scenario == "Offline" else 1,
        "effective_min_duration_ms": 600000, metric: score,
        "result_99.00_percentile_latency_ns": 50_000_000,
        "effective_accuracy_log_rng_seed": 0, "effective_accuracy_log_sampling_target": 0,
    }
    values.update(changes)
    return values


def audit_values(test: str, scenario: str = "Offline", score: float = 100.0, **changes) -> dict:
    audit = rules.AUDITS[test]
    values = perf_values(scenario, score)
    if audit.seeds:
        values.update({f"effective_{k}": v for k, v in audit.seeds.to_json().items()})
    else:
        values.update(effective_accuracy_log_rng_seed=audit.accuracy_log_rng_seed,
                      effective_accuracy_log_sampling_target=audit.accuracy_log_sampling_target)
    values.update(changes)
    return values


@pytest.mark.parametrize("test, score, passed", [
    ("TEST01", 109.0, True), ("TEST01", 111.0, False), ("TEST01", 91.0, True),
    ("TEST05", 104.0, True), ("TEST05", 94.0, False),
])
def test_performance_within_the_audits_share(tmp_path, test, score, passed) -> None:
    mllog(tmp_path / "ref" / "mlperf_log_detail.txt", perf_values())
    mllog(tmp_path / "t" / "mlperf_log_detail.txt", audit_values(test, score=score))
    check = compliance.verify_performance(test, tmp_path / "ref", tmp_path / "t")
    assert check.passed is passed
    assert check.text.rstrip().splitlines()[-1].startswith("TEST PASS" if passed else "TEST FAIL")
    assert "reference score = 100" in check.text and f"test score = {score:g}" in check.text


def test_performance_fails_on_invalid_runs_wrong_settings_and_errors(tmp_path) -> None:
    mllog(tmp_path / "ref" / "mlperf_log_detail.txt", perf_values(result_validity="INVALID"))
    mllog(tmp_path / "t" / "mlperf_log_detail.txt", audit_values("TEST05"))
    check = compliance.verify_performance("TEST05", tmp_path / "ref", tmp_path / "t")
    assert not check.passed and "reference results are INVALID" in check.text
    mllog(tmp_path / "ref" / "mlperf_log_detail.txt", perf_values())
    mllog(tmp_path / "t" / "mlperf_log_detail.txt", perf_values(), {"error_runtime": "x"})
    check = compliance.verify_performance("TEST05", tmp_path / "ref", tmp_path / "t")
    assert not check.passed
    assert "effective_qsl_rng_seed 7322528924094909334, expected 313588358309856706" in check.text
    assert "LoadGen error(s) in the test run" in check.text


def test_single_stream_latencies_under_200_us_get_20_percent(tmp_path) -> None:
    mllog(tmp_path / "ref" / "mlperf_log_detail.txt", perf_values("SingleStream", 150_000))
    mllog(tmp_path / "t" / "mlperf_log_detail.txt",
          audit_values("TEST05", "SingleStream", 175_000))
    assert compliance.verify_performance("TEST05", tmp_path / "ref", tmp_path / "t").passed


def test_test01_accuracy_identical_missing_and_empty(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    logits = {i: rng.normal(size=(384, 2)) for i in range(6)}
    accuracy_log(tmp_path / "acc" / "mlperf_log_accuracy.json", list(logits.items()))
    accuracy_log(tmp_path / "t" / "mlperf_log_accuracy.json", [(3, logits[3]), (1, logits[1])])
    check = compliance.verify_accuracy(tmp_path / "acc", tmp_path / "t", "bert-99", None)
    assert check.passed and "num_perf_log_data_mismatch = 0" in check.text and not check.files
    accuracy_log(tmp_path / "t" / "mlperf_log_accuracy.json", [(3, logits[3]), (9, logits[1])])
    check = compliance.verify_accuracy(tmp_path / "acc", tmp_path / "t", "bert-99", None)
    assert not check.passed and "1 logged samples are not in the accuracy log" in check.text
    accuracy_log(tmp_path / "t" / "mlperf_log_accuracy.json", [(3, logits[3] + 1)])
    check = compliance.verify_accuracy(tmp_path / "acc", tmp_path / "t", "bert-99", None)
    assert not check.passed and "cannot be compared" in check.text
    (tmp_path / "t" / "mlperf_log_accuracy.json").write_text("[]")
    check = compliance.verify_accuracy(tmp_path / "acc", tmp_path / "t", "bert-99", None)
    assert not check.passed and "logged no responses" in check.text


@pytest.fixture(scope="module")
def small_data(tmp_path_factory, squad_dir: Path):
    from squad.data import prepare_data
    from tests.helpers import squad_data

    root = tmp_path_factory.mktemp("subdata")
    return prepare_data(squad_data(root, squad_dir, max_examples=30), progress=False)


def _answering(data, shift: int = 0) -> dict[int, np.ndarray]:
    """Logits answering each feature's first context token (+ shift), -10000 past its length."""
    out = {}
    for i in range(len(data.features)):
        context = np.flatnonzero(data.features.token_to_orig[i] != -1)
        real = int(data.features.seq_len[i])
        a = np.full((384, 2), -10000.0)
        a[:real] = 0.0
        a[context[min(shift, len(context) - 1)], 0] = 10.0
        a[context[min(shift + 1, len(context) - 1)], 1] = 10.0
        out[i] = a
    return out


def test_test01_falls_back_to_accuracy_when_only_padding_differs(tmp_path, small_data) -> None:
    base = _answering(small_data)
    accuracy_log(tmp_path / "acc" / "mlperf_log_accuracy.json", list(base.items()))
    padded = {}
    for i, a in base.items():  # as if batched with longer samples: 0.0 past the real length
        b = a.copy()
        b[int(small_data.features.seq_len[i]): int(small_data.features.seq_len[i]) + 5] = 0.0
        padded[i] = b
    accuracy_log(tmp_path / "t" / "mlperf_log_accuracy.json", list(padded.items()))
    check = compliance.verify_accuracy(tmp_path / "acc", tmp_path / "t", "bert-99.9", small_data)
    assert check.passed, check.text
    assert f"num_perf_log_data_mismatch = {len(base)}" in check.text
    assert f"equal over the sample's real tokens = {len(base)}" in check.text
    assert set(check.files) == {"baseline_accuracy.txt", "compliance_accuracy.txt"}
    assert check.files["baseline_accuracy.txt"].splitlines()[0] == \
        check.files["compliance_accuracy.txt"].splitlines()[0]


def test_test01_fails_a_backend_that_answers_otherwise(tmp_path, small_data) -> None:
    base, other = _answering(small_data), _answering(small_data, shift=3)
    accuracy_log(tmp_path / "acc" / "mlperf_log_accuracy.json", list(base.items()))
    accuracy_log(tmp_path / "t" / "mlperf_log_accuracy.json", list(other.items()))
    check = compliance.verify_accuracy(tmp_path / "acc", tmp_path / "t", "bert-99", small_data)
    assert not check.passed
    assert "TEST FAIL" in check.text and "their F1 differs by" in check.text
    assert "TEST PASS" not in check.text


# ---- system description ---------------------------------------------------------------------


def test_system_description_has_every_v1_field_from_host_and_user(tmp_path) -> None:
    identity = {"division": "closed", "submitter": "org", "status": "available",
                "system_name": "sys", "system_type": "datacenter"}
    description, defaulted = system_desc.describe_system(
        identity, {"framework": "onnxruntime 1.0", "other_software_stack": "LoadGen 6"},
        {"host_storage_type": "NVMe SSD", "cooling": "air"}, tmp_path)
    assert list(description) == list(system_desc.FIELDS)
    for field in system_desc.INTEGER_FIELDS:
        assert isinstance(description[field], int)
    assert description["accelerators_per_node"] == 0
    assert description["host_storage_type"] == "NVMe SSD"
    assert description["host_processor_model_name"]
    assert "host_storage_type" not in defaulted and "cooling" not in defaulted
    assert "host_networking" in defaulted
    assert not any(field.startswith("accelerator") for field in defaulted)


def test_description_file_is_checked(tmp_path: Path) -> None:
    good = tmp_path / "s.toml"
    good.write_text('submitter = "org"\n[system]\ncooling = "air"\n')
    assert read_description_file(good)["system"] == {"cooling": "air"}
    bad = tmp_path / "bad.toml"
    bad.write_text('[system]\ncolour = "red"\n')
    with pytest.raises(ConfigError, match="colour"):
        read_description_file(bad)


# ---- the checker on synthetic trees ---------------------------------------------------------

SYSTEM = "sys"
BASE = Path("closed/org")


def summary_text(scenario: str = "Offline", score: float = 100.0, valid: bool = True) -> str:
    """A LoadGen summary saying what :func:`perf_values` logs."""
    metric = {"Offline": "Samples per second", "Server": "Scheduled samples per second",
              "SingleStream": "90th percentile latency (ns)"}[scenario]
    return (f"MLPerf Results Summary\nScenario : {scenario}\nMode     : PerformanceOnly\n"
            f"{metric} : {score}\nResult is : {'VALID' if valid else 'INVALID'}\n")


def make_tree(root: Path, f1: float = 90.5) -> Path:
    """A closed bert-99 datacenter submission (Offline) that meets every rule; the full
    accuracy logs go to ``root.parent / 'full'``."""
    base = root / BASE
    where = Path(SYSTEM) / "bert-99" / "Offline"
    identity = {"division": "closed", "submitter": "org", "status": "available",
                "system_name": SYSTEM, "system_type": "datacenter"}
    description, _ = system_desc.describe_system(identity, {"framework": "x"}, {}, root.parent)
    (base / "systems").mkdir(parents=True)
    (base / "systems" / f"{SYSTEM}.json").write_text(json.dumps(description))
    (base / "code/bert-99/impl").mkdir(parents=True)
    (base / "code/bert-99/impl/README.md").write_text("code\n")
    measurements = base / "measurements" / where
    measurements.mkdir(parents=True)
    for name in ("mlperf.conf", "user.conf", "README.md"):
        (measurements / name).write_text("x\n")
    (measurements / f"{SYSTEM}_impl_Offline.json").write_text(json.dumps(
        {field: "x" for field in ("input_data_types", "retraining", "starting_weights_filename",
                                  "weight_data_types", "weight_transformations")}))
    results = base / "results" / where
    run = results / "performance" / "run_1"
    mllog(run / "mlperf_log_detail.txt", perf_values())
    (run / "mlperf_log_summary.txt").write_text(summary_text())
    accuracy = results / "accuracy"
    mllog(accuracy / "mlperf_log_detail.txt", {"effective_test_mode": "AccuracyOnly",
                                               "qsl_reported_total_count": 10833})
    (accuracy / "mlperf_log_summary.txt").write_text("summary\n")
    rng = np.random.default_rng(0)
    full = accuracy_log(root.parent / "full" / BASE / "results" / where / "accuracy" /
                        "mlperf_log_accuracy.json",
                        [(i, rng.normal(size=(384, 2))) for i in range(5)])
    digest = truncate_accuracy_log(full, accuracy / "mlperf_log_accuracy.json")
    (accuracy / "accuracy.txt").write_text(json.dumps({"exact_match": 80.0, "f1": f1})
                                           + f"\nfeatures logged: 10833 of 10833\nhash={digest}\n")
    tests = base / "compliance" / where
    for test in ("TEST01", "TEST05"):
        mllog(tests / test / "performance/run_1/mlperf_log_detail.txt", audit_values(test))
        (tests / test / "performance/run_1/mlperf_log_summary.txt").write_text(summary_text())
        (tests / test / "verify_performance.txt").write_text("reference score = 100\nTEST PASS\n")
    (tests / "TEST01/verify_accuracy.txt").write_text("num_perf_log_data_mismatch = 0\nTEST PASS\n")
    full01 = accuracy_log(root.parent / "full" / BASE / "compliance" / where / "TEST01" /
                          "accuracy" / "mlperf_log_accuracy.json", [(1, np.zeros((384, 2)))])
    digest = truncate_accuracy_log(full01, tests / "TEST01/accuracy/mlperf_log_accuracy.json")
    (tests / "TEST01/accuracy/accuracy.txt").write_text(f"hash={digest}\n")
    return root


def test_a_tree_that_meets_every_rule_passes(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "submission")
    report = check_submission(root, tmp_path / "full")
    assert report.ok, report.text()
    assert "every check holds" in report.text()
    assert main(["check", str(root)]) == 0
    [result] = report.results
    assert result.value == 100.0 and result.f1 == 90.5
    assert result.compliance == {"TEST01": "PASS", "TEST05": "PASS"}


def _edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value
    path.write_text(json.dumps(data))


def _perf_log(root: Path, **changes) -> None:
    mllog(root / BASE / f"results/{SYSTEM}/bert-99/Offline/performance/run_1/"
          "mlperf_log_detail.txt", perf_values(**changes))


RESULTS = f"results/{SYSTEM}/bert-99/Offline"
COMPLIANCE = f"compliance/{SYSTEM}/bert-99/Offline"
BREAKAGES = {
    "system field missing": (lambda r: _edit_json(r / BASE / f"systems/{SYSTEM}.json",
                                                  cooling=None), "cooling", ERROR),
    "unknown system field": (lambda r: _edit_json(r / BASE / f"systems/{SYSTEM}.json",
                                                  colour="red"), "colour", WARNING, WARN),
    "accelerators as text": (lambda r: _edit_json(r / BASE / f"systems/{SYSTEM}.json",
                                                  accelerators_per_node="many"),
                             "whole number", UNCHECKED, WARN),
    "wrong submitter": (lambda r: _edit_json(r / BASE / f"systems/{SYSTEM}.json",
                                             submitter="other"), "submitter", ERROR),
    "bert-99.9 on edge": (lambda r: (_edit_json(r / BASE / f"systems/{SYSTEM}.json",
                                                system_type="edge"),
                                     (r / BASE / f"results/{SYSTEM}/bert-99").rename(
                                         r / BASE / f"results/{SYSTEM}/bert-99.9")),
                          "not a benchmark of edge", ERROR),
    "edge without SingleStream": (lambda r: _edit_json(r / BASE / f"systems/{SYSTEM}.json",
                                                       system_type="edge"),
                                  "SingleStream", ERROR),
    "no user.conf": (lambda r: (r / BASE / f"measurements/{SYSTEM}/bert-99/Offline/user.conf"
                                ).unlink(), "user.conf", LOGGED),
    "no code": (lambda r: shutil.rmtree(r / BASE / "code/bert-99"), "code of bert-99", LOGGED),
    "no code for the implementation": (lambda r: shutil.rmtree(r / BASE / "code/bert-99/impl"),
                                       "implementation 'impl'", UNCHECKED, WARN),
    "accuracy below target": (lambda r: (r / BASE / RESULTS / "accuracy/accuracy.txt").write_text(
        (r / BASE / RESULTS / "accuracy/accuracy.txt").read_text().replace('"f1": 90.5',
                                                                           '"f1": 89.9')),
        "below the bert-99 target 89.965", ERROR),
    "no hash": (lambda r: (r / BASE / RESULTS / "accuracy/accuracy.txt").write_text(
        '{"exact_match": 80.0, "f1": 90.5}\n'), "no hash= line", ERROR),
    "hash of another log": (lambda r: (r / BASE / RESULTS / "accuracy/accuracy.txt").write_text(
        '{"exact_match": 80.0, "f1": 90.5}\nhash=' + "0" * 64 + "\n"), "is not the sha256",
        UNCHECKED),
    "untruncated log": (lambda r: (r / BASE / RESULTS / "accuracy/mlperf_log_accuracy.json"
                                   ).write_text("[" + " " * 11000 + "]"), "not truncated", ERROR),
    "partial accuracy run": (lambda r: mllog(r / BASE / RESULTS / "accuracy/mlperf_log_detail.txt",
                                             {"effective_test_mode": "AccuracyOnly",
                                              "qsl_reported_total_count": 52}),
                             "QSL held 52 features", UNCHECKED, WARN),
    "extra accuracy file": (lambda r: (r / BASE / RESULTS / "accuracy/settings.json").write_text(
        "{}"), "settings.json", LOGGED),
    "INVALID": (lambda r: (_perf_log(r, result_validity="INVALID"),
                           (r / BASE / RESULTS / "performance/run_1/mlperf_log_summary.txt")
                           .write_text(summary_text(valid=False))), "INVALID", ERROR),
    "summary says INVALID": (lambda r: (r / BASE / RESULTS / "performance/run_1/"
                                        "mlperf_log_summary.txt").write_text(
        summary_text(valid=False)), "validity is INVALID, the detail log's VALID", UNCHECKED),
    "LoadGen error": (lambda r: mllog(r / BASE / RESULTS / "performance/run_1/"
                                      "mlperf_log_detail.txt", perf_values(),
                                      {"error_runtime": "boom"}), "boom", ERROR),
    "wrong seed": (lambda r: _perf_log(r, effective_qsl_rng_seed=1), "qsl_rng_seed", LOGGED),
    "short duration": (lambda r: _perf_log(r, effective_min_duration_ms=10000),
                       "--short", LOGGED),
    "too few samples": (lambda r: _perf_log(r, effective_samples_per_query=154),
                        "154 samples", LOGGED),
    "small sample count": (lambda r: _perf_log(r, effective_performance_sample_count=52),
                           "performance_sample_count 52", ERROR),
    "no TEST05": (lambda r: shutil.rmtree(r / BASE / COMPLIANCE / "TEST05"), "TEST05", LOGGED),
    "TEST01 accuracy failed": (lambda r: (r / BASE / COMPLIANCE / "TEST01/verify_accuracy.txt"
                                          ).write_text("TEST FAIL: differ\n"), "differ", WARNING,
                               WARN),
    "TEST05 slower than it says": (
        lambda r: mllog(r / BASE / COMPLIANCE / "TEST05/performance/run_1/mlperf_log_detail.txt",
                        audit_values("TEST05", score=80.0)),
        "says TEST PASS, but the logs in the tree say", UNCHECKED),
    "a stray folder": (lambda r: (r / "tmp").mkdir(), "not a division", LOGGED),
}


@pytest.mark.parametrize("name", list(BREAKAGES))
def test_each_broken_rule_is_one_explained_failure(tmp_path: Path, name: str) -> None:
    root = make_tree(tmp_path / "submission")
    breaks, fragment, official, *level = BREAKAGES[name]
    breaks(root)
    report = check_submission(root, tmp_path / "full")
    matching = [f for f in report.findings if fragment in f.message or fragment in f.path]
    assert matching, report.text()
    assert matching[0].official == official, report.text()
    assert matching[0].level == (level[0] if level else FAIL), report.text()
    assert report.ok == (matching[0].level == WARN), report.text()
    # the command line (without --full-logs: it would score the logs on the dev set)
    assert main(["check", str(root)]) == (0 if check_submission(root).ok else 1)


def test_test01_at_f1_zero_needs_identical_answers(tmp_path, small_data, monkeypatch) -> None:
    from squad.metrics import SquadScores

    base, other = _answering(small_data), _answering(small_data, shift=3)
    accuracy_log(tmp_path / "acc" / "mlperf_log_accuracy.json", list(base.items()))
    accuracy_log(tmp_path / "t" / "mlperf_log_accuracy.json", list(other.items()))
    zero = SquadScores(0.0, 0.0, 30, 30)
    for same, passed in ((30, True), (12, False)):
        monkeypatch.setattr(compliance, "_compare_accuracy",
                            lambda *args, same=same: (zero, zero, same, 30))
        check = compliance.verify_accuracy(tmp_path / "acc", tmp_path / "t", "bert-99",
                                           small_data)
        assert check.passed is passed, check.text
    assert "18 answers differ from the accuracy run's, and at F1 0" in check.text


def test_accuracy_txt_ends_with_the_hash_of_the_log_it_scored(tmp_path, small_data) -> None:
    from squad.accuracy import score_accuracy_log
    from squad.features import read_vocab

    log = accuracy_log(tmp_path / "mlperf_log_accuracy.json",
                       list(_answering(small_data).items()))
    report, _ = score_accuracy_log(log, small_data.features, small_data.examples,
                                   read_vocab(small_data.vocab_path))
    lines = report.text().splitlines()
    assert json.loads(lines[0]).keys() == {"exact_match", "f1"}
    assert lines[-1] == "hash=" + hashlib.sha256(log.read_bytes()).hexdigest()


def test_an_offline_run_that_ended_too_soon_gets_a_tuned_user_conf(tmp_path: Path) -> None:
    conf = tmp_path / "user.conf"
    conf.write_text("bert.Offline.target_qps = 14\n")
    template = RunConfig(user_conf=conf, results_dir=tmp_path)
    run = tmp_path / "run"
    mllog(run / "mlperf_log_detail.txt", perf_values(
        result_validity="INVALID", result_min_duration_met=False, result_min_queries_met=True,
        effective_target_qps=14, result_samples_per_second=20.0))
    tuned = runs.offline_retune(run, template, tmp_path / "Offline")
    assert tuned == tmp_path / "Offline" / runs.TUNED_CONF
    text = tuned.read_text()
    assert text.startswith("bert.Offline.target_qps = 14\n")
    assert text.rstrip().endswith("bert.Offline.target_qps = 30")
    assert runs.tuned_user_conf(template, tmp_path / "Offline") == tuned
    # a run INVALID for another reason is not tuned
    mllog(run / "mlperf_log_detail.txt", perf_values(
        result_validity="INVALID", result_min_duration_met=True,
        result_perf_constraints_met=False))
    assert runs.offline_retune(run, template, tmp_path / "Other") is None


def test_runs_that_do_not_meet_the_rules_are_not_reused(tmp_path: Path) -> None:
    template = RunConfig(backend="null", rules="v1.0", results_dir=tmp_path)
    run = tmp_path / "run"
    spec = runs.RunSpec("Offline")
    assert runs.problems_with(run, spec, template, "md5") == ["there is no such run"]
    mllog(run / "mlperf_log_detail.txt", perf_values(result_validity="INVALID"),
          {"error_runtime": "boom"})
    (run / "settings.json").write_text(json.dumps({
        "rules": {"name": "loadgen"}, "config": {"short_run": True, "audit": None},
        "backend": {"backend": "onnxruntime"}, "model": {"md5": "other"},
        "data": {"features": 52}}))
    problems = " | ".join(runs.problems_with(run, spec, template, "md5"))
    for fragment in ("rules 'loadgen'", "a short run", "backend 'onnxruntime'", "md5 differs",
                     "52 features", "LoadGen error: error_runtime: boom", "INVALID"):
        assert fragment in problems
