"""The real demo model end to end: export to ONNX, LoadGen accuracy run, real answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.runner import RunConfig
from models.catalog import resolve_model
from tests.helpers import isolated, needs, squad_data

# each backend gets the checkpoint in its own format: ONNX export (torch and transformers
# trace the model, ONNX Runtime checks the result), the checkpoint itself, a TF frozen graph
# converted from the weights (read and checked with torch) -- and the extras that takes
FORMATS = {"onnxruntime": ("onnx", ("onnx", "export")), "pytorch": ("hf", ("torch",)),
           "tensorflow": ("tf-frozen", ("tf", "torch"))}


@pytest.mark.slow
@pytest.mark.parametrize("backend", sorted(FORMATS))
def test_demo_model_answers_held_out_questions(tmp_path: Path, squad_dir: Path,
                                               demo_model_dir: Path, backend: str) -> None:
    model_format, extras = FORMATS[backend]
    needs(*extras, purpose=f"the demo model on {backend}")
    store = tmp_path / "store"
    config = RunConfig(
        scenario="Offline", mode="accuracy", backend=backend,
        model=str(demo_model_dir), batch_size=4, model_store=store, system="demo",
        data=squad_data(tmp_path, squad_dir, max_examples=40),
        results_dir=tmp_path / "results", progress=False,
    )
    outcome = isolated(config, timeout_s=600)
    scores = outcome.accuracy.scores
    assert scores.total == 40 and scores.answered == 40
    # a real QA model on its held-out articles (66 F1 over all 2804); random logits give ~7
    assert scores.f1 > 45.0
    settings = json.loads((outcome.directory / "settings.json").read_text())
    assert settings["model"]["format"] == model_format
    assert settings["backend"]["backend"] == backend
    assert settings["model"]["source"] == str(demo_model_dir)
    # the exported/converted file is reused while the weights are unchanged
    exported = resolve_model(str(demo_model_dir), backend, store)
    assert exported.path == Path(settings["model"]["path"])
    assert exported.md5 == settings["model"]["md5"]
