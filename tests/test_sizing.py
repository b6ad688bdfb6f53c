"""Runs size themselves from the warm-up, say what they will do, and say what to do next."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from backends import get_backend_class
from backends.base import cpu_times, idle_cores
from common.errors import EXIT_BAD_INPUT, EXIT_INVALID, EXIT_OK
from harness.config import RunConfig
from harness.loadgen.results import LoadGenResult
from harness.loadgen.sizing import (
    ADAPTER_CALL_S,
    MARGIN,
    MAX_SIZED_QPS,
    ServerTest,
    allowed_over_latency,
    conf_sets,
    conf_value,
    effective_s_per_sample,
    next_step,
    server_test,
    service_times,
    size_from_warm_up,
    size_server,
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
    # the null backend answers in microseconds: the queueing model finds no limit below the cap
    assert settings["warmup"]["sized"]["server"]["feasible"] is True
    assert settings["warmup"]["sized"]["value"] == MAX_SIZED_QPS["Server"]
    assert len(settings["warmup"]["length_profile_s"]) == 5
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


# --- the cores other work leaves idle ------------------------------------------------------

def stat(busy: dict[int, int], idle: dict[int, int]) -> str:
    """/proc/stat text: per CPU, user jiffies ``busy`` and idle jiffies ``idle``."""
    lines = ["cpu  1 2 3 4 5 6 7 8 0 0"]
    lines += [f"cpu{cpu} {busy[cpu]} 0 0 {idle[cpu]} 0 0 0 0 0 0" for cpu in busy]
    return "\n".join(lines + ["intr 1 2 3", "ctxt 5"]) + "\n"


def test_cpu_times_reads_idle_and_total_per_cpu() -> None:
    times = cpu_times("cpu  9 9 9 9\ncpu0 10 1 2 30 4 5 6 7 99 99\ncpu1 1 0 0 2 0 0 0 0\n")
    assert times == {0: (34, 65), 1: (2, 3)}  # idle + iowait; guest columns left out


def test_a_core_kept_busy_by_other_work_is_not_counted() -> None:
    import os

    mine = sorted(os.sched_getaffinity(0))
    snapshots = iter([stat(dict.fromkeys(mine, 0), dict.fromkeys(mine, 0)),
                      stat({cpu: 95 if cpu == mine[0] else 5 for cpu in mine},
                           {cpu: 5 if cpu == mine[0] else 95 for cpu in mine})])
    assert idle_cores(0.0, lambda: next(snapshots)) == max(1, len(mine) - 1)
    # every core busy: still one thread
    snapshots = iter([stat(dict.fromkeys(mine, 0), dict.fromkeys(mine, 0)),
                      stat(dict.fromkeys(mine, 100), dict.fromkeys(mine, 0))])
    assert idle_cores(0.0, lambda: next(snapshots)) == 1


def test_without_proc_stat_every_usable_core_counts() -> None:
    import os

    def unreadable() -> str:
        raise FileNotFoundError("/proc/stat")

    assert idle_cores(0.0, unreadable) == len(os.sched_getaffinity(0))
    assert idle_cores(0.0, lambda: "no cpu lines\n") == len(os.sched_getaffinity(0))


def test_threads_0_takes_the_idle_cores_and_a_set_count_is_kept(monkeypatch) -> None:
    import dataclasses

    from harness import runner

    monkeypatch.setattr(runner, "usable_cores", lambda: 4)
    monkeypatch.setattr(runner, "idle_cores", lambda: 3)
    config = RunConfig()
    onnx = get_backend_class("onnxruntime")
    chosen, measured = runner._threads_for_machine(config, onnx)
    assert chosen.backend_settings.intra_op_threads == 3
    assert measured == {"usable_cores": 4, "idle_cores": 3, "intra_op_threads": 3,
                        "source": "--threads 0: idle cores"}
    two = dataclasses.replace(config, backend_settings=dataclasses.replace(
        config.backend_settings, intra_op_threads=2))
    assert runner._threads_for_machine(two, onnx) == (two, None)
    # the null backend computes nothing on these cores
    assert runner._threads_for_machine(config, get_backend_class("null")) == (config, None)
    monkeypatch.setattr(runner, "idle_cores", lambda: 4)
    same, measured = runner._threads_for_machine(config, onnx)
    assert same.backend_settings.intra_op_threads == 0 and measured["idle_cores"] == 4


# --- Server: a rate from a queueing model of the warm-up ----------------------------------

def test_early_stopping_allowance_matches_loadgen() -> None:
    # loadgen/results.cc: 459 queries are the fewest with none over the bound; 662 allow one
    # (LoadGen 6.0.17 prints "Need to process at least 662 queries" for MultiStream's p99)
    assert allowed_over_latency(458, 0.99) == -1
    assert allowed_over_latency(459, 0.99) == 0
    assert allowed_over_latency(661, 0.99) == 0
    assert allowed_over_latency(662, 0.99) == 1
    assert 2_400 < allowed_over_latency(270_336, 0.99) < 2_703  # under 1%, not by much


def test_conf_value_takes_the_most_specific_line_then_the_last() -> None:
    text = ("bert.Server.target_latency = 100\n*.Server.target_latency = 50\n"
            "*.*.min_duration = 1\nbert.*.min_duration = 2\n*.Server.min_duration = 3\n"
            "# bert.Server.min_query_count = 9\n*.Server.min_query_count = 459\n"
            "*.Server.min_query_count = 500\n")
    assert conf_value(text, "Server", "target_latency") == 100
    assert conf_value(text, "Server", "min_duration") == 2
    assert conf_value(text, "Server", "min_query_count") == 500
    assert conf_value(text, "Offline", "target_latency") is None
    short = server_test("*.Server.min_duration = 10000\n*.Server.min_query_count = 459\n")
    assert short == ServerTest(0.130, 0.99, 459, 10.0)  # the bound: LoadGen's mlperf.conf
    assert server_test("").min_queries == 270_336


SHORT = ServerTest(0.130, 0.99, 459, 10.0)


def test_service_times_follow_the_length_profile() -> None:
    profile = [(100, 0.010), (200, 0.030), (384, 0.080)]
    times = service_times(profile, np.array([50, 100, 150, 384]))
    assert times == pytest.approx(np.array([0.010, 0.010, 0.020, 0.080]) + ADAPTER_CALL_S)


def test_a_faster_backend_is_given_a_higher_rate_that_keeps_it_valid() -> None:
    lengths = np.linspace(60, 384, 500).astype(int)
    fast = service_times([(60, 0.002), (384, 0.010)], lengths)
    slow = service_times([(60, 0.010), (384, 0.040)], lengths)
    quick = size_server(fast, SHORT, 100.0, short_run=True)
    steady = size_server(slow, SHORT, 100.0, short_run=True)
    assert quick.feasible and steady.feasible
    assert quick.rate > steady.rate and quick.pass_probability >= 0.9
    assert steady.rate < 0.5 / float(np.mean(slow))  # far below saturation: the tail decides
    assert size_server(fast, SHORT, 5.0, short_run=True).rate == 5.0  # the cap holds


def test_a_backend_whose_longest_samples_reach_the_bound_is_told_it_is_unlikely() -> None:
    lengths = np.linspace(60, 384, 500).astype(int)
    slow = service_times([(60, 0.020), (384, 0.125)], lengths)
    guess = size_server(slow, SHORT, 20.0, short_run=True)
    assert not guess.feasible
    assert guess.rate == pytest.approx(SHORT.min_queries / 150.0)  # a test of 2.5 minutes
    assert "125 ms of the 130 ms latency bound" in guess.reason()
    assert "allows none" in guess.reason()
    sized = size_from_warm_up("Server", 0.05, (slow, SHORT, True))
    assert sized.server is not None and not sized.server.feasible
    assert sized.to_json()["server"]["feasible"] is False
    step = next_step(result("Server", False, rate=3.0, result_completed_samples_per_sec=3.0),
                     "Server", 3.06, guess.reason())
    assert step.startswith("a configuration faster per sample (make tune SCENARIO=Server")
    assert "125 ms" in step


def test_a_server_run_that_kept_up_but_ended_late_is_told_half_the_rate() -> None:
    step = next_step(result("Server", False, rate=5.4, result_completed_samples_per_sec=5.5),
                     "Server", 5.578)
    assert step.startswith("--target-qps 2.79 ") and "past the latency bound" in step
