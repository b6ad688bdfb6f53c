"""Golden tests of the official SQuAD v1.1 metrics (values worked out by hand)."""

from __future__ import annotations

import pytest

from squad.examples import SquadExample
from squad.metrics import (
    SquadScores,
    evaluate,
    exact_match_score,
    f1_score,
    metric_max_over_ground_truths,
    normalize_answer,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The Eiffel Tower", "eiffel tower"),
        ("a cat and an owl", "cat and owl"),
        # articles only as whole words: letters inside other words stay
        ("theater another anthem", "theater another anthem"),
        ("THE Beatles", "beatles"),
        ("Denver Broncos!", "denver broncos"),
        ("  lots \t of\n space  ", "lots of space"),
        ("U.S.-based, (1889)", "usbased 1889"),
        # punctuation is removed before articles: "the-end" becomes "theend", not "end"
        ("the-end", "theend"),
        # apostrophes go, so "a's" becomes "as", which is not an article
        ("a's", "as"),
        # punctuation outside string.punctuation (Unicode dashes, quotes) stays
        ("«Paris» – 1889", "«paris» – 1889"),
        ("", ""),
    ],
)
def test_normalize_answer(text: str, expected: str) -> None:
    assert normalize_answer(text) == expected


def test_exact_match_ignores_case_punctuation_articles_and_spacing() -> None:
    assert exact_match_score("the  Denver Broncos.", "Denver broncos")
    assert not exact_match_score("Denver", "Denver Broncos")
    assert not exact_match_score("«Denver»", "Denver")


def test_exact_match_of_empty_strings() -> None:
    # official quirk: empty == empty is an exact match ...
    assert exact_match_score("", "")
    assert exact_match_score("the", "")  # only an article: normalises to ""
    assert not exact_match_score("", "Denver")


def test_f1_empty_cases_are_zero() -> None:
    # ... but its F1 is 0, because no token overlaps
    assert f1_score("", "") == 0
    assert f1_score("", "Denver") == 0
    assert f1_score("Denver", "") == 0
    assert f1_score("Paris", "Denver Broncos") == 0


def test_f1_partial_overlap_by_hand() -> None:
    # pred {denver, broncos, team} vs gold {broncos, of, denver, colorado}: 2 shared;
    # precision 2/3, recall 2/4 -> F1 = 2 * (2/3) * (1/2) / (2/3 + 1/2) = 4/7
    got = f1_score("the Denver Broncos team", "Broncos of Denver, Colorado")
    assert got == pytest.approx(4 / 7)
    assert f1_score("Denver Broncos", "denver broncos") == 1.0


def test_f1_counts_repeated_tokens_once_per_occurrence() -> None:
    # Counter overlap: "paris" twice in pred, once in gold -> 1 shared token
    # precision 1/2, recall 1 -> F1 = 2/3 (a set overlap would give 1.0)
    assert f1_score("Paris Paris", "Paris") == pytest.approx(2 / 3)
    # twice on both sides -> 2 shared; precision 2/3, recall 1 -> 0.8
    assert f1_score("paris paris france", "Paris, Paris") == pytest.approx(0.8)


def test_metric_max_over_ground_truths_takes_the_best() -> None:
    golds = ["Denver Broncos", "Broncos", "the Denver Broncos of Colorado"]
    assert metric_max_over_ground_truths(exact_match_score, "broncos", golds)
    assert metric_max_over_ground_truths(f1_score, "broncos", golds) == 1.0
    # "Denver" scores 2/3 vs "Denver Broncos", 0 vs "Broncos", 2/5 vs the long one
    assert metric_max_over_ground_truths(f1_score, "Denver", golds) == pytest.approx(2 / 3)
    assert not metric_max_over_ground_truths(exact_match_score, "Denver", golds)
    with pytest.raises(ValueError):
        metric_max_over_ground_truths(f1_score, "Denver", [])


def _example(qas_id: str, *answers: str) -> SquadExample:
    return SquadExample(qas_id, "question?", ("some", "context"), tuple(answers))


def test_evaluate_averages_over_all_examples_and_missing_scores_zero() -> None:
    examples = [
        _example("q1", "Denver Broncos", "Broncos"),
        _example("q2", "Paris"),
        _example("q3", "1889"),  # no prediction: counts in total only
        _example("q4", "Gustave Eiffel"),
    ]
    predictions = {"q1": "the Broncos", "q2": "Lyon", "q4": "Eiffel", "other": "ignored"}
    scores = evaluate(examples, predictions)
    # EM: q1 only -> 1/4. F1: q1 1, q2 0, q3 0, q4 2*(1)*(1/2)/(1.5) = 2/3.
    assert scores.total == 4
    assert scores.answered == 3
    assert scores.exact_match == pytest.approx(25.0)
    assert scores.f1 == pytest.approx(100.0 * (1 + 2 / 3) / 4)


def test_evaluate_perfect_and_empty() -> None:
    examples = [_example("a", "x y"), _example("b", "z")]
    assert evaluate(examples, {"a": "X, y", "b": "z."}) == SquadScores(100.0, 100.0, 2, 2)
    assert evaluate(examples, {}) == SquadScores(0.0, 0.0, 2, 0)
    assert evaluate([], {}) == SquadScores(0.0, 0.0, 0, 0)


def test_scores_to_json() -> None:
    scores = SquadScores(exact_match=80.5, f1=88.25, total=10, answered=9)
    assert scores.to_json() == {"exact_match": 80.5, "f1": 88.25, "total": 10, "answered": 9}
