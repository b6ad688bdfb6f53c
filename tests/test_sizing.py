"""Runs size themselves from the warm-up, say what they will do, and say what to do next."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from common.errors import EXIT_BAD_INPUT, EXIT_INVALID, EXIT_OK
from harness.loadgen.results import LoadGenResult
from harness.loadgen.sizing import (
    ADAPTER_CALL_S,
    MARGIN,
    MAX_SIZED_QPS,
    conf_sets,
    effective_s_per_sample,
    next_step,
    size_from_warm_up,
)

REPO = Path(__file__).resolve().parents[1]


def test_a_user_conf_line_for_the_scenario_counts_as_set() -> None:
    text = "# bert.Offline.target_qps = 5\n*.Server.target_qps = 3\nbert.*.target_latency = 9\n"
    assert not conf_sets(text, "Offline", "target_qps")  # a comment
    assert conf_sets(text, "Server", "target_qps")
    assert conf_sets(text, "SingleStream", "target_latency")
    assert not conf_sets(text, "Server", "target_latency_percentile")


def test_the_margin_errs_on_the_side_that_keeps_the_test_valid() -> None:
    per_sample = 0.01  # 100 samples/s through the harness
    offline = size_from_warm_up("Offline", per_sample)
    server = size_from_warm_up("Server", per_sample)
    single = size_from_warm_up("SingleStream", per_sample)
    multi = size_from_warm_up("MultiStream", per_sample)
    assert (offline.key, offline.value) == ("target_qps", pytest.approx(100 * MARGIN["Offline"]))
    assert offline.value > 100 > server.value  # Offline high, Server low
    assert (single.key, single.value) == ("target_latency", pytest.approx(10 * 0.5))
    assert multi.value == pytest.approx(8 * 10 * 0.5)  # a query of 8 samples
    assert offline.to_json()["source"] == "from warm-up"


def test_a_backend_that_answers_at_once_is_held_to_what_the_harness_can_carry() -> None:
    # no faster than the adapter's own cost per call allows, and within LoadGen's memory
    assert effective_s_per_sample(0.0, 8) == pytest.approx(ADAPTER_CALL_S / 8)
    assert size_from_warm_up("Server", 1e-12).value == MAX_SIZED_QPS["Server"]
    assert size_from_warm_up("Offline", 1e-12).value == MAX_SIZED_QPS["Offline"]


def result(scenario: str, valid: bool | None, **raw) -> LoadGenResult:
    return LoadGenResult(scenario, "performance", valid, raw.pop("rate", None),
                         {"50.00": 2e6}, {}, 10, ("reason",), (), raw)


def test_the_next_step_names_the_setting_and_a_value_from_what_was_measured() -> None:
    assert next_step(result("Offline", True, rate=100.0), "Offline", 50.0) is None
    offline = next_step(result("Offline", False, rate=100.0), "Offline", 50.0)
    assert offline.startswith(f"--target-qps {100 * MARGIN['Offline']:g} ")
    server = next_step(result("Server", False, rate=3.0,
                              result_completed_samples_per_sec=3.6), "Server", 10.0)
    assert server.startswith("--target-qps 2.52 ") and "3.6 samples/s against 10" in server
    assert "--find-peak" in server
    single = next_step(result("SingleStream", False), "SingleStream", 5.0)
    assert single.startswith("--target-latency-ms 1 ")  # half the 2 ms measured


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    conf = tmp_path / "user.conf"
    if not conf.exists():
        conf.write_text("# nothing set: the run sizes itself\n")
    return subprocess.run(
        [sys.executable, "-m", "harness", "run", "--backend", "null", "--short",
         "--max-examples", "20", "--no-progress", "--user-conf", str(conf),
         "--results-dir", str(tmp_path / "results"), "--mirror", str(REPO.parent / "shared/squad"),
         "--data-dir", str(tmp_path / "squad"), "--cache-dir", str(tmp_path / "cache"),
         "--no-download", *args], cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_a_run_with_nothing_set_is_sized_valid_and_says_so(tmp_path: Path) -> None:
    done = cli(tmp_path, "--scenario", "Server")
    assert done.returncode == EXIT_OK, done.stderr[-2000:]
    assert "sized from the warm-up" in done.stderr
    assert done.stderr.index("LoadGen will issue") < len(done.stderr)
    settings = json.loads(next((tmp_path / "results").rglob("settings.json")).read_text())
    assert settings["warmup"]["sized"]["source"] == "from warm-up"
    assert settings["warmup"]["sized"]["key"] == "target_qps"
    assert "result: VALID" in done.stdout and "next:" not in done.stdout


@pytest.mark.slow
def test_an_invalid_run_exits_3_with_a_next_step(tmp_path: Path) -> None:
    # Offline told to expect 1 sample/s: its 11 samples end far too soon
    done = cli(tmp_path, "--target-qps", "1")
    assert done.returncode == EXIT_INVALID, done.stderr[-2000:]
    assert "result: INVALID" in done.stdout
    assert [line for line in done.stdout.splitlines() if line.startswith("next: --target-qps ")]


def test_submission_rules_never_guess(tmp_path: Path) -> None:
    done = cli(tmp_path, "--rules", "v1.0")
    assert done.returncode == EXIT_BAD_INPUT
    error = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "never guesses" in error[0] and "--target-qps" in error[0]
    assert not (tmp_path / "results").exists()


def test_the_overload_guard_says_it_is_the_harness_guard() -> None:
    stopped = LoadGenResult("Server", "performance", False, 3.6, {}, {}, 10, (),
                            ("error_runtime: Too many outstanding queries (issued 21)",), {})
    lines = [line for line in stopped.summary_lines() if "outstanding" in line]
    assert len(lines) == 1 and lines[0].startswith("stopped by the harness's overload guard")
    assert "LoadGen error" not in lines[0]


def test_a_backend_failing_in_its_warm_up_is_one_line(tmp_path: Path) -> None:
    done = cli(tmp_path, "--backend-option", "fail_after=0")
    assert done.returncode == EXIT_BAD_INPUT
    assert "Traceback" not in done.stderr
    error = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "failed in its warm-up call" in error[0]
    assert "failing on purpose" in error[0]
