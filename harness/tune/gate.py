"""The accuracy gate: each arithmetic's F1 on the held-out questions, scored once, cached.

A candidate's arithmetic (:attr:`Candidate.numerics`) runs in this process, without
LoadGen, over every feature of the first N questions, sorted by length and each batch cut
to its longest real length, as an Offline run's batches are (padding is masked out of
attention), then is scored with the official EM/F1. Scores are cached in
``<results>/tune/gate-cache.json`` under the model file's md5, the backend, its precision
options and the questions scored, so a second ``tune`` of the same model pays nothing.

Dynamic int8 answers differ with which samples share a call (one activation scale per
call): measured on the demo model's held-out questions at batch 8, F1 65.89 in this gate's
order and 65.44 in LoadGen's accuracy run of the same settings. So with ``loadgen_score``
(the command line's: a child ``python -m harness accuracy`` of the candidate's own
settings, which ``accuracy --settings tuned.toml`` repeats) such a candidate is scored as
that run scores it, under its whole label.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from backends import BackendSettings, get_backend_class, model_backend
from common.files import write_json_atomic
from harness.loadgen.sut import PAD_LOGIT
from harness.tune.candidates import Candidate
from models.catalog import resolve_model
from squad.data import DataConfig, PreparedData
from squad.features import read_vocab
from squad.metrics import evaluate
from squad.postprocess import predict_answers

GATE_BATCH = 16  # features per call
GATE_BUCKET = 16  # tokens: each batch runs at its longest length rounded up to this


@dataclasses.dataclass(frozen=True)
class GateScore:
    """One arithmetic's scores (percent) and how fast the gate ran it (features/s)."""

    f1: float
    exact_match: float
    questions: int
    samples_per_second: float
    seconds: float
    cached: bool = False

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def cache_key(candidate: Candidate, model_md5: str, questions: int) -> str:
    """The key of a score: model digest, backend, precision options, questions scored."""
    options = ",".join(f"{k}={v}" for k, v in sorted(candidate.gate_options().items()))
    if candidate.batch_dependent:  # scored by its own LoadGen accuracy run: every setting
        return f"{model_md5}|loadgen|{candidate.label}|{questions}"
    alone = "|b1 s1" if candidate.one_at_a_time else ""
    return f"{model_md5}|{candidate.gate_backend}|{options}{alone}|{questions}"


def gate_batching(candidate: Candidate) -> tuple[int, int]:
    """``(batch size, bucket in tokens)`` the gate runs ``candidate`` with: its own where its
    answers depend on them (dynamic int8, one sample a call included), else
    :data:`GATE_BATCH` and :data:`GATE_BUCKET`."""
    if candidate.batch_dependent or candidate.one_at_a_time:
        return candidate.batch_size, candidate.seq_bucket
    return GATE_BATCH, GATE_BUCKET


def read_cache(path: Path) -> dict[str, dict[str, Any]]:
    """The cached scores (empty when the file is missing or unreadable)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def score_logits(data: PreparedData, predict: Callable[[Any], tuple[np.ndarray, np.ndarray]],
                 batch_size: int = GATE_BATCH, bucket: int = GATE_BUCKET,
                 on_batch: Callable[[int], None] | None = None) -> tuple[float, float, float]:
    """``(f1, exact_match, features/s)`` of ``predict`` (a backend's) over ``data``."""
    features = data.features
    count, full = features.input_ids.shape
    order = np.argsort(features.seq_len, kind="stable")
    logits: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    busy = 0.0
    for first in range(0, count, batch_size):
        rows = order[first: first + batch_size]
        seq = min(full, -(-max(int(features.seq_len[rows].max()), 1) // bucket) * bucket)
        batch = features.batch(list(rows))
        batch = dataclasses.replace(batch, input_ids=batch.input_ids[:, :seq],
                                    input_mask=batch.input_mask[:, :seq],
                                    segment_ids=batch.segment_ids[:, :seq])
        started = time.perf_counter()
        start, end = predict(batch)
        busy += time.perf_counter() - started
        for i, row in enumerate(rows):
            padded_start = np.full(full, PAD_LOGIT, np.float32)
            padded_end = np.full(full, PAD_LOGIT, np.float32)
            padded_start[:seq], padded_end[:seq] = start[i], end[i]
            logits[int(row)] = (padded_start, padded_end)
        if on_batch is not None:
            on_batch(len(rows))
    questions = list(data.examples[: features.num_examples])
    answers = predict_answers(features, logits, questions, read_vocab(data.vocab_path))
    scores = evaluate(questions, answers)
    return scores.f1, scores.exact_match, count / busy if busy > 0 else float("inf")


class AccuracyGate:
    """Scores arithmetics on ``data`` (the held-out questions), caching in ``cache_path``."""

    def __init__(self, data: PreparedData, data_config: DataConfig, model_store: Path,
                 cache_path: Path, threads: int = 0,
                 loadgen_score: Callable[[Candidate], GateScore] | None = None) -> None:
        self.data = data
        self.data_config = data_config
        self.model_store = Path(model_store)
        self.cache_path = Path(cache_path)
        self.threads = threads
        self.cache = read_cache(self.cache_path)
        self.loadgen_score = loadgen_score

    @property
    def questions(self) -> int:
        return self.data.features.num_examples

    def model_md5(self, candidate: Candidate) -> str:
        """The digest of the file ``candidate``'s backend loads (built or exported once)."""
        backend = model_backend(candidate.gate_backend, {})
        return resolve_model(candidate.model, backend, self.model_store,
                             data=self.data_config).md5

    def cached(self, candidate: Candidate) -> GateScore | None:
        self.cache = {**read_cache(self.cache_path), **self.cache}  # another tune's scores
        entry = self.cache.get(cache_key(candidate, self.model_md5(candidate), self.questions))
        if not entry:
            return None
        return GateScore(**{**entry, "cached": True})

    def score(self, candidate: Candidate,
              on_batch: Callable[[int], None] | None = None) -> GateScore:
        """The candidate's arithmetic scored (from the cache when it was scored before)."""
        found = self.cached(candidate)
        if found is not None:
            return found
        if candidate.batch_dependent and self.loadgen_score is not None:
            # the answers depend on which samples share a call: score them as LoadGen's
            # accuracy run orders and batches them, which `accuracy --settings` repeats
            result = self.loadgen_score(candidate)
            self._store(cache_key(candidate, self.model_md5(candidate), self.questions), result)
            return result
        backend_name = candidate.gate_backend
        model = resolve_model(candidate.model, model_backend(backend_name, {}),
                              self.model_store, data=self.data_config)
        settings = BackendSettings(intra_op_threads=self.threads,
                                   options=candidate.gate_options())
        backend = get_backend_class(backend_name)(settings)
        started = time.monotonic()
        try:
            backend.load(model.path)
            batch, bucket = gate_batching(candidate)
            f1, em, rate = score_logits(self.data, backend.predict, batch, bucket, on_batch)
        finally:
            backend.close()
        result = GateScore(f1, em, self.questions, rate, time.monotonic() - started)
        self._store(cache_key(candidate, model.md5, self.questions), result)
        return result

    def _store(self, key: str, result: GateScore) -> None:
        self.cache = {**read_cache(self.cache_path), **self.cache, key: result.to_json()}
        write_json_atomic(self.cache_path, self.cache)
