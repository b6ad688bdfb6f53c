"""Faults: a crash, a hang, a signal, a kill, hostile names, concurrent runs, a full disk.

Each case runs the real command line in a subprocess with the null backend (a stand-in
device: ``delay_ms``, ``fail_after``, ``hang_after``) on the first questions of the real dev
set, and asserts what the user gets: a bounded exit with the right code, the logs kept in a
folder that says what happened, and earlier results intact. The subprocess timeouts are
generous bounds for runs that take seconds; they catch a hang, not a slow machine.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BOUND_S = 120  # a run that should end in seconds and has not after this is hung
SCENARIO_DIR = "minilm-l6-squad-demo"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, squad_dir: Path, demo_model_dir: Path) -> Path:
    """A folder with a user.conf, and the first questions' features cached once."""
    root = tmp_path_factory.mktemp("faults")
    shutil.copy(REPO / "user.conf", root / "user.conf")
    with (root / "user.conf").open("a", encoding="utf-8") as conf:  # a short Server run's
        conf.write("bert.Server.target_qps = 50\n")  # 459 queries then fit in its 10 s
    done = cli(root, "data", "--mirror", str(squad_dir), "--no-download")
    assert done.returncode == 0, done.stderr
    return root


def args_for(root: Path, *extra: str, scenario: str = "Offline") -> list[str]:
    return ["run", "--backend", "null", "--scenario", scenario, "--short",
            "--max-examples", "40", "--no-progress", "--no-download",
            "--mirror", str(root / "datasets" / "squad"), *extra]


def cli(root: Path, *args: str, timeout: float = BOUND_S) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=root,
                          capture_output=True, text=True, timeout=timeout)


def start(root: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "harness", *args], cwd=root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def scenario_dir(root: Path, results: str, scenario: str = "Offline") -> Path:
    systems = [p for p in (root / results).iterdir() if p.is_dir()]
    assert len(systems) == 1, systems
    return systems[0] / SCENARIO_DIR / scenario


def kept(root: Path, results: str, kind: str, scenario: str = "Offline") -> Path:
    found = sorted((scenario_dir(root, results, scenario) / "performance").glob(f"run_1.{kind}-*"))
    assert len(found) == 1, list((scenario_dir(root, results, scenario) / "performance").iterdir())
    return found[0]


def one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    assert stderr.count("error: ") == 1, stderr
    return stderr[stderr.index("error: "):]


def wait_for_logs(root: Path, results: str, scenario: str = "Offline",
                  timeout: float = BOUND_S) -> None:
    """Until LoadGen has started writing the detail log of a staged run."""
    pattern = f"*/{SCENARIO_DIR}/{scenario}/performance/.run_1.staging-*/mlperf_log_detail.txt"
    ends = time.monotonic() + timeout
    while time.monotonic() < ends:
        if list((root / results).glob(pattern)):
            time.sleep(1.0)  # well into the timed phase
            return
        time.sleep(0.1)
    raise AssertionError(f"no run started in {root / results}")


def start_long_run(root: Path, results: str, scenario: str = "Offline") -> subprocess.Popen:
    """A run that would take ten minutes (about 25 samples/s, a 600 s minimum), once LoadGen
    has started: for signals, kills and locks."""
    conf = root / f"long-{results}.conf"
    conf.write_text(f"bert.{scenario}.min_duration = 600000\n"
                    "bert.Offline.target_qps = 25\nbert.Server.target_qps = 20\n")
    run = start(root, *args_for(root, "--results-dir", results, "--user-conf", str(conf),
                                "--backend-option", "delay_ms=40", "--max-run-minutes", "600",
                                scenario=scenario))
    wait_for_logs(root, results, scenario)
    return run


def good_run(root: Path, results: str, scenario: str = "Offline") -> Path:
    done = cli(root, *args_for(root, "--results-dir", results, scenario=scenario))
    assert done.returncode == 0, done.stderr
    final = scenario_dir(root, results, scenario) / "performance" / "run_1"
    assert (final / "mlperf_log_summary.txt").is_file()
    return final


def test_a_crashing_backend_ends_the_run_and_keeps_its_logs(workspace: Path) -> None:
    earlier = good_run(workspace, "r-crash")
    before = (earlier / "settings.json").read_text()
    done = cli(workspace, *args_for(workspace, "--results-dir", "r-crash",
                                    "--backend-option", "fail_after=7"))
    assert done.returncode == 2
    assert "failing on purpose" in one_error_line(done.stderr)
    failed = kept(workspace, "r-crash", "failed")
    assert "NullBackendFailure" in (failed / "FAILED.txt").read_text()
    assert (failed / "mlperf_log_detail.txt").is_file()
    assert (earlier / "settings.json").read_text() == before  # the earlier result is intact


