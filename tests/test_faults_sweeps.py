"""Faults in sweeps and child runs (issue 25): damaged records heal or explain, one sweep
per folder, a sweep's args cannot change what it measures, and a signal to ``submission`` or
a sweep stops the child run as a run stops, keeping it and saying so.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fault_helpers import BOUND_S, FAST_S, REPO, cli, make_workspace, one_error_line


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, squad_dir: Path) -> Path:
    return make_workspace(tmp_path_factory, squad_dir)


# ---- sweeps: damaged records heal, one sweep at a time, args cannot change the measure ----

ONE_POINT = """
[sweep]
name = "{name}"

[base]
scenario = "Offline"
backend = "null"
short = true
max_examples = 20
min_duration_ms = 500
min_query_count = 1
backend_options = {{ delay_ms = 1 }}

[points]
batch_size = [1]
"""


def _sweep(root: Path, name: str, *extra: str, text: str = ONE_POINT,
           wait: bool = True) -> subprocess.CompletedProcess | subprocess.Popen:
    path = root / f"{name}.toml"
    path.write_text(text.format(name=name), encoding="utf-8")
    argv = [sys.executable, "-m", "harness", "sweep", str(path), "--no-progress",
            "--no-distribution", "--results-dir", str(root / "sweeps-out"), "--mirror",
            str(root / "datasets" / "squad"), "--no-download", *extra]
    if not wait:
        return subprocess.Popen(argv, cwd=root, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    return subprocess.run(argv, cwd=root, capture_output=True, text=True, timeout=BOUND_S)


@pytest.mark.parametrize("damage", [b"\x00\xff\xfe binary", b"[1, 2, 3]\n"])
def test_a_damaged_point_is_run_again_with_a_warning(workspace: Path, damage: bytes) -> None:
    name = "heal-binary" if b"\x00" in damage else "heal-list"
    first = _sweep(workspace, name)
    assert first.returncode == 0, first.stderr
    folder = workspace / "sweeps-out" / name
    result = next(folder.glob("points/*/**/performance/run_1/result.json"))
    result.write_bytes(damage)
    # compare reads it in one line (the damage is the message), never a traceback
    compared = cli(workspace, "compare", str(result.parent), str(result.parent))
    assert compared.returncode == 2, compared.stderr
    assert "result.json" in one_error_line(compared.stderr)
    again = _sweep(workspace, name)
    assert again.returncode == 0, again.stderr
    assert "Traceback" not in again.stderr
    assert "warning: point batch_size=1: " in again.stderr and "running it again" in again.stderr
    assert json.loads(result.read_text())["scenario"] == "Offline"  # a fresh run
    history = result.parent.parent.parent / "history"
    assert [p.read_bytes() for p in history.glob("performance-run_1-replaced-*/result.json")] \
        == [damage]


def test_a_json_list_as_sweep_json_is_one_line_in_compare(workspace: Path,
                                                          tmp_path: Path) -> None:
    for side in ("a", "b"):
        (tmp_path / side).mkdir()
        (tmp_path / side / "sweep.json").write_text("[1, 2]\n")
    done = cli(workspace, "compare", str(tmp_path / "a"), str(tmp_path / "b"))
    assert done.returncode == 2, done.stderr
    assert "not a JSON object" in one_error_line(done.stderr)


def test_a_second_sweep_into_the_same_folder_is_refused(workspace: Path) -> None:
    slow = ONE_POINT.replace("min_duration_ms = 500", "min_duration_ms = 600000").replace(
        "delay_ms = 1", "delay_ms = 20")
    first = _sweep(workspace, "busy", text=slow, wait=False)
    folder = workspace / "sweeps-out" / "busy"
    try:
        ends = time.monotonic() + BOUND_S
        while not list(folder.glob("points/*/point.json")):
            assert time.monotonic() < ends and first.poll() is None, "the sweep never started"
            time.sleep(0.2)
        started = time.monotonic()
        second = _sweep(workspace, "busy", text=slow)
        assert time.monotonic() - started < FAST_S
        assert second.returncode == 2, second.stderr
        assert "another sweep is running in" in one_error_line(second.stderr)
        assert first.poll() is None  # the first goes on, its point untouched
        assert json.loads(next(folder.glob("points/*/point.json")).read_text())["status"] \
            == "running"
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=BOUND_S)
    assert first.returncode == 130


@pytest.mark.parametrize("words", [["--scenario", "SingleStream"], ["--scen=SingleStream"],
                                   ["--results-dir", "/tmp/elsewhere"], ["--results", "x"]])
def test_a_sweeps_args_cannot_change_what_it_measures(workspace: Path, words: list[str]) -> None:
    text = ONE_POINT.replace("[points]", f"args = {json.dumps(words)}\n\n[points]")
    done = _sweep(workspace, "args", "--list", text=text)
    assert done.returncode == 2, done.stderr
    line = one_error_line(done.stderr)
    assert "[base] args: --" in line and ("scenario in [base]" in line or
                                          "set by the sweep itself" in line)


def _interrupt_long_point(workspace: Path, name: str, text: str, *extra: str) -> str:
    """Run the sweep until its 600 s point is in LoadGen, Ctrl-C it; its stderr."""
    sweep = _sweep(workspace, name, *extra, text=text, wait=False)
    folder = workspace / "sweeps-out" / name
    ends = time.monotonic() + BOUND_S
    while not list(folder.glob("points/dur600000-*/*/*/Offline/performance/.run_1.staging-*/"
                               "mlperf_log_detail.txt")):
        assert time.monotonic() < ends and sweep.poll() is None, sweep.communicate()
        time.sleep(0.2)
    time.sleep(1.0)
    sweep.send_signal(signal.SIGINT)
    _, stderr = sweep.communicate(timeout=BOUND_S)
    assert sweep.returncode == 130, stderr
    assert "Traceback" not in stderr
    return stderr


def test_an_interrupted_rerun_says_which_runs_it_kept(workspace: Path) -> None:
    text = ONE_POINT.replace("batch_size = [1]", "min_duration_ms = [500, 600000]").replace(
        "delay_ms = 1", "delay_ms = 20")
    _interrupt_long_point(workspace, "rerun", text)
    stderr = _interrupt_long_point(workspace, "rerun", text, "--rerun")
    assert "1 finished points are kept" in stderr
    assert "--rerun measured 1 point(s) again" in stderr
    assert "0 still hold their earlier run" in stderr
    quick = next((workspace / "sweeps-out" / "rerun").glob("points/dur500-*"))
    assert len(list(quick.glob("*/*/Offline/history/performance-run_1-replaced-*"))) == 1


# ---- signals reach child runs --------------------------------------------------------------

@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_to_submission_stops_its_child_run_and_keeps_it(
        workspace: Path, tmp_path: Path, signum: int) -> None:
    conf = tmp_path / "long.conf"
    conf.write_text((REPO / "user.conf").read_text() + "bert.Offline.min_duration = 600000\n"
                    "bert.Offline.target_qps = 25\n")
    results = tmp_path / "results"
    parent = subprocess.Popen(
        [sys.executable, "-m", "harness", "submission", "--backend", "null",
         "--backend-option", "delay_ms=40", "--short", "--max-examples", "40", "--scenarios",
         "Offline", "--user-conf", str(conf), "--results-dir", str(results), "--out",
         str(tmp_path / "sub"), "--mirror", str(workspace / "datasets" / "squad"),
         "--no-download", "--no-progress"],
        cwd=workspace, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pattern = "*/*/Offline/performance/.run_1.staging-*/mlperf_log_detail.txt"
    ends = time.monotonic() + BOUND_S
    while not list(results.glob(pattern)):
        assert time.monotonic() < ends and parent.poll() is None, parent.communicate()
        time.sleep(0.2)
    time.sleep(1.0)
    parent.send_signal(signum)
    sent = time.monotonic()
    _, stderr = parent.communicate(timeout=BOUND_S)
    assert time.monotonic() - sent < FAST_S
    assert parent.returncode == 128 + signum, stderr
    assert "Traceback" not in stderr
    kept = list((results).glob("*/*/Offline/performance/run_1.interrupted-*"))
    assert len(kept) == 1, stderr
    assert (kept[0] / "mlperf_log_detail.txt").is_file()
    assert not list(results.glob("*/*/Offline/performance/.run_1.staging-*"))  # none hidden
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: the Offline performance run was interrupted; its logs are "
                           f"kept in {kept[0]}")
