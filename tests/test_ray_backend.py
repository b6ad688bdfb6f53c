"""Scale-out on Ray: the harness's runs through actors, and an actor that dies."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import needs

REPO = Path(__file__).resolve().parents[1]
BOUND_S = 300  # Ray starts in seconds; a run that has not ended after this is hung

pytestmark = pytest.mark.slow  # each test starts a local Ray instance


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, squad_dir: Path, demo_model_dir: Path) -> Path:
    needs("ray", purpose="the ray backend")
    root = tmp_path_factory.mktemp("ray")
    shutil.copy(REPO / "user.conf", root / "user.conf")
    return root


def harness(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args, "--no-progress",
                           "--max-examples", "30", "--mirror", str(REPO.parent / "shared/squad"),
                           "--no-download"],
                          cwd=root, capture_output=True, text=True, timeout=BOUND_S)


def test_an_accuracy_run_through_two_actors_equals_the_backend_alone(workspace: Path) -> None:
    alone = harness(workspace, "accuracy", "--backend", "null", "--system", "alone")
    assert alone.returncode == 0, alone.stderr
    spread = harness(workspace, "accuracy", "--backend", "ray", "--system", "spread",
                     "--backend-option", "backend=null", "--backend-option", "actors=2",
                     "--backend-option", "inner.delay_ms=5", "--batch-size", "4")
    assert spread.returncode == 0, spread.stderr
    runs = {name: next((workspace / "results" / name).rglob("accuracy")) for name in
            ("alone", "spread")}
    scores = {name: json.loads((run / "accuracy.json").read_text()) for name, run in
              runs.items()}
    assert scores["spread"]["scores"] == scores["alone"]["scores"]
    settings = json.loads((runs["spread"] / "settings.json").read_text())["backend"]
    assert settings["backend"] == "ray" and settings["inner_backend"] == "null"
    assert settings["actors"] == 2
    # inner.* passed on as given (text from the command line; the actor's backend checks it)
    assert settings["actor"]["settings"]["options"] == {"delay_ms": "5"}
    assert settings["actor"]["pid"] != settings.get("pid")


def test_an_actor_that_dies_ends_the_run_cleanly_and_keeps_its_logs(workspace: Path) -> None:
    done = harness(workspace, "run", "--backend", "ray", "--system", "dies", "--short",
                   "--backend-option", "backend=null", "--backend-option", "actors=2",
                   "--backend-option", "inner.exit_after=6", "--batch-size", "2")
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    error = done.stderr[done.stderr.index("error: "):]
    assert "ray actor" in error and "failed" in error
    failed = list((workspace / "results" / "dies").rglob("run_1.failed-*"))
    assert len(failed) == 1
    assert (failed[0] / "mlperf_log_detail.txt").is_file()


def test_more_actors_than_cpus_is_refused_in_seconds_with_the_reason(workspace: Path) -> None:
    """Ray would keep the extra actors pending; the load used to wait 300 s, then say
    'could not load'."""
    wanted = (os.cpu_count() or 1) * 8
    started = time.monotonic()
    done = harness(workspace, "run", "--backend", "ray", "--backend-option", "backend=null",
                   "--backend-option", f"actors={wanted}", "--short",
                   "--results-dir", str(workspace / "r-many"))
    assert time.monotonic() - started < 120  # Ray's own start-up, not the 300 s wait
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert f"actors={wanted} x threads_per_actor=1 need {wanted} CPUs" in done.stderr
    assert not (workspace / "r-many").exists()
