"""Plain helpers shared by the test modules; fixtures live in ``conftest.py``.

Test modules never import each other: what two of them share is here (functions and
constants), in ``conftest.py`` (fixtures) or in ``tiny_models.py`` (stand-in models).
"""

from __future__ import annotations

import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from backends import Backend, BackendSettings, FeatureBatch, load_backend
from harness.runner import RunConfig, RunOutcome, execute
from squad.data import DataConfig
from squad.features import FeatureSet

# ---- optional libraries -------------------------------------------------------------------

# The modules each pyproject extra installs, as the tests import them.
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "onnx": ("onnxruntime", "onnx"),
    "export": ("torch", "transformers", "onnx"),
    "torch": ("torch", "transformers"),
    "tf": ("tensorflow",),
    "ray": ("ray",),
}


def needs(*extras: str, purpose: str = "this test", only: tuple[str, ...] = ()) -> None:
    """Skip the calling test (or module, at module level) unless every module of the given
    pyproject extras imports (``only`` those, if given); the reason names the missing module
    and the extra that installs it."""
    __tracebackhide__ = True  # the skip is reported at the caller's line
    for extra in extras:
        for module in only or EXTRA_MODULES[extra]:
            pytest.importorskip(
                module, reason=f"{purpose}: needs {module} (pip install -e '.[{extra}]')"
            )


# ---- backends and features ----------------------------------------------------------------

CPU = BackendSettings(device="cpu")
CPU_1T = BackendSettings(intra_op_threads=1, inter_op_threads=1, device="cpu")


def open_backend(name: str, path: Path | None, settings: BackendSettings = CPU) -> Backend:
    """Backend ``name`` with ``path`` loaded; use it as a context manager to close it."""
    return load_backend(name, path, settings)


def random_batch(batch: int = 3, seq: int = 384, seed: int = 0) -> FeatureBatch:
    """Random int64 features laid out like real ones: a 16-token question segment, then
    context, and ragged padding (row lengths from ``seq`` down to ``seq // 3``)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1000, 30522, size=(batch, seq), dtype=np.int64)
    mask = np.zeros((batch, seq), dtype=np.int64)
    segments = np.zeros((batch, seq), dtype=np.int64)
    for row, length in enumerate(np.linspace(seq, seq // 3, batch).astype(int)):
        mask[row, :length] = 1
        segments[row, 16:length] = 1
        ids[row, length:] = 0
    return FeatureBatch(input_ids=ids, input_mask=mask, segment_ids=segments)


def random_features(count: int = 12, seed: int = 0, seq: int = 384) -> FeatureSet:
    """A FeatureSet with a real-looking layout (question, context, ragged padding) and no
    text behind it: enough to calibrate or run a model, not to score answers."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1000, 30522, size=(count, seq)).astype(np.int32)
    mask = np.zeros((count, seq), np.int32)
    segments = np.zeros((count, seq), np.int32)
    lengths = rng.integers(64, seq + 1, size=count)
    for row, length in enumerate(lengths):
        mask[row, :length] = 1
        segments[row, 12:length] = 1
        ids[row, length:] = 0
    to_orig = np.where(segments == 1, np.arange(seq), -1).astype(np.int32)
    return FeatureSet(
        input_ids=ids, input_mask=mask, segment_ids=segments,
        example_index=np.arange(count, dtype=np.int32), doc_span_index=np.zeros(count, np.int32),
        token_to_orig=to_orig, token_is_max_context=segments == 1,
        seq_len=lengths.astype(np.int32), meta={"key": "random"},
    )


def torch_logits(model: Any, batch: FeatureBatch) -> tuple[np.ndarray, np.ndarray]:
    """Reference (start, end) logits of a transformers QA model, float32 ``[B, S]``."""
    import torch

    ids, mask, segments = (torch.from_numpy(np.asarray(a, np.int64)) for a in batch.arrays())
    with torch.inference_mode():
        out = model(input_ids=ids, attention_mask=mask, token_type_ids=segments)
    return out.start_logits.numpy(), out.end_logits.numpy()


# ---- LoadGen runs -------------------------------------------------------------------------

# user.conf for test runs: well under a second of LoadGen each, and nothing that depends on
# how fast or busy the machine is. Offline issues one query (target_qps x min_duration
# samples) and Server schedules its queries by the clock, so neither can run short of
# queries. SingleStream and MultiStream pre-generate queries for twice min_duration at the
# expected latency and end with an error ("Ran out of generated queries") on a system more
# than twice as fast as expected; with min_duration = 0 they generate exactly
# min_query_count queries and end, without error, once those are answered: however fast or
# slow the machine is.
STREAM_QUERIES = 64
FAST_CONF = "".join(
    f"*.{scenario}.{key} = {value}\n"
    for scenario, settings in {
        "Offline": {"min_duration": 300, "min_query_count": 1, "target_qps": 200},
        "Server": {"min_duration": 300, "min_query_count": 1, "target_qps": 40},
        "SingleStream": {"min_duration": 0, "min_query_count": STREAM_QUERIES,
                         "target_latency": 1},
        "MultiStream": {"min_duration": 0, "min_query_count": STREAM_QUERIES,
                        "target_latency": 8},
    }.items()
    for key, value in settings.items()
)


def isolated(config: RunConfig, timeout_s: float = 120) -> RunOutcome:
    """Run ``config`` in a fresh process: LoadGen counts config loads per process and flags
    a second run in the same process as "Multiple conf files are used"."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(execute, config).result(timeout=timeout_s)


# ---- SQuAD files --------------------------------------------------------------------------


def squad_data(root: Path, squad_dir: Path, max_examples: int | None) -> DataConfig:
    """Data settings for a run under ``root`` on the first ``max_examples`` questions of
    the official files in ``squad_dir`` (copied from there, never downloaded)."""
    return DataConfig(root / "squad", root / "cache", (squad_dir,), download=False,
                      max_examples=max_examples)


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
