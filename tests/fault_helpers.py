"""Shared by the fault tests of the newer commands: run the command line, read its one
``error:`` line, and a workspace with the first questions' features cached."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BOUND_S = 120  # a command that should end in seconds and has not after this is hung
FAST_S = 20  # a refusal that reads no data and runs nothing ends well within this


def args_for(root: Path, *extra: str) -> list[str]:
    """A short Offline run of the null backend on the first questions."""
    return ["run", "--backend", "null", "--scenario", "Offline", "--short",
            "--max-examples", "40", "--no-progress", "--no-download",
            "--mirror", str(root / "datasets" / "squad"), *extra]


def cli(root: Path, *args: str, timeout: float = BOUND_S) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=root,
                          capture_output=True, text=True, timeout=timeout)


def one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    assert stderr.count("error: ") == 1, stderr
    return stderr[stderr.index("error: "):]


def make_workspace(tmp_path_factory, squad_dir: Path) -> Path:
    """A folder with a user.conf and the first questions' features cached once."""
    root = tmp_path_factory.mktemp("faults-commands")
    shutil.copy(REPO / "user.conf", root / "user.conf")
    done = cli(root, "data", "--mirror", str(squad_dir), "--no-download")
    assert done.returncode == 0, done.stderr
    return root
