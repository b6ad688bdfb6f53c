"""End to end through LoadGen with the null backend: every scenario, accuracy, failures."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from backends import BackendSettings
from common.errors import HarnessError
from harness.runner import RunConfig
from squad.data import prepare_data
from squad.features import read_vocab
from squad.metrics import evaluate
from squad.postprocess import predict_answers, read_accuracy_log
from tests.helpers import FAST_CONF, STREAM_QUERIES, isolated, squad_data


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, squad_dir: Path) -> dict:
    root = tmp_path_factory.mktemp("run")
    conf = root / "user.conf"
    conf.write_text(FAST_CONF)
    model = root / "null-model.onnx"  # the null backend never reads it; its md5 is recorded
    model.write_bytes(b"placeholder")
    data = squad_data(root, squad_dir, max_examples=12)
    return {"root": root, "conf": conf, "model": model, "data": data}


def config(workspace: dict, **changes) -> RunConfig:
    base = RunConfig(
        backend="null", model=str(workspace["model"]), system="test-system",
        user_conf=workspace["conf"], data=workspace["data"],
        results_dir=workspace["root"] / "results", progress=False,
    )
    return RunConfig(**{**base.__dict__, **changes})


@pytest.mark.parametrize("scenario", ["Offline", "Server", "SingleStream", "MultiStream"])
def test_every_scenario_runs_and_is_recorded(workspace: dict, scenario: str) -> None:
    outcome = isolated(config(workspace, scenario=scenario, batch_size=4))
    run = outcome.directory
    results = workspace["root"] / "results"
    assert run == results / "test-system/null-model" / scenario / "performance/run_1"
    for name in ("mlperf_log_summary.txt", "mlperf_log_detail.txt", "user.conf",
                 "settings.json", "result.json", "summary.txt"):
        assert (run / name).is_file(), name
    result = json.loads((run / "result.json").read_text())
    assert result["scenario"] == scenario and result["errors"] == []
    assert result["samples_completed"] > 0 and result["qsl_loads"] >= 1
    # LoadGen ended naturally and the SUT answered every sample it was sent: the stream
    # scenarios send exactly min_query_count queries (FAST_CONF: min_duration 0), of 8
    # samples each in MultiStream; Offline sends one query of at least target_qps x
    # min_duration samples
    if scenario == "Offline":
        assert result["query_count"] == 1 and result["samples_completed"] >= 200 * 0.3
    else:
        per_query = 8 if scenario == "MultiStream" else 1
        assert result["samples_completed"] == result["query_count"] * per_query
    if scenario in ("SingleStream", "MultiStream"):
        assert result["query_count"] == STREAM_QUERIES
    assert result["latencies_ns"]["99.00"] > 0
    if scenario == "MultiStream":  # its metric is the latency of 8-sample queries
        assert result["query_latencies_ns"]["99.00"] >= result["latencies_ns"]["50.00"]
    else:
        assert result["samples_per_second"] > 0
    settings = json.loads((run / "settings.json").read_text())
    assert settings["backend"]["backend"] == "null"
    assert settings["model"]["md5"] == hashlib.md5(b"placeholder").hexdigest()
    assert settings["data"]["questions"] == 12
    features = settings["data"]["features"]
    # the QSL is smaller than mlperf.conf's 10833, and user.conf says so to LoadGen
    assert f"performance_sample_count_override = {features}\n" in (run / "user.conf").read_text()
    staging = [p for p in run.parent.glob(".run_1.*") if p.is_dir()]  # not the lock file
    assert not staging, "staging directory left behind"


def test_accuracy_run_logs_every_feature_once_and_scores_them(workspace: dict) -> None:
    outcome = isolated(config(workspace, mode="accuracy", batch_size=3))
    run = outcome.directory
    logits = read_accuracy_log(run / "mlperf_log_accuracy.json")
    data = prepare_data(workspace["data"], progress=False)
    assert sorted(logits) == list(range(len(data.features)))
    # the logged bytes are exactly what the backend returned for that sample
    from backends.null import NullBackend
    from harness.loadgen.qsl import QuerySampleLibrary
    from harness.loadgen.sut import PAD_LOGIT

    qsl = QuerySampleLibrary(data.features)
    qsl.load_query_samples(list(range(len(data.features))))
    backend = NullBackend()
    backend.load(None)
    start, end = backend.predict(qsl.batch(list(range(len(data.features)))))
    for index, (s, e) in logits.items():
        # every real token's logits are the backend's; batches run at their longest real
        # length (variable-length execution), and past it the log holds PAD_LOGIT
        real = int(qsl.lengths[index])
        np.testing.assert_array_equal(s[:real], start[index][:real])
        np.testing.assert_array_equal(e[:real], end[index][:real])
        for logged, full in ((s, start[index]), (e, end[index])):
            tail = logged[real:]
            assert ((tail == PAD_LOGIT) | (tail == full[real:])).all()
    examples = data.examples[:12]
    predictions = predict_answers(data.features, logits, examples, read_vocab(data.vocab_path))
    expected = evaluate(examples, predictions)
    assert outcome.accuracy.scores.f1 == pytest.approx(expected.f1)
    first_line = (run / "accuracy.txt").read_text().splitlines()[0]
    assert json.loads(first_line) == {"exact_match": expected.exact_match, "f1": expected.f1}
    assert json.loads((run / "predictions.json").read_text()) == predictions


def test_backend_crash_mid_run_fails_fast_and_keeps_logs(workspace: dict) -> None:
    crashing = BackendSettings(options={"fail_after": 5})
    with pytest.raises(HarnessError) as info:  # isolated() times out if the run hangs
        isolated(config(workspace, scenario="Offline", batch_size=2, system="crash",
                        backend_settings=crashing), timeout_s=60)
    message = str(info.value)
    assert "failing on purpose" in message and "logs are kept" in message
    scenario_dir = workspace["root"] / "results/crash/null-model/Offline/performance"
    failed = list(scenario_dir.glob("run_1.failed-*"))
    assert len(failed) == 1 and not (scenario_dir / "run_1").exists()
    assert "NullBackendFailure" in (failed[0] / "FAILED.txt").read_text()
    assert (failed[0] / "mlperf_log_detail.txt").is_file()


def test_rerun_replaces_the_previous_result(workspace: dict) -> None:
    first = isolated(config(workspace, system="rerun")).directory
    (first / "marker").write_text("old")
    second = isolated(config(workspace, system="rerun")).directory
    assert second == first and not (second / "marker").exists()


@pytest.mark.slow
def test_a_short_server_run_issues_enough_queries_for_early_stopping(workspace) -> None:
    """At 40 QPS a 10 s short run would issue 400 queries, which LoadGen's early stopping
    can never call VALID; the short run's Server floor of 459 queries can be."""
    conf = workspace["root"] / "server-40.conf"
    conf.write_text("bert.Server.target_qps = 40\n")
    outcome = isolated(config(workspace, scenario="Server", short_run=True, user_conf=conf),
                       timeout_s=180)
    assert outcome.loadgen.query_count >= 459
    assert outcome.loadgen.valid, outcome.loadgen.invalid_reasons


@pytest.mark.slow
def test_a_short_multistream_run_issues_enough_queries_for_early_stopping(workspace) -> None:
    """Expecting 200 ms a query, LoadGen would generate 100 queries for a 10 s short run (and
    run out of them at 15 ms a query); the MultiStream floor of 662 is what early stopping
    needs for a VALID run."""
    conf = workspace["root"] / "multistream-200.conf"
    conf.write_text("bert.MultiStream.target_latency = 200\n")
    outcome = isolated(config(workspace, scenario="MultiStream", short_run=True, user_conf=conf,
                              backend_settings=BackendSettings(options={"delay_ms": 15})),
                       timeout_s=180)
    assert outcome.loadgen.query_count >= 662
    assert outcome.loadgen.valid, outcome.loadgen.invalid_reasons
    assert not outcome.loadgen.errors
