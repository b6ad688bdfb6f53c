"""Accuracy: LoadGen accuracy log -> answers -> official SQuAD v1.1 EM/F1 -> accuracy.txt."""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from common.errors import DataError, HarnessWarning
from common.files import file_sha256
from squad.examples import SquadExample
from squad.features import FeatureSet
from squad.metrics import SquadScores, evaluate
from squad.postprocess import predict_answers, read_accuracy_log

# MLPerf Inference v1.0 BERT-Large reference F1 on SQuAD v1.1 dev (fp32), and the F1 of
# MLPerf's int8 ONNX model; a run passes at 99% / 99.9% of the fp32 figure.
REFERENCE_F1_FP32 = 90.874
REFERENCE_F1_INT8 = 90.067
TARGET_FRACTIONS = (0.99, 0.999)


class PartialLogWarning(HarnessWarning):
    """An accuracy log holds logits for only some of the features being scored."""


@dataclasses.dataclass(frozen=True)
class TargetCheck:
    """One accuracy target: ``threshold`` F1 (percent) and whether the run met it."""

    name: str
    threshold: float
    met: bool


@dataclasses.dataclass(frozen=True)
class AccuracyReport:
    """Scores of one accuracy run and the MLPerf targets they are compared with."""

    scores: SquadScores
    features_logged: int
    features_expected: int
    questions: int
    precision: str
    mlperf_model: bool
    targets: tuple[TargetCheck, ...]
    # What the MLPerf scripts print for the same log with --max_examples N (see below);
    # None when every question of the data set is scored.
    reference_scores: SquadScores | None = None
    # sha256 of the scored mlperf_log_accuracy.json: the ``hash=`` line MLPerf's checker
    # looks for, so that a submission's truncated log can be tied to the full one
    log_sha256: str | None = None

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        data["scores"] = self.scores.to_json()
        if self.reference_scores is not None:
            data["reference_scores"] = self.reference_scores.to_json()
        return data

    def text(self) -> str:
        """accuracy.txt: the evaluate-v1.1 JSON line first (what checkers parse), then notes."""
        lines = [
            json.dumps({"exact_match": self.scores.exact_match, "f1": self.scores.f1}),
            f"questions: {self.questions}   features logged: {self.features_logged}"
            f" of {self.features_expected}",
        ]
        if self.features_logged < self.features_expected:
            note = partial_log_note(self.features_logged, self.features_expected)
            lines.append(f"warning: the accuracy log {note}")
        for target in self.targets:
            verdict = "MET" if target.met else "NOT MET"
            lines.append(f"{target.name}: F1 >= {target.threshold:.5f}  {verdict}")
        if self.reference_scores is not None:
            ref = self.reference_scores
            lines.append(
                f"MLPerf accuracy-squad.py --max_examples {self.questions} reports "
                f'{{"exact_match": {ref.exact_match}, "f1": {ref.f1}}}: its evaluate_v1.1.py '
                f"stops before scoring question {self.questions} but divides by {self.questions}"
            )
        if not self.mlperf_model:
            lines.append(
                "note: the targets are MLPerf BERT-Large's; this model is not an MLPerf model "
                "and its scores are not MLPerf results"
            )
        if self.log_sha256 is not None:
            lines.append(f"hash={self.log_sha256}")
        return "\n".join(lines) + "\n"


def f1_target(fraction: float) -> float:
    """The F1 (percent) a run must reach: ``fraction`` of the fp32 reference, unrounded (as
    the MLCommons checker compares it; accuracy.txt and the harness's checker use this one)."""
    return REFERENCE_F1_FP32 * fraction


def meets_target(f1: float, fraction: float) -> bool:
    """Whether an F1 (percent) reaches ``fraction`` of the fp32 reference: the one comparison."""
    return f1 >= f1_target(fraction)


