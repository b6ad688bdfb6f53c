"""Compliance verification: TEST01 (accuracy in performance mode) and TEST05 (other seeds).

Each check reads the submission's own runs and the compliance run, and returns the text of
``verify_accuracy.txt`` or ``verify_performance.txt``: the figures, then ``TEST PASS`` or
``TEST FAIL: <why>`` (MLCommons' checker looks for "TEST PASS").

TEST01's responses are compared with the accuracy run's for the same samples, byte for
byte. They need not be identical in this harness: the SUT runs a batch at its longest real
length and fills the logits past it with -10000, so a sample batched with longer samples
in one mode than in the other logs its own padded positions differently -- and a backend's
kernels may round differently at another length. The TEST01 rules then ask for the
accuracy of the logged responses to match the accuracy run's on the same samples (Part
III: within 1% for bert-99, 0.1% for bert-99.9), and for ``baseline_accuracy.txt`` and
``compliance_accuracy.txt`` beside the log. Both comparisons are always reported.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from harness.loadgen import layout
from harness.loadgen.rules import (
    AUDITS,
    RELAXED_TOLERANCE,
    SINGLE_STREAM_RELAXED_NS,
    TEST01_ACCURACY_TOLERANCE,
)
from harness.submission.logs import (
    ACCURACY_LOG,
    DETAIL_LOG,
    METRICS,
    DetailLog,
    metric_value,
    read_responses,
)
from squad.data import PreparedData
from squad.features import read_vocab
from squad.metrics import SquadScores, evaluate
from squad.postprocess import predict_answers

PASS = "TEST PASS"
FAIL = "TEST FAIL"
SEED_KEYS = ("qsl_rng_seed", "sample_index_rng_seed", "schedule_rng_seed")


@dataclasses.dataclass(frozen=True)
class Verification:
    """One verify_*.txt: its text, the verdict, and any files that go beside the log."""

    test: str
    kind: str  # "accuracy" or "performance"
    passed: bool
    text: str
    files: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def filename(self) -> str:
        return layout.VERIFY_ACCURACY if self.kind == "accuracy" else layout.VERIFY_PERFORMANCE


def _report(lines: list[str], problems: list[str]) -> tuple[bool, str]:
    verdict = PASS if not problems else f"{FAIL}: " + "; ".join(problems)
    return not problems, "\n".join([*lines, verdict]) + "\n"


def expected_settings(test: str, reference: DetailLog) -> dict[str, Any]:
    """The effective settings a compliance run's detail log must show: its audit's, and the
    submission run's seeds unless the audit brings its own."""
    audit = AUDITS[test]
    expected: dict[str, Any] = {"effective_test_mode": "PerformanceOnly"}
    if audit.accuracy_log_rng_seed is not None:
        expected["effective_accuracy_log_rng_seed"] = audit.accuracy_log_rng_seed
    if audit.accuracy_log_sampling_target is not None:
        expected["effective_accuracy_log_sampling_target"] = audit.accuracy_log_sampling_target
    for key in SEED_KEYS:
        value = getattr(audit.seeds, key) if audit.seeds else reference.get(f"effective_{key}")
        expected[f"effective_{key}"] = value
    return expected


def tolerance(test: str, scenario: str, reference_score: float) -> float:
    """The share by which a compliance run's metric may differ from the submission's."""
    if scenario == "SingleStream" and reference_score <= SINGLE_STREAM_RELAXED_NS:
        return RELAXED_TOLERANCE  # latencies this short vary with the OS
    return AUDITS[test].tolerance


