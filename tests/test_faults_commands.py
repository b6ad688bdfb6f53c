"""Faults in the newer commands (issue 25): hostile names and planted links in ``submission``,
runs and the model store; bounded waits; errors that suggest; long preparation that stops.

Each case runs the real command line with the null backend (or the function itself where no
process is needed) and asserts what the user gets: one ``error:`` line and exit 2 within
seconds, nothing outside the tree moved, written or deleted. Sweeps and signals to child
runs: tests/test_faults_sweeps.py.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backends.base import BackendError
from backends.wafer.spec import load_spec
from common.errors import ConfigError
from common.files import path_component, slug
from harness.loadgen.results import run_dir
from models.catalog import resolve_model
from tests.fault_helpers import FAST_S, args_for, cli, make_workspace, one_error_line


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, squad_dir: Path) -> Path:
    return make_workspace(tmp_path_factory, squad_dir)


def _submission(root: Path, *extra: str) -> list[str]:
    return ["submission", "--backend", "null", "--no-run", "--no-download",
            "--mirror", str(root / "datasets" / "squad"), "--max-examples", "40", *extra]


@pytest.mark.parametrize("submitter", ["VICTIM", "../../..", "..", "a/b", ".hidden", "org/../.."])
def test_a_submitter_that_is_a_path_is_refused_and_moves_nothing(
        workspace: Path, tmp_path: Path, submitter: str) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me\n")
    name = str(victim) if submitter == "VICTIM" else submitter
    out = tmp_path / "sub"
    started = time.monotonic()
    done = cli(workspace, *_submission(workspace, "--out", str(out), "--submitter", name))
    assert time.monotonic() - started < FAST_S
    assert done.returncode == 2, done.stderr
    assert "submitter" in one_error_line(done.stderr)
    assert (victim / "precious.txt").read_text() == "keep me\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["victim"]  # nothing made


def test_a_description_files_submitter_path_is_refused(workspace: Path,
                                                       tmp_path: Path) -> None:
    (tmp_path / "desc.toml").write_text('submitter = "../../.."\n')
    done = cli(workspace, *_submission(workspace, "--out", str(tmp_path / "deep" / "sub"),
                                       "--description", str(tmp_path / "desc.toml")))
    assert done.returncode == 2, done.stderr
    assert "'../../..' cannot be a folder name" in one_error_line(done.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["desc.toml"]


def test_a_link_planted_in_the_submission_tree_is_refused_not_followed(
        workspace: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep me\n")
    out = tmp_path / "sub"
    (out / "closed").mkdir(parents=True)
    (out / "closed" / "org").symlink_to(outside, target_is_directory=True)
    done = cli(workspace, *_submission(workspace, "--out", str(out), "--submitter", "org"))
    assert done.returncode == 2, done.stderr
    assert "symbolic link" in one_error_line(done.stderr)
    assert [p.name for p in outside.iterdir()] == ["precious.txt"]
    assert (out / "closed" / "org").is_symlink()


def test_the_submission_root_may_itself_be_a_link(workspace: Path,
                                                  tmp_path: Path) -> None:
    """The user's own choice of a bigger disk: the refusal is about what lies below it."""
    disk = tmp_path / "disk"
    disk.mkdir()
    (tmp_path / "sub").symlink_to(disk, target_is_directory=True)
    done = cli(workspace, *_submission(workspace, "--out", str(tmp_path / "sub"),
                                       "--submitter", "org", "--results-dir",
                                       str(tmp_path / "no-runs")))
    assert done.returncode == 2, done.stderr
    assert "--no-run was given" in one_error_line(done.stderr)  # past the place checks


