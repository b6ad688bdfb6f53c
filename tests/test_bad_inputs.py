"""Every bad input is one clear line naming the file (exit 2 from the CLI), nothing
half-written: damaged checkpoints, hostile user.conf files, accuracy logs that cover too
little."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from backends import BackendError
from common.errors import ConfigError, DataError
from harness.loadgen.settings import UserConfWarning, check_user_conf, resolved_user_conf
from squad.accuracy import PartialLogWarning, score_accuracy_log
from squad.examples import read_squad_examples
from squad.features import build_features, read_vocab
from tests.helpers import FAST_CONF, needs, open_backend, write_squad

ROOT = Path(__file__).resolve().parents[1]


def _one_line(message: str, *names: Path) -> None:
    assert "\n" not in message and "Traceback" not in message, message
    for name in names:
        assert str(name) in message, message


def _cli(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m harness ARGS`` in ``cwd`` (which holds a user.conf, so the CLI stays)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "harness", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def _assert_cli_error(result: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit 2, exactly one ``error:`` line on stderr containing ``needles``, no traceback."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


# ---- damaged Hugging Face checkpoints -----------------------------------------------------


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


CHECKPOINT_DAMAGE = {
    # name: (file, damage, what the message says)
    "weights-truncated": ("model.safetensors", _truncate, "corrupt or truncated safetensors"),
    "weights-empty": ("model.safetensors", lambda p: p.write_bytes(b""),
                      "corrupt or truncated safetensors"),
    "weights-garbage": ("model.safetensors", lambda p: p.write_bytes(b"\xff" * 64),
                        "corrupt or truncated safetensors"),
    "config-truncated": ("config.json", _truncate, "not valid JSON"),
    "config-list": ("config.json", lambda p: p.write_text("[1, 2]"),
                    "expected a JSON object of model settings, found a JSON list"),
    "config-binary": ("config.json", lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n\xff\x00"),
                      "not a text file"),
}


@pytest.fixture()
def damaged_checkpoint(request: pytest.FixtureRequest, tmp_path: Path):
    """A copy of the tiny checkpoint with one file damaged as ``request.param`` says."""
    file, damage, message = CHECKPOINT_DAMAGE[request.param]
    tiny_hf_dir = request.getfixturevalue("tiny_hf_dir")
    copy = shutil.copytree(tiny_hf_dir, tmp_path / "ckpt")
    damage(copy / file)
    return copy, copy / file, message


@pytest.mark.parametrize("damaged_checkpoint", list(CHECKPOINT_DAMAGE), indirect=True)
def test_pytorch_backend_names_the_damaged_file(damaged_checkpoint) -> None:
    needs("torch", purpose="the PyTorch backend")
    folder, file, message = damaged_checkpoint
    with pytest.raises(BackendError, match=message) as info:
        open_backend("pytorch", folder)
    _one_line(str(info.value), file)
    assert info.value.__cause__ is None


@pytest.mark.parametrize("damaged_checkpoint", list(CHECKPOINT_DAMAGE), indirect=True)
def test_export_names_the_damaged_file(damaged_checkpoint, tmp_path: Path) -> None:
    needs("onnx", "export", purpose="exporting a Hugging Face checkpoint to ONNX")
    from models.export_onnx import ModelExportError, export_hf_qa_to_onnx

    folder, file, message = damaged_checkpoint
    out = tmp_path / "out" / "model.onnx"
    with pytest.raises(ModelExportError, match=message) as info:
        export_hf_qa_to_onnx(folder, out)
    _one_line(str(info.value), file)
    assert not out.exists()


def test_cli_export_of_a_truncated_checkpoint(request: pytest.FixtureRequest,
                                              tmp_path: Path) -> None:
    needs("onnx", "export", purpose="exporting a Hugging Face checkpoint to ONNX")
    copy = shutil.copytree(request.getfixturevalue("tiny_hf_dir"), tmp_path / "ckpt")
    _truncate(copy / "model.safetensors")
    (tmp_path / "user.conf").write_text(FAST_CONF)
    result = _cli("model", "--model", copy, "--backend", "onnxruntime",
                  "--model-store", tmp_path / "store", cwd=tmp_path)
    _assert_cli_error(result, str(copy / "model.safetensors"), "corrupt or truncated")
    assert not list((tmp_path / "store").rglob("*.onnx"))


# ---- user.conf ----------------------------------------------------------------------------


def _conf(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "my-user.conf"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_project_and_test_user_confs_pass_quietly(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserConfWarning)
        assert check_user_conf(ROOT / "user.conf") == (ROOT / "user.conf").read_text()
        check_user_conf(_conf(tmp_path, FAST_CONF))
        check_user_conf(_conf(tmp_path, "# only a comment\n\n   \r\n*.*.min_duration = 0\r\n"
                                        "#lone-word\n*.Offline.target_qps = 010\n"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (bytes(range(256)) * 4, r"not a text user.conf \(byte 128, line 2, is not UTF-8\)"),
        (b"bert.Offline.target_qps = 5\n\x00\x01\x02\n", r"line 2: binary data"),
        ("bert.Offline.target_qps = 5\n# fine\nthis is not a setting\n",
         "line 3: 'this is not a setting' is not 'model.Scenario.key = value'"),
        ("bert.Offline.target_qps=5\n", "line 1: 'bert.Offline.target_qps=5' is not"),
        ("target_qps = 5\n", "line 1: 'target_qps = 5' is not"),
        ("bert.Offline.target_qps = 5 # five\n", "line 1: .* comment after the value"),
        ("#no space after the hash\n", "line 1: .*comment only when its '#' stands apart"),
        ("bert.Offline.target_qps\u00a0=\u00a05\n", "line 1: .* is not 'model.Scenario"),
        ("\n\nbert.Offline.target_qps = -5\n", "line 3: target_qps = -5: a negative value"),
        ("*.Server.min_query_count = -1\n", "line 1: min_query_count = -1: a negative value"),
        ("bert.Offline.target_qps = fast\n", "line 1: target_qps = fast: expected a non-neg"),
        ("bert.Offline.min_duration = 6e5\n", "min_duration = 6e5: expected a non-negative "
                                              "whole number .LoadGen would cut it off"),
        ("bert.Offline.min_duration = 010\n", "leading 0 as octal"),
        ("bert.Server.target_latency = 1.5\n", "target_latency = 1.5: expected a non-negative"),
        ("bert.SingleStream.target_latency_percentile = 150\n", r"percentile in \(0, 100\]"),
        ("bert.Offline.unknown_key = nan\n", "no error: warned below"),
        ("bert.Offline.unknown_key = fast\n", "line 1: unknown_key = fast: the value must be"),
    ],
    ids=["binary", "nul-bytes", "garbage-line", "no-spaces", "no-model", "trailing-comment",
         "glued-comment", "no-break-spaces", "negative-float", "negative-int", "word",
         "exponent-for-int", "octal", "fraction-for-server-latency", "percentile",
         "unknown-key-nan", "unknown-key-word"],
)
def test_bad_user_conf_is_refused_naming_the_users_file(tmp_path: Path, text, message: str):
    path = _conf(tmp_path, text)
    if message.startswith("no error"):
        with pytest.warns(UserConfWarning):
            check_user_conf(path)
        return
    with pytest.raises(ConfigError, match=message) as info:
        # through the function the runner calls: the message names the user's file, not
        # the copy LoadGen reads
        resolved_user_conf(path, "Offline", 100, short_run=True)
    _one_line(str(info.value))
    assert str(info.value).startswith(f"{path}: " if message.startswith("not a text")
                                      else f"{path}, line ")
    assert info.value.__cause__ is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("bert.Offline.target_qbs = 5", "line 2: unknown key 'target_qbs': LoadGen ignores"),
        ("bert.offline.target_qps = 5", "line 2: unknown scenario 'offline'"),
        ("resnet50.Offline.target_qps = 5", "line 2: model 'resnet50' is not 'bert'"),
        ("*.*.qsl_rng_seed = 1", "line 2: qsl_rng_seed is read from LoadGen's built-in "
                                 "mlperf.conf only"),
        ("*.*.mode = 1", "line 2: mode overrides the test mode"),
    ],
)
def test_lines_loadgen_would_ignore_warn(tmp_path: Path, line: str, message: str) -> None:
    path = _conf(tmp_path, f"# my settings\n{line}\n")
    with pytest.warns(UserConfWarning, match=message) as caught:
        text = resolved_user_conf(path, "Offline", 100, short_run=False)
    assert str(caught[0].message).startswith(f"{path}, line 2: ")
    assert line in text  # still passed on verbatim: LoadGen ignores it


def test_unreadable_user_conf(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read user.conf") as info:
        check_user_conf(tmp_path)  # a directory
    _one_line(str(info.value), tmp_path)


# ---- accuracy logs that cover too little --------------------------------------------------


@pytest.fixture(scope="module")
def small_data(squad_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("small_squad")
    long_context = " ".join(f"Word{i} is here." for i in range(90))
    squad = write_squad(root / "small.json", [
        ("The Eiffel Tower is in Paris.", [("q0", "Where is the tower?", ["Paris"])]),
        (long_context, [("q1", "What is word7?", ["Word7"]), ("q2", "Is it here?", ["here"])]),
    ])
    examples = read_squad_examples(squad)
    features = build_features(examples, squad_dir / "vocab.txt")
    return {"examples": examples, "features": features,
            "vocab": read_vocab(squad_dir / "vocab.txt")}


def _write_log(path: Path, indexes, seq: int = 384) -> Path:
    data = np.zeros((seq, 2), "<f4").tobytes().hex()
    path.write_text(json.dumps([{"seq_id": i, "qsl_idx": i, "data": data} for i in indexes]))
    return path


@pytest.mark.parametrize("indexes", [[], [100, 101]], ids=["empty", "other-features"])
def test_log_covering_no_feature_is_an_error(small_data: dict, tmp_path: Path, indexes) -> None:
    log = _write_log(tmp_path / "mlperf_log_accuracy.json", indexes)
    count = len(small_data["features"])
    with pytest.raises(DataError, match=f"covers 0 of {count} features") as info:
        score_accuracy_log(log, small_data["features"], small_data["examples"],
                           small_data["vocab"])
    _one_line(str(info.value), log)


def test_log_covering_part_of_the_features_warns_and_says_so(small_data: dict,
                                                             tmp_path: Path) -> None:
    features = small_data["features"]
    count = len(features)
    log = _write_log(tmp_path / "mlperf_log_accuracy.json", [0])  # the first question only
    note = (f"covers 1 of {count} features; the scores count the missing questions as wrong"
            " (it holds exactly the features of the first 1 questions: score them alone with "
            "--max-examples 1)")
    with pytest.warns(PartialLogWarning) as caught:
        report, _ = score_accuracy_log(log, features, small_data["examples"],
                                       small_data["vocab"])
    assert str(caught[0].message) == f"{log} {note}"
    assert report.features_logged == 1 and report.features_expected == count
    assert (f"warning: the accuracy log covers 1 of {count} features; the scores count the "
            "missing questions as wrong") in report.text().splitlines()
    # a log stopping inside a question's windows gets no --max-examples hint
    _write_log(log, [0, 1])
    with pytest.warns(PartialLogWarning, match=f"covers 2 of {count} features") as caught:
        score_accuracy_log(log, features, small_data["examples"], small_data["vocab"])
    assert "--max-examples" not in str(caught[0].message)


def test_complete_log_scores_quietly(small_data: dict, tmp_path: Path) -> None:
    features = small_data["features"]
    log = _write_log(tmp_path / "mlperf_log_accuracy.json", range(len(features)))
    with warnings.catch_warnings():
        warnings.simplefilter("error", PartialLogWarning)
        report, _ = score_accuracy_log(log, features, small_data["examples"],
                                       small_data["vocab"])
    assert "warning" not in report.text()


def test_logits_longer_than_the_features_name_the_log(small_data: dict, tmp_path: Path) -> None:
    log = _write_log(tmp_path / "mlperf_log_accuracy.json", range(len(small_data["features"])),
                     seq=400)
    with pytest.raises(DataError, match="400 logits for a sequence of 384") as info:
        score_accuracy_log(log, small_data["features"], small_data["examples"],
                           small_data["vocab"])
    _one_line(str(info.value), log)


# ---- the command line, on the official data -----------------------------------------------


@pytest.fixture(scope="module")
def cli_workspace(squad_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A folder with a user.conf, the official files and their features built once, and
    the data arguments that use them."""
    from squad.data import DataConfig, prepare_data

    root = tmp_path_factory.mktemp("cli")
    (root / "user.conf").write_text(FAST_CONF)
    data = DataConfig(root / "squad", root / "cache", (squad_dir,), download=False)
    prepared = prepare_data(data, progress=False)
    args = ["--data-dir", data.data_dir, "--cache-dir", data.cache_dir, "--mirror", squad_dir,
            "--no-download"]
    return {"root": root, "args": args, "features": len(prepared.features)}


