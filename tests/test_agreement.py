"""Agreement between backends: null vs ONNX Runtime disagrees, ONNX Runtime agrees with itself."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from backends import REGISTRY, BackendEntry
from harness import agreement
from harness.cli import main
from models.quantize import QuantizeSettings, quantize_model
from squad.metrics import SquadScores
from tests.helpers import random_features


@pytest.fixture(scope="module")
def models(tiny_onnx: Path, tmp_path_factory) -> dict[str, Path]:
    """The tiny model (``tiny.onnx``, labelled "tiny") and its dynamic int8 quantization."""
    int8 = tmp_path_factory.mktemp("agree_models") / "tiny_int8.onnx"
    quantize_model(tiny_onnx, int8, QuantizeSettings("dynamic"), features=random_features())
    return {"fp32": tiny_onnx, "int8": int8}


@pytest.fixture(scope="module")
def data_args(tmp_path_factory, squad_dir: Path) -> list[str]:
    root = tmp_path_factory.mktemp("agree_data")
    return ["--no-download", "--mirror", str(squad_dir), "--data-dir", str(root / "squad"),
            "--cache-dir", str(root / "cache"), "--max-examples", "4", "--no-progress"]


def agree(tmp_path: Path, data_args: list[str], *args: str) -> tuple[int, dict]:
    results = tmp_path / "results"
    code = main(["agree", *args, "--results-dir", str(results), *data_args])
    written = list((results / "agreement").glob("*.json"))
    return code, json.loads(written[0].read_text()) if written else {}


def test_null_and_onnxruntime_disagree(tmp_path, data_args, models, capsys,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # a registered backend whose framework is missing is skipped with a note
    monkeypatch.setitem(REGISTRY, "absent", BackendEntry("no_such_framework_module:Backend",
                                                        "absent", ("onnx",)))
    code, report = agree(tmp_path, data_args, "--model", str(models["fp32"]),
                         "--backends", "onnxruntime,null,absent")
    assert code == 1
    (pair,) = report["pairs"]
    assert (pair["a"], pair["b"]) == ("onnxruntime", "null") and not pair["ok"]
    assert pair["kind"] == "same-model" and pair["max_start_diff"] > 1e-3
    assert report["questions"] == 4 and report["logit_diff_over"].startswith("real tokens")
    assert [s["label"] for s in report["skipped"]] == ["absent"]
    out = capsys.readouterr().out
    assert "DISAGREE" in out and "skipped absent: backend 'absent' needs a library" in out


def test_onnxruntime_agrees_with_itself(tmp_path, data_args, models) -> None:
    model = str(models["fp32"])
    code, report = agree(tmp_path, data_args, "--model", f"{model},{model}",
                         "--backends", "onnxruntime")
    assert code == 0 and report["ok"]
    labels = [p["label"] for p in report["participants"]]
    assert labels == ["onnxruntime:tiny", "onnxruntime:tiny#2"]
    (pair,) = report["pairs"]
    assert pair["max_start_diff"] == 0.0 and pair["same_answers"] == 1.0
    assert report["participants"][0]["samples_per_second"] > 0


def test_fp32_and_int8_are_judged_on_f1(tmp_path, data_args, models) -> None:
    args = ["--model", f"{models['fp32']},{models['int8']}", "--backends", "onnxruntime"]
    code, report = agree(tmp_path, data_args, *args, "--max-f1-diff", "100")
    assert code == 0
    (pair,) = report["pairs"]
    assert pair["kind"] == "different-model"
    assert [p["precision"] for p in report["participants"]] == ["fp32", "int8"]
    # the same pair would fail fp32 tolerances: int8 logits are not within 1e-3
    assert pair["max_start_diff"] > 1e-3


def test_too_few_participants_or_a_typo_is_an_error(tmp_path, data_args, models,
                                                    capsys) -> None:
    code, _ = agree(tmp_path, data_args, "--model", str(models["fp32"]), "--backends", "null")
    assert code == 2
    assert "at least two runnable participants" in capsys.readouterr().err
    code, _ = agree(tmp_path, data_args, "--backends", "onnxruntim,null")
    assert code == 2
    assert "Did you mean: onnxruntime" in capsys.readouterr().err


def participant(label: str, start: np.ndarray, answers: dict, f1: float = 50.0,
                precision: str = "fp32", model: str = "m") -> agreement.ParticipantResult:
    return agreement.ParticipantResult(
        label, "x", "0", {"name": model}, precision,
        SquadScores(f1, f1, len(answers), len(answers)), 1.0, start, start.copy(), answers,
    )


def test_padding_is_ignored_and_nan_fails() -> None:
    mask = np.zeros((2, 8), bool)
    mask[:, :5] = True
    base = np.zeros((2, 8), np.float32)
    padded_noise = base.copy()
    padded_noise[:, 6] = 99.0  # only where input_mask is 0
    config = agreement.AgreementConfig()
    answers = {"q1": "a", "q2": "b"}
    pair = agreement.compare_pair(participant("a", base, answers),
                                  participant("b", padded_noise, answers), mask, config)
    assert pair.ok and pair.max_start_diff == 0.0
    broken = base.copy()
    broken[0, 0] = np.nan
    pair = agreement.compare_pair(participant("a", base, answers),
                                  participant("b", broken, {"q1": "a", "q2": "c"}), mask, config)
    assert not pair.ok and pair.same_answers == 0.5
    assert any("logits differ" in f for f in pair.failures)


def test_different_models_are_judged_on_f1() -> None:
    mask = np.ones((1, 4), bool)
    logits = np.zeros((1, 4), np.float32)
    fp32 = participant("fp32", logits, {"q": "a"}, f1=66.0)
    int8 = participant("int8", logits + 5, {"q": "b"}, f1=64.5, precision="int8",
                       model="m-int8-static")
    pair = agreement.compare_pair(fp32, int8, mask, agreement.AgreementConfig())
    assert pair.kind == "different-model" and pair.f1_diff == pytest.approx(-1.5)
    assert pair.failures == ("F1 differs by 1.50 > 1 points",)
