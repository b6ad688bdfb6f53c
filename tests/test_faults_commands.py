"""Faults in the newer commands (issue 25): hostile names and planted links in ``submission``,
runs, the model store and sweeps; signals to child runs; records a later command reads.

Each case runs the real command line with the null backend and asserts what the user gets:
one ``error:`` line and exit 2 within seconds, nothing outside the tree moved, written or
deleted, and what was kept.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from tests.test_faults import REPO, args_for, cli, one_error_line

FAST_S = 20  # a refusal that reads no data and runs nothing ends well within this


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, squad_dir: Path) -> Path:
    """A folder with a user.conf and the first questions' features cached once."""
    root = tmp_path_factory.mktemp("faults-commands")
    shutil.copy(REPO / "user.conf", root / "user.conf")
    done = cli(root, "data", "--mirror", str(squad_dir), "--no-download")
    assert done.returncode == 0, done.stderr
    return root


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