def test_cli_score_of_an_empty_log(cli_workspace: dict) -> None:
    root = cli_workspace["root"]
    log = _write_log(root / "empty_log.json", [])
    result = _cli("score", log, *cli_workspace["args"], cwd=root)
    _assert_cli_error(result, str(log), f"covers 0 of {cli_workspace['features']} features")


def test_cli_score_of_a_partial_log(cli_workspace: dict) -> None:
    root = cli_workspace["root"]
    log = _write_log(root / "partial_log.json", range(3))
    result = _cli("score", log, *cli_workspace["args"], cwd=root)
    assert result.returncode == 0, result.stderr
    note = f"covers 3 of {cli_workspace['features']} features"
    assert f"{log} {note}" in result.stderr and "--max-examples 3" in result.stderr
    assert f"warning: the accuracy log {note}" in result.stdout


def test_cli_run_with_a_binary_user_conf(cli_workspace: dict, tmp_path: Path) -> None:
    root = cli_workspace["root"]
    conf = _conf(tmp_path, b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)))
    model = tmp_path / "stand-in.onnx"  # the null backend never reads it
    model.write_bytes(b"not read")
    result = _cli("run", "--backend", "null", "--model", model, "--user-conf", conf,
                  "--results-dir", tmp_path / "results", "--model-store", tmp_path / "store",
                  "--max-examples", "5", "--no-progress", *cli_workspace["args"], cwd=root)
    _assert_cli_error(result, f"{conf}: not a text user.conf")
    assert not (tmp_path / "results").exists()