def verify_performance(test: str, reference_run: Path, test_run: Path) -> Verification:
    """The compliance run's performance against the submission's (TEST01: 10%, TEST05: 5%),
    both VALID, without LoadGen errors, and run with the audit's settings."""
    lines = [f"{test} performance verification",
             f"reference (submission run): {reference_run}", f"test ({test} run): {test_run}"]
    problems: list[str] = []
    logs = {}
    for role, run in (("reference", reference_run), ("test", test_run)):
        try:
            logs[role] = DetailLog.read(Path(run) / DETAIL_LOG)
        except OSError as exc:
            problems.append(f"cannot read the {role} run's {DETAIL_LOG} ({exc.strerror or exc})")
    if problems:
        return Verification(test, "performance", *_report(lines, problems))
    reference, tested = logs["reference"], logs["test"]
    scenario = reference.scenario or "?"
    lines.append(f"scenario: {scenario}")
    if tested.scenario != reference.scenario:
        problems.append(f"test and reference scenarios do not match ({tested.scenario} vs "
                        f"{reference.scenario})")
    for role, log in (("reference", reference), ("test", tested)):
        lines.append(f"{role} result: {'VALID' if log.valid else 'INVALID'}"
                     + ("" if log.valid else f" ({log.invalid_reasons()})"))
        if not log.valid:
            problems.append(f"{role} results are INVALID")
        if log.errors:
            lines += [f"{role} LoadGen error: {error}" for error in log.errors]
            problems.append(f"{len(log.errors)} LoadGen error(s) in the {role} run")
    for key, value in expected_settings(test, reference).items():
        found = tested.get(key)
        if found != value:
            problems.append(f"the {test} run has {key} {found}, expected {value}")
    metric = METRICS.get(scenario)
    ref_score, test_score = metric_value(reference), metric_value(tested)
    if metric is None or ref_score is None or test_score is None:
        problems.append("no metric to compare")
        return Verification(test, "performance", *_report(lines, problems))
    share = tolerance(test, scenario, ref_score)
    lines += [f"metric: {metric.name} ({metric.key})",
              f"reference score = {ref_score:g}", f"test score = {test_score:g}"]
    ratio = test_score / ref_score if ref_score else float("inf")
    lines.append(f"test / reference = {ratio:.4f} (allowed: strictly between {1 - share:g} and "
                 f"{1 + share:g})")
    if not ref_score * (1 - share) < test_score < ref_score * (1 + share):
        problems.append(f"test score {test_score:g} is not within {share:.0%} of the "
                        f"reference {ref_score:g}")
    return Verification(test, "performance", *_report(lines, problems))


def _logits(data_hex: str) -> tuple[np.ndarray, np.ndarray]:
    pairs = np.frombuffer(bytes.fromhex(data_hex), dtype="<f4").reshape(-1, 2)
    return pairs[:, 0], pairs[:, 1]


def _scores_line(scores: SquadScores) -> str:
    return json.dumps({"exact_match": scores.exact_match, "f1": scores.f1})