@pytest.mark.parametrize("scenario", ["Offline", "Server", "SingleStream"])
def test_a_backend_call_that_never_returns_times_out(workspace: Path, scenario: str) -> None:
    results = f"r-hang-{scenario}"
    done = cli(workspace, *args_for(workspace, "--results-dir", results, "--call-timeout", "1",
                                    "--backend-option", "hang_after=7", scenario=scenario))
    assert done.returncode == 2
    assert "did not return within 1 s" in one_error_line(done.stderr)
    failed = kept(workspace, results, "failed", scenario)
    assert "BackendCallTimeout" in (failed / "FAILED.txt").read_text()


def test_a_hang_in_the_warm_up_is_refused_before_anything_is_written(workspace: Path) -> None:
    done = cli(workspace, *args_for(workspace, "--results-dir", "r-hang0", "--call-timeout", "1",
                                    "--backend-option", "hang_after=0"))
    assert done.returncode == 2
    assert "warm-up call" in one_error_line(done.stderr)
    assert not (workspace / "r-hang0").exists()


@pytest.mark.slow
@pytest.mark.parametrize(("scenario", "signum", "code"), [
    ("Offline", signal.SIGINT, 130),
    ("Server", signal.SIGINT, 130),
    ("Server", signal.SIGTERM, 143),
    ("SingleStream", signal.SIGTERM, 143),
])
def test_a_signal_stops_the_run_promptly_and_keeps_it_as_interrupted(
        workspace: Path, scenario: str, signum: int, code: int) -> None:
    results = f"r-{scenario}-{signum}"
    earlier = good_run(workspace, results, scenario)
    run = start_long_run(workspace, results, scenario)
    run.send_signal(signum)
    _, stderr = run.communicate(timeout=BOUND_S)
    assert run.returncode == code, stderr  # within BOUND_S: seconds in practice
    assert "interrupted by SIG" in one_error_line(stderr)
    assert "Aborted" not in stderr and "bad_function_call" not in stderr
    interrupted = kept(workspace, results, "interrupted", scenario)
    assert "interrupted by" in (interrupted / "INTERRUPTED.txt").read_text()
    assert (interrupted / "mlperf_log_summary.txt").is_file()  # LoadGen ended normally
    assert "STOPPED EARLY" in (interrupted / "summary.txt").read_text()
    assert (earlier / "mlperf_log_summary.txt").is_file()


@pytest.mark.slow
def test_a_second_signal_quits_at_once(workspace: Path) -> None:
    run = start_long_run(workspace, "r-twice", "Server")
    run.send_signal(signal.SIGINT)
    run.send_signal(signal.SIGINT)
    _, stderr = run.communicate(timeout=BOUND_S)
    assert run.returncode == 130, stderr
    assert "Traceback" not in stderr


@pytest.mark.slow
def test_a_killed_run_is_kept_and_the_next_run_succeeds(workspace: Path) -> None:
    run = start_long_run(workspace, "r-kill")
    performance = scenario_dir(workspace, "r-kill") / "performance"
    run.kill()
    run.communicate(timeout=BOUND_S)
    assert list(performance.glob(".run_1.staging-*"))  # what a kill leaves
    final = good_run(workspace, "r-kill")
    killed = kept(workspace, "r-kill", "killed")
    assert "ended before the run finished" in (killed / "FAILED.txt").read_text()
    assert (killed / "settings.json").is_file()  # its logs are kept, not deleted
    assert not list(performance.glob(".run_1.staging-*"))
    assert final.is_dir()


def test_a_rerun_keeps_the_replaced_result_as_history(workspace: Path) -> None:
    first = good_run(workspace, "r-history")
    created = (first / "settings.json").read_text()
    good_run(workspace, "r-history")
    history = list((scenario_dir(workspace, "r-history") / "history").iterdir())
    assert len(history) == 1 and history[0].name.startswith("performance-run_1-replaced-")
    assert (history[0] / "settings.json").read_text() == created


