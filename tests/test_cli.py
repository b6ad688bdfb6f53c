"""The command line: bad input gives one clear error (exit 2), no traceback, nothing written."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import build_parser
from tests.helpers import needs
from tests.tiny_models import make_onnx_with_names

REPO = Path(__file__).resolve().parents[1]


def harness(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args], cwd=cwd, capture_output=True, text=True,
        timeout=300, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )


@pytest.fixture()
def project(tmp_path: Path, squad_dir: Path) -> Path:
    """A working directory with a verified copy of the data and a user.conf."""
    (tmp_path / "datasets/squad").mkdir(parents=True)
    for name in ("dev-v1.1.json", "vocab.txt"):
        shutil.copy(squad_dir / name, tmp_path / "datasets/squad" / name)
    shutil.copy(REPO / "user.conf", tmp_path / "user.conf")
    return tmp_path


def assert_one_clean_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    # progress bars may come first; the error is the last thing said, and said once
    error = result.stderr[result.stderr.index("error: "):]
    assert result.stderr.count("error: ") == 1
    for fragment in fragments:
        assert fragment in error


def test_unknown_backend_suggests_the_right_name(project: Path) -> None:
    result = harness("run", "--backend", "onnxrt", "--no-download", "--mirror", "none",
                     cwd=project)
    assert_one_clean_error(result, "unknown backend 'onnxrt'", "Did you mean: onnxruntime")
    assert not (project / "results").exists()


def test_malformed_dev_json(project: Path) -> None:
    bad = project / "datasets/squad/dev-v1.1.json"
    bad.write_text('{"data": [')
    mirror = project / "mirror"
    mirror.mkdir()
    shutil.copy(bad, mirror / "dev-v1.1.json")
    (project / "null.onnx").write_bytes(b"unused by the null backend")
    result = harness("run", "--backend", "null", "--model", "null.onnx", "--no-download",
                     "--mirror", str(mirror), cwd=project)
    # the malformed file fails its md5 first: the error names the file and the md5 wanted
    assert_one_clean_error(result, "dev-v1.1.json", "3e85deb501d4e538b6bc56f786231552",
                           "(wrong)")
    assert not (project / "results").exists() and not (project / "datasets/cache").exists()


def test_malformed_json_with_no_md5_check_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "dev.json"
    bad.write_text("[1, 2")
    from common.errors import DataError
    from squad.examples import read_squad_examples

    with pytest.raises(DataError, match=str(bad)):
        read_squad_examples(bad)


def test_onnx_with_unexpected_tensor_names(project: Path) -> None:
    needs("onnx", purpose="loading an ONNX graph in the onnxruntime backend")
    model = project / "odd.onnx"
    make_onnx_with_names(model, ["tokens", "mask"], ["span_logits"])
    result = harness("run", "--model", str(model), "--no-download", "--short", cwd=project)
    assert_one_clean_error(result, str(model), "tokens", "span_logits", "input_mask")
    assert not (project / "results").exists()


def test_unknown_model_name(project: Path) -> None:
    # the null backend: the model is checked whichever backend libraries are installed
    result = harness("run", "--backend", "null", "--model", "bert-huge", "--no-download",
                     cwd=project)
    assert_one_clean_error(result, "unknown model 'bert-huge'", "bert-large-fp32-onnx")


def test_help_lists_every_scenario_and_backend() -> None:
    text = build_parser().format_help()
    assert "accuracy" in text and "run" in text
    run_help = subprocess.run([sys.executable, "-m", "harness", "run", "--help"], cwd=REPO,
                              capture_output=True, text=True, timeout=60).stdout
    for word in ("SingleStream", "MultiStream", "Server", "Offline", "onnxruntime", "null"):
        assert word in run_help
