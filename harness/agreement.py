"""Agreement: one model (or several) through every backend, on the same SQuAD features.

``python -m harness agree`` runs each (model, backend) participant directly (no LoadGen) over
every feature of the first N questions, padded to 384 tokens, then prints for each pair the
largest absolute start/end logit difference and the share of questions answered with the
same text, and each participant's EM/F1 and samples/s.

Logit differences are taken over **real tokens only** (``input_mask == 1``): padding
positions are masked out of attention, so their logits are meaningless and backends may
legitimately differ there.

Two backends running the same model (same name: e.g. the demo checkpoint in PyTorch and its
ONNX export) must agree to ``atol`` in logits and give the same answer on at least
``min_same`` of the questions. Different models (fp32 vs its int8 derivative, or two int8
recipes) cannot agree to fp32 tolerances; their F1 scores must instead be within
``max_f1_diff`` points. The command exits 1 when any pair fails, so CI can use it.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from pathlib import Path
from typing import Any

import numpy as np

from backends import (
    REGISTRY,
    Backend,
    BackendError,
    BackendSettings,
    FeatureBatch,
    get_backend_class,
    model_backend,
)
from backends import available_backends as registered_backends
from common.errors import ConfigError, HarnessError
from common.files import slug, write_json_atomic
from common.workspace import workspace
from models.catalog import DEFAULT_MODEL, resolve_model
from models.resolved import ResolvedModel
from squad.data import DataConfig, prepare_data
from squad.features import FeatureSet, read_vocab
from squad.metrics import SquadScores, evaluate
from squad.postprocess import predict_answers

# The null backend is a stand-in with made-up logits: compared only when asked for by name.
NOT_BY_DEFAULT = frozenset({"null", "ray", "wafer"})  # no model, or a cluster: only when named


AGREE_QUESTIONS = 200  # questions compared by default


@dataclasses.dataclass(frozen=True)
class AgreementConfig:
    """What to compare and the tolerances (logits absolute; shares and F1 as stated)."""

    models: tuple[str, ...] = (DEFAULT_MODEL,)
    backends: tuple[str, ...] | None = None  # None: every registered backend but null
    batch_size: int = 1
    atol: float = 1e-3
    min_same: float = 0.995  # share (0-1) of questions with identical answer text
    max_f1_diff: float = 1.0  # F1 points, for pairs of different models
    backend_settings: BackendSettings = BackendSettings()
    data: DataConfig = dataclasses.field(
        default_factory=lambda: DataConfig(max_examples=AGREE_QUESTIONS))
    model_store: Path = dataclasses.field(default_factory=lambda: workspace().model_store)
    results_dir: Path = dataclasses.field(default_factory=lambda: workspace().results)
    progress: bool = True


@dataclasses.dataclass(frozen=True)
class ParticipantResult:
    """One (model, backend) run: scores (percent) and speed (samples/s, predict time only)."""

    label: str
    backend: str
    backend_version: str
    model: dict[str, Any]
    precision: str
    scores: SquadScores
    samples_per_second: float
    start_logits: np.ndarray = dataclasses.field(repr=False)
    end_logits: np.ndarray = dataclasses.field(repr=False)
    answers: dict[str, str] = dataclasses.field(repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label, "backend": self.backend, "backend_version": self.backend_version,
            "model": self.model, "precision": self.precision, "scores": self.scores.to_json(),
            "samples_per_second": self.samples_per_second,
        }


@dataclasses.dataclass(frozen=True)
class PairResult:
    """How far two participants are apart, and whether that is within tolerance."""

    a: str
    b: str
    kind: str  # "same-model" or "different-model"
    max_start_diff: float
    max_end_diff: float
    same_answers: float  # share 0-1
    f1_diff: float  # points, b - a
    failures: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "ok": self.ok}


@dataclasses.dataclass(frozen=True)
class AgreementReport:
    """All participants, all pairs, and what was skipped (label, reason)."""

    participants: tuple[ParticipantResult, ...]
    pairs: tuple[PairResult, ...]
    skipped: tuple[tuple[str, str], ...]
    features: int
    questions: int
    config: AgreementConfig

    @property
    def ok(self) -> bool:
        return all(pair.ok for pair in self.pairs)

    def to_json(self) -> dict[str, Any]:
        return {
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "features": self.features,
            "questions": self.questions,
            "logit_diff_over": "real tokens (input_mask == 1)",
            "tolerances": {"atol": self.config.atol, "min_same": self.config.min_same,
                           "max_f1_diff": self.config.max_f1_diff},
            "batch_size": self.config.batch_size,
            "participants": [p.to_json() for p in self.participants],
            "pairs": [p.to_json() for p in self.pairs],
            "skipped": [{"label": label, "reason": reason} for label, reason in self.skipped],
            "ok": self.ok,
        }

    def text(self) -> str:
        """Two Markdown tables (participants, pairs) and the skipped notes."""
        lines = [f"{self.questions} questions, {self.features} features (384 tokens), "
                 f"batch {self.config.batch_size}; logit differences over real tokens only", "",
                 "| participant | precision | EM | F1 | samples/s |", "|---|---|---|---|---|"]
        for p in self.participants:
            lines.append(f"| {p.label} | {p.precision} | {p.scores.exact_match:.2f} | "
                         f"{p.scores.f1:.2f} | {p.samples_per_second:.2f} |")
        lines += ["", "| pair | max abs start diff | max abs end diff | same answers | "
                  "F1 diff | verdict |", "|---|---|---|---|---|---|"]
        for pair in self.pairs:
            verdict = "agree" if pair.ok else "DISAGREE: " + "; ".join(pair.failures)
            lines.append(f"| {pair.a} vs {pair.b} | {pair.max_start_diff:.3g} | "
                         f"{pair.max_end_diff:.3g} | {pair.same_answers:.2%} | "
                         f"{pair.f1_diff:+.2f} | {verdict} |")
        lines += [f"skipped {label}: {reason}" for label, reason in self.skipped]
        return "\n".join(lines) + "\n"


def _precision(model: ResolvedModel) -> str:
    """The catalog's precision, or int8 for a file carrying a quantization recipe."""
    from models.quantize import read_recipe

    if model.format == "onnx" and model.precision != "int8":
        recipe = read_recipe(model.path)
        if recipe is not None:
            return str(recipe.get("precision", model.precision))
    return model.precision


