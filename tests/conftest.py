"""Shared fixtures: the official SQuAD files beside the project, and small stand-in models.

Plain helper functions are in ``helpers.py``; the stand-in model builders in
``tiny_models.py``. A fixture that needs an optional library skips the tests using it, with a
reason naming the extra to install.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import needs
from tests.tiny_models import make_tiny_hf_qa_model

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(scope="session")
def squad_dir() -> Path:
    """../shared/squad with the official dev-v1.1.json and vocab.txt (skip if absent)."""
    path = SHARED / "squad"
    if not (path / "dev-v1.1.json").is_file() or not (path / "vocab.txt").is_file():
        pytest.skip(f"official SQuAD files not found in {path}")
    return path


@pytest.fixture(scope="session")
def demo_model_dir() -> Path:
    path = SHARED / "models" / "minilm-l6-squad-demo"
    if not (path / "model.safetensors").is_file():
        pytest.skip(f"demo model not found in {path}")
    return path


@pytest.fixture(scope="session")
def tiny_hf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random ``BertForQuestionAnswering`` checkpoint directory (2 layers, hidden 64;
    seed 0), shared by every test: read it, never write into it."""
    return make_tiny_hf_qa_model(tmp_path_factory.mktemp("tiny_hf") / "tiny-bert-qa")


@pytest.fixture(scope="session")
def tiny_onnx(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tiny_hf_dir`` exported to ONNX (Hugging Face tensor names), as ``tiny.onnx``."""
    # checked before tiny_hf_dir is built, so that a skip names every extra this takes
    needs("onnx", "export", purpose="exporting a Hugging Face checkpoint to ONNX")
    from models.export_onnx import export_hf_qa_to_onnx

    tiny_hf_dir = request.getfixturevalue("tiny_hf_dir")
    return export_hf_qa_to_onnx(tiny_hf_dir, tmp_path_factory.mktemp("tiny_onnx") / "tiny.onnx")


@pytest.fixture(scope="session")
def null_results(squad_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A results tree of real short runs made by ``python -m harness``: the null backend's
    Offline twice (the first moves to history/), Server, an accuracy run of 20 questions and a
    run failing on purpose (kept as ``run_1.failed-*``), and the wafer simulator's
    SingleStream (timing only) under another system name. Read it, never write into it."""
    import subprocess
    import sys

    root = tmp_path_factory.mktemp("null_results") / "results"
    base = [sys.executable, "-m", "harness", "run", "--short", "--no-progress", "--mirror",
            str(squad_dir), "--results-dir", str(root)]
    runs = [["--backend", "null", "--scenario", "Offline"],
            ["--backend", "null", "--scenario", "Offline"],
            ["--backend", "null", "--scenario", "Server"],
            ["--backend", "null", "--scenario", "Offline", "--mode", "accuracy",
             "--max-examples", "20"],
            ["--backend", "wafer", "--backend-option", "numerics=none", "--scenario",
             "SingleStream", "--system", "wafer-box"],
            ["--backend", "null", "--backend-option", "fail_after=6", "--scenario", "Offline"]]
    project = Path(__file__).resolve().parents[1]
    for index, extra in enumerate(runs):
        done = subprocess.run(base + extra, cwd=project, capture_output=True, text=True,
                              timeout=300)
        expected = (2,) if index == len(runs) - 1 else (0, 3)  # an INVALID run is a result
        assert done.returncode in expected, done.stderr[-2000:]
    return root