def accuracy_targets(f1: float, precision: str) -> tuple[TargetCheck, ...]:
    """The 99% and 99.9% targets of the fp32 reference (and the int8 reference for int8)."""
    checks = [
        TargetCheck(
            f"{fraction * 100:g}% of fp32 reference {REFERENCE_F1_FP32}",
            f1_target(fraction),
            meets_target(f1, fraction),
        )
        for fraction in TARGET_FRACTIONS
    ]
    if precision == "int8":
        checks.append(
            TargetCheck(
                f"int8 reference {REFERENCE_F1_INT8}", REFERENCE_F1_INT8, f1 >= REFERENCE_F1_INT8
            )
        )
    return tuple(checks)


def reference_truncated_scores(
    questions: Sequence[SquadExample], predictions: dict[str, str]
) -> SquadScores:
    """The scores MLPerf's ``evaluate_v1.1.py --max_examples N`` prints for N questions.

    That script counts question N, then breaks before scoring it: it averages the first
    N-1 questions over N. Reported beside the true scores so both can be compared.
    """
    count = len(questions)
    partial = evaluate(questions[:-1], predictions)
    scale = (count - 1) / count if count else 0.0
    return SquadScores(partial.exact_match * scale, partial.f1 * scale, count, partial.answered)


def score_accuracy_log(
    log_path: Path,
    features: FeatureSet,
    examples: Sequence[SquadExample],
    id_to_token: Sequence[str],
    precision: str = "fp32",
    mlperf_model: bool = False,
) -> tuple[AccuracyReport, dict[str, str]]:
    """Score the first ``features.num_examples`` questions from a LoadGen accuracy log.

    Returns the report and the predictions (question id -> answer text). A log with logits
    for none of the features is a :class:`DataError`; one covering only some of them is
    scored with the missing questions counted as wrong, with a :class:`PartialLogWarning`
    and a line in the report saying so.
    """
    logits = read_accuracy_log(log_path)
    logged = sum(1 for index in logits if index < len(features))
    if logged == 0:
        what = (
            f"its qsl_idx run from {min(logits)} to {max(logits)}, all beyond these "
            "features (a log of another data set?)"
            if logits else "it holds no entries (did the accuracy run finish?)"
        )
        raise DataError(f"{log_path} covers 0 of {len(features)} features: {what}")
    if logged < len(features):
        hint = _prefix_hint(features, logits)
        warnings.warn(
            f"{log_path} {partial_log_note(logged, len(features))}{hint}",
            PartialLogWarning,
            stacklevel=2,
        )
    questions = list(examples[: features.num_examples])
    try:
        predictions = predict_answers(features, logits, questions, id_to_token)
    except DataError as exc:  # logits that do not fit the features
        raise DataError(f"{log_path}: {exc}") from None
    scores = evaluate(questions, predictions)
    report = AccuracyReport(
        scores=scores,
        features_logged=logged,
        features_expected=len(features),
        questions=len(questions),
        precision=precision,
        mlperf_model=mlperf_model,
        targets=accuracy_targets(scores.f1, precision),
        reference_scores=reference_truncated_scores(questions, predictions)
        if len(questions) < len(examples)
        else None,
        log_sha256=file_sha256(log_path),
    )
    return report, predictions


def partial_log_note(logged: int, expected: int) -> str:
    """What a report says about a log covering ``logged`` of ``expected`` features."""
    return (
        f"covers {logged} of {expected} features; the scores count the missing questions "
        "as wrong"
    )


def _prefix_hint(features: FeatureSet, logits: dict) -> str:
    """When the log holds exactly the features of the first N questions: say so, and how
    to score just those (a run limited with --max-examples N)."""
    count = len(features)
    logged = np.array(sorted(index for index in logits if index < count), dtype=np.int64)
    if not len(logged) or logged[-1] != len(logged) - 1:
        return ""
    following = int(features.example_index[len(logged)])
    if following == 0 or int(features.example_index[len(logged) - 1]) == following:
        return ""  # the log stops inside a question's windows
    return (
        f" (it holds exactly the features of the first {following} questions: score them "
        f"alone with --max-examples {following})"
    )
