"""Accuracy: LoadGen accuracy log -> answers -> official SQuAD v1.1 EM/F1 -> accuracy.txt."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

from harness.squad.examples import SquadExample
from harness.squad.features import FeatureSet
from harness.squad.metrics import SquadScores, evaluate
from harness.squad.postprocess import predict_answers, read_accuracy_log

# MLPerf Inference v1.0 BERT-Large reference F1 on SQuAD v1.1 dev (fp32), and the F1 of
# MLPerf's int8 ONNX model; a run passes at 99% / 99.9% of the fp32 figure.
REFERENCE_F1_FP32 = 90.874
REFERENCE_F1_INT8 = 90.067
TARGET_FRACTIONS = (0.99, 0.999)


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
        for target in self.targets:
            verdict = "MET" if target.met else "NOT MET"
            lines.append(f"{target.name}: F1 >= {target.threshold:.3f}  {verdict}")
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
        return "\n".join(lines) + "\n"


def accuracy_targets(f1: float, precision: str) -> tuple[TargetCheck, ...]:
    """The 99% and 99.9% targets of the fp32 reference (and the int8 reference for int8)."""
    checks = [
        TargetCheck(
            f"{fraction * 100:g}% of fp32 reference {REFERENCE_F1_FP32}",
            round(REFERENCE_F1_FP32 * fraction, 3),
            f1 >= round(REFERENCE_F1_FP32 * fraction, 3),
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

    Returns the report and the predictions (question id -> answer text).
    """
    logits = read_accuracy_log(log_path)
    questions = list(examples[: features.num_examples])
    predictions = predict_answers(features, logits, questions, id_to_token)
    scores = evaluate(questions, predictions)
    report = AccuracyReport(
        scores=scores,
        features_logged=sum(1 for index in logits if index < len(features)),
        features_expected=len(features),
        questions=len(questions),
        precision=precision,
        mlperf_model=mlperf_model,
        targets=accuracy_targets(scores.f1, precision),
        reference_scores=reference_truncated_scores(questions, predictions)
        if len(questions) < len(examples)
        else None,
    )
    return report, predictions
