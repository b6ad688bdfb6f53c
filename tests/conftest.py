"""Shared fixtures: the official SQuAD files beside the project, and small stand-ins."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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


def write_squad(path: Path, paragraphs: list[tuple[str, list[tuple[str, str, list[str]]]]]) -> Path:
    """Write a SQuAD v1.1 file: paragraphs of (context, [(id, question, answers)])."""
    data = {
        "version": "1.1",
        "data": [
            {
                "title": "T",
                "paragraphs": [
                    {
                        "context": context,
                        "qas": [
                            {"id": qid, "question": q, "answers": [{"text": a, "answer_start": 0}
                                                                   for a in answers]}
                            for qid, q, answers in qas
                        ],
                    }
                    for context, qas in paragraphs
                ],
            }
        ],
    }
    path.write_text(json.dumps(data), encoding="utf-8")
    return path