def test_a_link_planted_below_results_is_refused_not_followed(
        workspace: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    results = tmp_path / "results"
    results.mkdir()
    (results / "sys").symlink_to(outside, target_is_directory=True)
    done = cli(workspace, *args_for(workspace, "--results-dir", str(results),
                                    "--system", "sys"))
    assert done.returncode == 2, done.stderr
    assert "symbolic link" in one_error_line(done.stderr)
    assert list(outside.iterdir()) == []


def test_a_link_planted_in_the_model_store_is_refused(workspace: Path,
                                                      tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    store = tmp_path / "store"
    store.mkdir()
    (store / "bert-large-fp32-onnx").symlink_to(outside, target_is_directory=True)
    done = cli(workspace, *args_for(workspace, "--model", "bert-large-fp32-onnx",
                                    "--model-store", str(store), "--results-dir",
                                    str(tmp_path / "r")))
    assert done.returncode == 2, done.stderr
    assert "model store" in one_error_line(done.stderr)
    assert list(outside.iterdir()) == []


def test_two_non_ascii_system_names_get_two_result_folders(tmp_path: Path) -> None:
    """Both used to become ``unnamed``, the second run replacing the first's result."""
    first, second = (run_dir(tmp_path, name, "minilm-l6-squad-demo", "Offline", "performance")
                     for name in ("Système", "Sistêma"))
    assert first != second
    for path in (first, second):
        assert path.relative_to(tmp_path).parts[0].isascii()


@pytest.mark.slow  # two real runs: the fast form is the case above
def test_two_non_ascii_system_names_get_two_folders(workspace: Path,
                                                    tmp_path: Path) -> None:
    results = tmp_path / "results"
    for name in ("Système", "Sistêma"):
        done = cli(workspace, *args_for(workspace, "--results-dir", str(results),
                                        "--system", name))
        assert done.returncode == 0, done.stderr
    systems = sorted(p.name for p in results.iterdir() if p.is_dir())
    assert len(systems) == 2, systems
    assert all(name.isascii() and not name.startswith(".") for name in systems)
    for system in systems:
        assert list((results / system).glob("*/Offline/performance/run_1/result.json"))


def test_a_list_in_a_description_file_is_one_line(workspace: Path,
                                                  tmp_path: Path) -> None:
    (tmp_path / "desc.toml").write_text('system_type = ["edge"]\n[system]\n')
    done = cli(workspace, *_submission(workspace, "--out", str(tmp_path / "sub"),
                                       "--description", str(tmp_path / "desc.toml")))
    assert done.returncode == 2, done.stderr
    assert "system_type must be a string" in one_error_line(done.stderr)


# ---- bounded waits, errors that suggest ---------------------------------------------------

@pytest.mark.parametrize("inside", [False, True])
def test_a_fifo_as_the_model_ends_at_once(workspace: Path, tmp_path: Path,
                                          inside: bool) -> None:
    """Reading a FIFO blocks until a writer comes: refused before anything opens it."""
    if inside:  # a checkpoint folder whose weights are a FIFO
        folder = tmp_path / "ckpt"
        folder.mkdir()
        (folder / "config.json").write_text("{}")
        os.mkfifo(folder / "model.safetensors")
        model = folder
    else:
        model = tmp_path / "model.onnx"
        os.mkfifo(model)
    started = time.monotonic()
    done = cli(workspace, *args_for(workspace, "--model", str(model), "--results-dir",
                                    str(tmp_path / "r")), timeout=60)
    assert time.monotonic() - started < FAST_S
    assert done.returncode == 2, done.stderr
    assert "not a regular file but a FIFO" in one_error_line(done.stderr)


@pytest.mark.parametrize("name, suggested", [
    ("bert-large", "bert-large-fp32-onnx"), ("bert-larg-fp32-onnx", "bert-large-fp32-onnx"),
    ("minilm", "minilm-l6-squad-demo")])
def test_an_unknown_model_suggests_the_catalog_name(tmp_path: Path, name: str,
                                                    suggested: str) -> None:
    with pytest.raises(ConfigError, match=rf"unknown model '{name}' \(did you mean {suggested}"):
        resolve_model(name, "null", store=tmp_path)


@pytest.mark.parametrize("backend, model, right", [
    ("tensorflow", "m.onnx", "--backend onnxruntime"),
    ("pytorch", "m.onnx", "--backend onnxruntime"),
    ("onnxruntime", "m.pb", "--backend tensorflow"),
    ("onnxruntime", "m.pytorch", "--backend pytorch")])
def test_a_model_file_for_another_backend_names_the_right_one(
        tmp_path: Path, backend: str, model: str, right: str) -> None:
    (tmp_path / model).write_bytes(b"not a real model")
    with pytest.raises(ConfigError, match=f"which backend '{backend}' cannot run.*use {right},"):
        resolve_model(str(tmp_path / model), backend, store=tmp_path / "store")


def test_an_unknown_wafer_preset_suggests_one() -> None:
    with pytest.raises(BackendError, match=r"wafer spec 'wse-2' \(did you mean wse2\?\)"):
        load_spec("wse-2")


# ---- long preparation on LoadGen's threads stops at the first signal -----------------------

def test_the_wafer_answer_computation_stops_within_one_call_of_a_stop() -> None:
    """It runs on LoadGen's loading thread, where no signal arrives: the run's handler asks it
    to stop (it used to finish all the answers first: 26 s in the report, 32 s here)."""
    import threading

    import numpy as np

    from backends import load_backend
    from backends.base import BackendSettings, FeatureBatch
    from backends.wafer import numerics
    from common import stopping

    backend = load_backend("null", None, BackendSettings(options={"delay_ms": 200}))
    rows, width = 400, 16
    batch = FeatureBatch(np.ones((rows, width), np.int64), np.ones((rows, width), np.int64),
                         np.zeros((rows, width), np.int64))
    outcome: list[BaseException | None] = []

    def work() -> None:
        try:
            numerics.compute(backend, batch, np.full(rows, width), 8, progress=False)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - inspected below
            outcome.append(exc)

    stopping.clear_stop()
    thread = threading.Thread(target=work, daemon=True)
    thread.start()  # 50 calls of 0.2 s: 10 s unstopped
    time.sleep(0.5)
    stopping.request_stop()
    asked = time.monotonic()
    thread.join(timeout=5)
    stopping.clear_stop()
    assert not thread.is_alive() and time.monotonic() - asked < 2
    assert isinstance(outcome[0], stopping.StopRequested), outcome

# ---- names as path components --------------------------------------------------------------

@settings(max_examples=100, deadline=None)
@given(a=st.text(max_size=120), b=st.text(max_size=120))
def test_a_slug_is_one_safe_component_and_distinct_lossy_names_stay_distinct(
        a: str, b: str) -> None:
    for text in (a, b):
        name = slug(text)
        assert re.fullmatch(r"[a-z0-9_][a-z0-9._-]{0,99}", name), name  # never . - or /
    if a != b and not a.isascii() and not b.isascii():  # the two Système-like names
        assert slug(a) != slug(b)


def test_plain_ascii_names_keep_their_folders() -> None:
    """Existing results stay where they are: only lossy names gain a hash."""
    assert slug("My System") == "my-system"
    assert slug("amd-epyc-2c-null") == "amd-epyc-2c-null"
    assert slug("Système") != slug("Systeme") and slug("Système").startswith("systeme-")


@pytest.mark.parametrize("name", ["NVIDIA", "my-org", "Org_2.0+x"])
def test_a_plain_submitter_is_kept_as_it_is(name: str) -> None:
    assert path_component(name, "submitter") == name