def run_backend(
    backend: Backend, features: FeatureSet, batch_size: int, progress: bool = False
) -> tuple[np.ndarray, np.ndarray, float]:
    """All features through ``backend`` in order: ``(start [N,S], end [N,S], samples/s)``.

    One untimed warm-up batch comes first (lazy initialisation, memory arenas); the rate
    counts predict() time only, in features per second.
    """
    count, seq = features.input_ids.shape
    starts = np.empty((count, seq), np.float32)
    ends = np.empty((count, seq), np.float32)

    def batch(first: int) -> FeatureBatch:
        return features.batch(slice(first, min(first + batch_size, count)))

    backend.predict(batch(0))
    firsts = range(0, count, batch_size)
    if progress:
        from tqdm import tqdm

        firsts = tqdm(firsts, desc=backend.name, unit="batch", leave=False)
    busy = 0.0
    for first in firsts:
        inputs = batch(first)
        started = time.perf_counter()
        start, end = backend.predict(inputs)
        busy += time.perf_counter() - started
        starts[first : first + len(inputs)] = start
        ends[first : first + len(inputs)] = end
    return starts, ends, count / busy if busy > 0 else float("inf")


def compare_pair(a: ParticipantResult, b: ParticipantResult, mask: np.ndarray,
                 config: AgreementConfig) -> PairResult:
    """Differences between two participants; ``mask`` [N,S] selects the real tokens."""
    start_diff = float(np.max(np.abs(a.start_logits - b.start_logits), where=mask, initial=0.0))
    end_diff = float(np.max(np.abs(a.end_logits - b.end_logits), where=mask, initial=0.0))
    same = sum(a.answers[q] == b.answers.get(q) for q in a.answers) / max(len(a.answers), 1)
    f1_diff = b.scores.f1 - a.scores.f1
    failures = []
    if a.model.get("name") == b.model.get("name"):
        kind = "same-model"
        worst = max(start_diff, end_diff)
        if not worst <= config.atol:  # also catches NaN
            failures.append(f"logits differ by {worst:.3g} > {config.atol:g}")
        if same < config.min_same:
            failures.append(f"same answers {same:.2%} < {config.min_same:.2%}")
    else:
        kind = "different-model"
        if not abs(f1_diff) <= config.max_f1_diff:
            failures.append(f"F1 differs by {abs(f1_diff):.2f} > {config.max_f1_diff:g} points")
    return PairResult(a.label, b.label, kind, start_diff, end_diff, same, f1_diff,
                      tuple(failures))