@pytest.mark.slow
def test_a_second_run_into_the_same_folder_is_refused(workspace: Path) -> None:
    first = start_long_run(workspace, "r-busy")
    try:
        second = cli(workspace, *args_for(workspace, "--results-dir", "r-busy"))
        assert second.returncode == 2
        assert "another run is writing" in one_error_line(second.stderr)
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=BOUND_S)
    assert first.returncode == 130
    # the first run's folder is intact and says it was interrupted, nothing else was made
    assert sorted(p.name.split("-")[0] for p in
                  (scenario_dir(workspace, "r-busy") / "performance").glob("run_1*")) == \
        ["run_1.interrupted"]


@pytest.mark.parametrize("name", ["..", "../../outside", "/tmp/abs", ".hidden", "a/b", "~"])
def test_hostile_system_names_stay_one_folder_under_results(workspace: Path, name: str) -> None:
    results = workspace / "r-names"
    before = set(os.listdir(workspace))
    done = cli(workspace, *args_for(workspace, "--results-dir", str(results), "--system", name))
    assert done.returncode == 0, done.stderr
    assert set(os.listdir(workspace)) - before <= {"r-names"}
    for path in results.rglob("*"):
        assert path.resolve().is_relative_to(results.resolve())
    systems = [p.name for p in results.iterdir()]
    assert all(s and not s.startswith(".") and "/" not in s for s in systems)


def test_a_model_path_ending_in_dotdot_writes_nothing_in_the_source_tree(
        workspace: Path, demo_model_dir: Path, tmp_path: Path) -> None:
    model = tmp_path / "models" / "sub"
    model.mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "vocab.txt"):
        (model.parent / name).symlink_to(demo_model_dir / name)
    before = set(os.listdir(workspace))
    done = cli(workspace, *args_for(workspace, "--results-dir", "r-model",
                                    "--model", f"{model}/.."))
    assert done.returncode == 0, done.stderr
    assert set(os.listdir(workspace)) - before == {"r-model"}
    assert (workspace / "r-model").is_dir()


def test_a_full_disk_is_one_line_and_keeps_what_it_can(workspace: Path) -> None:
    code = (
        "import errno, sys\n"
        "import harness.runner as runner\n"
        "real = runner.write_json_atomic\n"
        "def full(path, data):\n"
        "    if str(path).endswith('result.json'):\n"
        "        raise OSError(errno.ENOSPC, 'No space left on device', str(path))\n"
        "    return real(path, data)\n"
        "runner.write_json_atomic = full\n"
        "from harness.cli import main\n"
        f"sys.exit(main({args_for(workspace, '--results-dir', 'r-full')!r}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=workspace, capture_output=True,
                          text=True, timeout=BOUND_S)
    assert done.returncode == 2
    assert "No space left on device" in one_error_line(done.stderr)
    failed = kept(workspace, "r-full", "failed")
    assert (failed / "mlperf_log_summary.txt").is_file()


def test_an_impossible_server_target_is_refused_up_front(workspace: Path) -> None:
    conf = workspace / "impossible.conf"
    conf.write_text("bert.Server.target_qps = 100000\n")
    done = cli(workspace, *args_for(workspace, "--results-dir", "r-absurd", "--user-conf",
                                    str(conf), "--backend-option", "delay_ms=20",
                                    scenario="Server"))
    assert done.returncode == 2
    error = one_error_line(done.stderr)
    assert "over its limit" in error and "bert.Server.target_qps near" in error
    assert not (workspace / "r-absurd").exists()


@pytest.mark.parametrize(("flag", "value", "fragment"), [
    ("--batch-size", "0", "--batch-size: got '0'; expected a whole number from 1"),
    ("--call-timeout", "-1", "--call-timeout: got '-1'; expected a number from 0 to 86,400"),
    ("--max-run-minutes", "0", "--max-run-minutes: got '0'; expected a number above 0"),
])
def test_bad_limits_are_refused_before_anything_is_written(workspace: Path, flag: str,
                                                           value: str, fragment: str) -> None:
    done = cli(workspace, *args_for(workspace, "--results-dir", "r-bad", flag, value))
    assert done.returncode == 2
    assert fragment in one_error_line(done.stderr)
    assert not (workspace / "r-bad").exists()


def test_run_from_another_folder_uses_the_project_and_says_so(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "harness", "run", "--help"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=BOUND_S,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0
    missing = subprocess.run([sys.executable, "-m", "harness", "model", "--model", "no-such"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=BOUND_S,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    assert missing.returncode == 2
    assert "has no user.conf, so this runs in the project folder" in missing.stderr
    assert "unknown model 'no-such'" in one_error_line(missing.stderr)
    assert not list(tmp_path.iterdir())  # nothing written where the user stood
