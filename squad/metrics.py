"""The official SQuAD v1.1 metrics (exact match and F1), as ``evaluate-v1.1.py`` computes them.

The normalisation and scoring functions keep the official script's semantics to the letter,
quirks included (an empty prediction against an empty gold answer is an exact match but
has F1 0), because MLPerf's accuracy target (F1 >= 99% of 90.874) is defined by that script.
"""

from __future__ import annotations

import dataclasses
import re
import string
from collections import Counter
from collections.abc import Callable, Mapping, Sequence

from squad.examples import SquadExample

# ASCII punctuation only: Unicode punctuation such as "«" or "–" survives, as in the script.
_PUNCTUATION = frozenset(string.punctuation)
# \b makes articles whole words only: "theater" and "another" keep their letters.
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """Lower-case, drop ASCII punctuation, drop the articles a/an/the, collapse whitespace."""
    lowered = text.lower()
    no_punctuation = "".join(char for char in lowered if char not in _PUNCTUATION)
    no_articles = _ARTICLES.sub(" ", no_punctuation)
    return " ".join(no_articles.split())


def exact_match_score(prediction: str, ground_truth: str) -> bool:
    """True when both strings are equal after :func:`normalize_answer`."""
    return normalize_answer(prediction) == normalize_answer(ground_truth)


def f1_score(prediction: str, ground_truth: str) -> float:
    """Token-overlap F1 (0..1) of the normalised strings; multiset (Counter) overlap.

    Returns the integer 0 when nothing overlaps (also when either side is empty), exactly
    like the official script, so sums stay bit-identical.
    """
    prediction_tokens = normalize_answer(prediction).split()
    ground_truth_tokens = normalize_answer(ground_truth).split()
    common = Counter(prediction_tokens) & Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    return (2 * precision * recall) / (precision + recall)


def metric_max_over_ground_truths(
    metric_fn: Callable[[str, str], float],
    prediction: str,
    ground_truths: Sequence[str],
) -> float:
    """Best score of ``prediction`` against any gold answer (ValueError if there are none)."""
    return max(metric_fn(prediction, ground_truth) for ground_truth in ground_truths)


@dataclasses.dataclass(frozen=True)
class SquadScores:
    """Scores in percent (0-100) over ``total`` questions, ``answered`` of them predicted."""

    exact_match: float
    f1: float
    total: int
    answered: int

    def to_json(self) -> dict[str, float | int]:
        """Plain dict for JSON reports."""
        return dataclasses.asdict(self)


def evaluate(examples: Sequence[SquadExample], predictions: Mapping[str, str]) -> SquadScores:
    """Average EM and F1 (percent) over ALL ``examples``; a missing prediction scores 0.

    Sums run in example order with Python floats, as in the official script, so the result
    matches it bit for bit. A question without gold answers (never the case in SQuAD v1.1,
    where the official script would crash) scores 0 rather than aborting a long run.
    """
    exact_match = 0.0
    f1 = 0.0
    answered = 0
    for example in examples:
        prediction = predictions.get(example.qas_id)
        if prediction is None:
            continue
        answered += 1
        if not example.answers:
            continue
        exact_match += metric_max_over_ground_truths(exact_match_score, prediction, example.answers)
        f1 += metric_max_over_ground_truths(f1_score, prediction, example.answers)
    total = len(examples)
    if total == 0:
        return SquadScores(0.0, 0.0, 0, 0)
    return SquadScores(100.0 * exact_match / total, 100.0 * f1 / total, total, answered)