def _participants(config: AgreementConfig):
    """Yield (label, backend class, resolved model) to run; skipped ones as (label, None,
    reason): a backend whose framework is not installed, or that cannot run the model."""
    backends = config.backends or tuple(
        name for name in registered_backends() if name not in NOT_BY_DEFAULT
    )
    unknown = [name for name in backends if name not in REGISTRY]
    if unknown:  # a typo must not pass as "skipped"
        get_backend_class(unknown[0])  # raises UnknownBackendError with "did you mean"
    several = len(config.models) > 1
    for model_name, backend_name in itertools.product(config.models, backends):
        label = f"{backend_name}:{model_name}" if several else backend_name
        try:
            backend_class = get_backend_class(backend_name)
            model = resolve_model(model_name, model_backend(backend_name,
                                                            config.backend_settings.options),
                                  config.model_store,
                                  download=config.data.download, data=config.data)
        except (BackendError, ConfigError) as exc:
            yield label, None, str(exc)
            continue
        # a model given as a path is labelled by its name (file stem), not the whole path
        yield f"{backend_name}:{model.name}" if several else label, backend_class, model


def run_agreement(config: AgreementConfig) -> AgreementReport:
    """Run every participant, compare every pair, write ``results/agreement/<models>.json``."""
    if config.batch_size < 1:
        raise ConfigError("--batch-size must be at least 1")
    data = prepare_data(config.data, config.progress)
    features = data.features
    questions = list(data.examples[: features.num_examples])
    id_to_token = read_vocab(data.vocab_path)
    results: list[ParticipantResult] = []
    skipped: list[tuple[str, str]] = []
    for label, backend_class, model in _participants(config):
        if backend_class is None:
            skipped.append((label, model))
            continue
        repeats = sum(r.label.split("#")[0] == label for r in results)
        label = f"{label}#{repeats + 1}" if repeats else label  # same model twice
        backend = backend_class(config.backend_settings)
        try:
            backend.load(model.path)
            start, end, rate = run_backend(backend, features, config.batch_size, config.progress)
            version = backend.version()
        except BackendError as exc:
            skipped.append((label, str(exc)))
            continue
        finally:
            backend.close()
        logits = {row: (start[row], end[row]) for row in range(len(features))}
        answers = predict_answers(features, logits, questions, id_to_token)
        results.append(ParticipantResult(
            label, backend_class.name, version, model.to_json(), _precision(model),
            evaluate(questions, answers), rate, start, end, answers,
        ))
        if config.progress:
            print(f"{label}: F1 {results[-1].scores.f1:.2f}, {rate:.2f} samples/s", flush=True)
    if len(results) < 2:
        notes = "; ".join(f"{label}: {reason}" for label, reason in skipped) or "none given"
        raise HarnessError(f"agreement needs at least two runnable participants, got "
                           f"{len(results)} (skipped: {notes})")
    mask = features.input_mask.astype(bool)
    pairs = tuple(compare_pair(a, b, mask, config) for a, b in itertools.combinations(results, 2))
    report = AgreementReport(tuple(results), pairs, tuple(skipped), len(features),
                             len(questions), config)
    write_json_atomic(report_path(config), report.to_json())
    return report


def report_path(config: AgreementConfig) -> Path:
    """``results/agreement/<model>[+<model>...].json`` (a path model by its file name)."""
    name = "+".join(slug(Path(m).name if Path(m).exists() else m) for m in config.models)
    return Path(config.results_dir) / "agreement" / f"{name}.json"