def verify_accuracy(accuracy_run: Path, test_run: Path, benchmark: str,
                    data: PreparedData | None) -> Verification:
    """TEST01: the responses logged in performance mode against the accuracy run's.

    PASS when every logged response is byte-identical to the accuracy run's for its sample,
    or else when the F1 of the logged responses is within the benchmark's tolerance of the
    F1 of the accuracy run's responses for the same samples (``data`` is needed to score).
    """
    lines = [f"TEST01 accuracy verification ({benchmark})",
             f"accuracy run: {accuracy_run}", f"performance run (TEST01): {test_run}"]
    problems: list[str] = []
    try:
        accuracy = read_responses(Path(accuracy_run) / ACCURACY_LOG)
        logged = read_responses(Path(test_run) / ACCURACY_LOG)
    except (OSError, ValueError) as exc:
        return Verification("TEST01", "accuracy", *_report(lines, [f"cannot read a log: {exc}"]))
    baseline: dict[int, str] = {}
    duplicates = duplicate_mismatches = 0
    for index, data_hex in accuracy:
        if index in baseline:
            duplicates += 1
            duplicate_mismatches += baseline[index] != data_hex
        else:
            baseline[index] = data_hex
    tested: dict[int, str] = {}
    missing = mismatched = real_equal = 0
    worst = 0.0
    lengths = data.features.seq_len if data is not None else None
    for index, data_hex in logged:
        tested[index] = data_hex
        if index not in baseline:
            missing += 1
            continue
        if baseline[index] == data_hex:
            continue
        mismatched += 1
        if lengths is not None and index < len(lengths):
            real = int(lengths[index])
            a, b = (np.stack(_logits(h))[:, :real] for h in (baseline[index], data_hex))
            if a.shape == b.shape:
                difference = float(np.max(np.abs(a.astype(np.float64) - b))) if a.size else 0.0
                worst = max(worst, difference)
                real_equal += difference == 0.0
    lines += [f"num_acc_log_entries = {len(accuracy)}",
              f"num_acc_log_duplicate_keys = {duplicates}",
              f"num_acc_log_data_mismatch = {duplicate_mismatches}",
              f"num_perf_log_entries = {len(logged)}",
              f"num_perf_log_qsl_idx_match = {len(logged) - missing}",
              f"num_perf_log_data_mismatch = {mismatched}",
              f"num_missing_qsl_idxs = {missing}"]
    if lengths is not None and mismatched:
        lines += [f"  of the mismatches, equal over the sample's real tokens = {real_equal} "
                  "(they differ only past the sample's length, where the SUT fills to its "
                  "batch's length)",
                  f"  max abs logit difference over real tokens = {worst:g}"]
    files: dict[str, str] = {}
    if not logged:
        problems.append("the performance run logged no responses (was it run with TEST01's "
                        "audit settings?)")
    if missing:
        problems.append(f"{missing} logged samples are not in the accuracy log")
    if logged and not missing and data is not None:
        base_scores, test_scores, same, questions = _compare_accuracy(
            data, {i: baseline[i] for i in tested}, tested)
        share = TEST01_ACCURACY_TOLERANCE[benchmark]
        delta = abs(test_scores.f1 - base_scores.f1)
        allowed = share * base_scores.f1
        lines += [f"accuracy over the {questions} questions these {len(tested)} samples belong "
                  "to (TEST01 Part III):",
                  f"  accuracy run (baseline): {_scores_line(base_scores)}",
                  f"  performance run (compliance): {_scores_line(test_scores)}",
                  f"  identical answers: {same} of {questions}",
                  f"  F1 difference {delta:.4f} (allowed {share:.1%} of the baseline: "
                  f"{allowed:.4f})"]
        if mismatched:
            note = (f"F1 of the {len(tested)} samples logged by TEST01 ({questions} questions), "
                    "scored as the accuracy run is\n")
            files = {layout.BASELINE_ACCURACY: _scores_line(base_scores) + "\n"
                     + note.replace("logged by TEST01", "as the accuracy run answered them"),
                     layout.COMPLIANCE_ACCURACY: _scores_line(test_scores) + "\n" + note}
            if delta > allowed:
                problems.append(f"{mismatched} responses differ from the accuracy run's and "
                                f"their F1 differs by {delta:.4f} (more than {share:.1%})")
            elif base_scores.f1 == 0 and same < questions:
                # an F1 of 0 cannot tell answers apart: only identical answers show a match
                problems.append(f"{questions - same} answers differ from the accuracy run's, "
                                "and at F1 0 accuracy cannot show that they match")
            else:
                lines.append("responses differ from the accuracy run's, but their accuracy "
                             "matches (TEST01 Part III)")
    elif mismatched and not missing and logged:
        problems.append(f"{mismatched} responses differ from the accuracy run's, and without "
                        "the SQuAD data their accuracy cannot be compared")
    if logged and not missing and not mismatched:
        lines.append("every logged response is identical to the accuracy run's")
    return Verification("TEST01", "accuracy", *_report(lines, problems), files=files)


def _compare_accuracy(data: PreparedData, baseline: dict[int, str],
                      tested: dict[int, str]) -> tuple[SquadScores, SquadScores, int, int]:
    """Scores of both sets of responses over the questions they cover; identical answers."""
    features, examples = data.features, data.examples[: data.features.num_examples]
    vocab = read_vocab(data.vocab_path)
    covered = sorted({int(features.example_index[i]) for i in tested if i < len(features)})
    questions = [examples[i] for i in covered]
    answers = []
    for responses in (baseline, tested):
        logits = {i: _logits(h) for i, h in responses.items() if i < len(features)}
        answers.append(predict_answers(features, logits, examples, vocab))
    same = sum(answers[0][q.qas_id] == answers[1][q.qas_id] for q in questions)
    return evaluate(questions, answers[0]), evaluate(questions, answers[1]), same, len(questions)


def write_verifications(folder: Path, verifications: list[Verification]) -> None:
    """verify_*.txt into ``folder`` (a compliance test's folder); extra accuracy files into
    its ``accuracy/``."""
    folder.mkdir(parents=True, exist_ok=True)
    for verification in verifications:
        (folder / verification.filename).write_text(verification.text, encoding="utf-8")
        for name, text in verification.files.items():
            (folder / layout.ACCURACY).mkdir(exist_ok=True)
            (folder / layout.ACCURACY / name).write_text(text, encoding="utf-8")
