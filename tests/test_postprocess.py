"""Tests of logits -> answer text and of reading LoadGen accuracy logs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from common.errors import DataError
from squad.examples import SquadExample, read_squad_examples, split_context
from squad.features import FeatureSettings, build_features, read_vocab
from squad.postprocess import final_text, predict_answers, read_accuracy_log

SQUAD_DIR = Path(__file__).resolve().parents[2] / "shared" / "squad"
CONTEXT = "The Eiffel Tower was completed in 1889 by Gustave Eiffel's company, a café owner said."
BASE = -100.0  # background logit: far below every crafted value


@pytest.fixture(scope="module")
def vocab_path() -> Path:
    path = SQUAD_DIR / "vocab.txt"
    if not path.exists():
        pytest.skip(f"BERT vocabulary not found at {path}")
    return path


@pytest.fixture(scope="module")
def vocab(vocab_path: Path) -> list[str]:
    return read_vocab(vocab_path)


@pytest.fixture(scope="module")
def eiffel(vocab_path: Path):
    example = SquadExample("q1", "When was the tower completed?", tuple(split_context(CONTEXT)), ())
    return [example], build_features([example], vocab_path)


def pos(features, row: int, word: int, piece: int = 0) -> int:
    """Index in feature ``row`` of the ``piece``-th WordPiece of paragraph word ``word``."""
    return int(np.flatnonzero(features.token_to_orig[row] == word)[piece])


def crafted(seq: int, starts: dict[int, float], ends: dict[int, float]):
    start, end = np.full(seq, BASE, np.float32), np.full(seq, BASE, np.float32)
    start[list(starts)] = list(starts.values())
    end[list(ends)] = list(ends.values())
    return start, end


def answer(eiffel, vocab, starts, ends, **kwargs) -> str:
    examples, features = eiffel
    logits = {0: crafted(features.input_ids.shape[1], starts, ends)}
    return predict_answers(features, logits, examples, vocab, **kwargs)["q1"]


# --- final_text -------------------------------------------------------------------------


def test_final_text_drops_what_the_prediction_does_not_cover() -> None:
    assert final_text("steve smith", "Steve Smith's") == "Steve Smith"
    assert final_text("smith ' s", "Steve Smith's") == "Smith's"


def test_final_text_restores_accents_and_case() -> None:
    assert final_text("cafe", "Café") == "Café"
    assert final_text("cafe owner", "(Café owner)") == "Café owner"


def test_final_text_returns_orig_when_alignment_fails() -> None:
    assert final_text("xyz", "Steve Smith's") == "Steve Smith's"  # not found
    # a decomposed accent (e + U+0301) is stripped: lengths differ, so no alignment
    assert final_text("cafe", "Cafe\u0301 noir") == "Cafe\u0301 noir"
    # a prediction ending on a space has no aligned character
    assert final_text("steve ", "Steve Smith's") == "Steve Smith's"


# --- predict_answers on crafted logits ---------------------------------------------------


def test_known_span_gives_exact_text(eiffel, vocab) -> None:
    _, features = eiffel
    # "Eiffel's" is e ##iff ##el ' s: ending on "##el" rejoins the pieces and cuts "'s"
    got = answer(eiffel, vocab, {pos(features, 0, 8): 10}, {pos(features, 0, 9, 2): 10})
    assert got == "Gustave Eiffel"
    # ending on a first piece keeps only the characters it covers
    got = answer(eiffel, vocab, {pos(features, 0, 8): 10}, {pos(features, 0, 9): 10})
    assert got == "Gustave E"
    got = answer(eiffel, vocab, {pos(features, 0, 6): 10}, {pos(features, 0, 6): 10})
    assert got == "1889"


def test_start_in_question_is_rejected(eiffel, vocab) -> None:
    _, features = eiffel
    year = pos(features, 0, 6)
    assert answer(eiffel, vocab, {3: 50, year: 10}, {year: 10}) == "1889"


def test_end_before_start_is_rejected(eiffel, vocab) -> None:
    _, features = eiffel
    starts, ends = {pos(features, 0, 8): 10}, {pos(features, 0, 6): 50, pos(features, 0, 9, 2): 5}
    got = answer(eiffel, vocab, starts, ends)
    assert got == "Gustave Eiffel"


def test_max_answer_length_is_inclusive(eiffel, vocab) -> None:
    _, features = eiffel
    first, year, tower = pos(features, 0, 0), pos(features, 0, 6), pos(features, 0, 2)
    starts, ends = {first: 10}, {year: 10, tower: 5}
    span = year - first + 1  # tokens in "The Eiffel Tower was completed in 1889"
    assert answer(eiffel, vocab, starts, ends, max_answer_length=span) == (
        "The Eiffel Tower was completed in 1889"
    )
    assert answer(eiffel, vocab, starts, ends, max_answer_length=span - 1) == "The Eiffel Tower"


def test_ties_go_to_the_lower_index(eiffel, vocab) -> None:
    _, features = eiffel
    first, tower, year = pos(features, 0, 0), pos(features, 0, 2), pos(features, 0, 6)
    assert answer(eiffel, vocab, {first: 10, tower: 10}, {tower: 10}) == "The Eiffel Tower"
    assert answer(eiffel, vocab, {year: 10}, {year: 10, year + 1: 10}) == "1889"


def test_no_valid_candidate_gives_empty(eiffel, vocab) -> None:
    examples, features = eiffel
    # the two best starts are [CLS] and a question token
    assert answer(eiffel, vocab, {0: 10, 1: 9}, {20: 10}, n_best_size=2) == "empty"
    assert predict_answers(features, {}, examples, vocab) == {"q1": "empty"}


def test_short_logits_are_padded_with_minus_10000(eiffel, vocab) -> None:
    examples, features = eiffel
    year = pos(features, 0, 6)
    start, end = crafted(int(features.seq_len[0]), {year: 3}, {year: 3})
    assert predict_answers(features, {0: (start, end)}, examples, vocab) == {"q1": "1889"}
    # best logit -9987 beats the padding; at -10007 the top-20 are all padding positions,
    # which lie beyond seq_len: this pins the padding value between the two
    shifted = {0: (start - 9990, end - 9990)}
    assert predict_answers(features, shifted, examples, vocab) == {"q1": "1889"}
    shifted = {0: (start - 10010, end - 10010)}
    assert predict_answers(features, shifted, examples, vocab) == {"q1": "empty"}
    too_long = np.zeros(features.input_ids.shape[1] + 1, np.float32)
    with pytest.raises(DataError, match="feature 0"):
        predict_answers(features, {0: (too_long, too_long)}, examples, vocab)


def test_scores_are_summed_in_float64(eiffel, vocab) -> None:
    _, features = eiffel
    the, tower, year = pos(features, 0, 0), pos(features, 0, 2), pos(features, 0, 6)
    # (year, year) = 2**24 + 2 and (the, tower) = 2**24 + 2.5; in float32 both round to
    # 2**24 + 2 and the tie would go to the first-ranked start, "1889"
    starts, ends = {year: 2.0**24 + 2, the: 2.0**24}, {year: 0.0, tower: 2.5}
    assert answer(eiffel, vocab, starts, ends) == "The Eiffel Tower"


@pytest.fixture(scope="module")
def windows(vocab_path: Path):
    """One question over a 60-word paragraph cut into 32-token windows, stride 8."""
    words = tuple(str(number) for number in range(10, 70))
    example = SquadExample("long", "who?", words, ())
    settings = FeatureSettings(max_seq_length=32, doc_stride=8, max_query_length=8)
    features = build_features([example], vocab_path, settings)
    assert len(features) > 2
    return example, features


def test_start_without_max_context_is_rejected(windows, vocab) -> None:
    example, features = windows
    # in window 1, paragraph word 9 sits near the left edge: window 0 owns it
    early, mid = pos(features, 1, 9), pos(features, 1, 20)
    assert not features.token_is_max_context[1, early]
    assert features.token_is_max_context[1, mid]
    logits = {1: crafted(32, {early: 50, mid: 10}, {mid + 1: 10})}
    assert predict_answers(features, logits, [example], vocab) == {"long": "30 31"}


def test_best_candidate_across_windows_and_first_window_wins_ties(windows, vocab) -> None:
    example, features = windows
    in0, in1 = pos(features, 0, 5), pos(features, 1, 20)
    for second, expected in ((30.0, "30"), (20.0, "15")):
        logits = {
            0: crafted(32, {in0: 10}, {in0: 10}),
            1: crafted(32, {in1: second / 2}, {in1: second / 2}),
        }
        assert predict_answers(features, logits, [example], vocab) == {"long": expected}


def test_features_of_other_examples_are_ignored(eiffel, windows, vocab_path, vocab) -> None:
    (example,), _ = eiffel
    long_example, _ = windows
    features = build_features([example, long_example], vocab_path)
    year = pos(features, 0, 6)
    logits = {0: crafted(384, {year: 1}, {year: 1}), 1: crafted(384, {}, {}), 99: (None, None)}
    assert predict_answers(features, logits, [example], vocab) == {"q1": "1889"}


# --- against a literal transcription of the reference on real data ----------------------


def literal_answers(features, logits, examples, vocab, n_best=20, max_len=30) -> dict[str, str]:
    """The reference's loops as written: every candidate, full n-best with dedup."""
    answers = {}
    for index, example in enumerate(examples):
        prelim = []
        for row in np.flatnonzero(features.example_index == index):
            if row not in logits:
                continue
            start, end = (np.asarray(x, np.float64).tolist() for x in logits[row])
            best = [
                sorted(enumerate(x), key=lambda p: p[1], reverse=True)[:n_best]
                for x in (start, end)
            ]
            for s, _ in best[0]:
                for e, _ in best[1]:
                    if s >= features.seq_len[row] or e >= features.seq_len[row]:
                        continue
                    if features.token_to_orig[row, s] < 0 or features.token_to_orig[row, e] < 0:
                        continue
                    if not features.token_is_max_context[row, s] or e < s or e - s + 1 > max_len:
                        continue
                    prelim.append((start[s] + end[e], row, s, e))
        prelim.sort(key=lambda p: p[0], reverse=True)
        nbest: list[str] = []
        for _, row, s, e in prelim:
            if len(nbest) >= n_best:
                break
            text = " ".join(vocab[i] for i in features.input_ids[row, s : e + 1])
            text = " ".join(text.replace(" ##", "").replace("##", "").strip().split())
            o_s, o_e = features.token_to_orig[row, s], features.token_to_orig[row, e]
            text = final_text(text, " ".join(example.doc_tokens[o_s : o_e + 1]))
            if text not in nbest:
                nbest.append(text)
        answers[example.qas_id] = nbest[0] if nbest else "empty"
    return answers


def test_matches_literal_reference_on_dev_sample(vocab_path, vocab) -> None:
    squad = SQUAD_DIR / "dev-v1.1.json"
    if not squad.exists():
        pytest.skip(f"SQuAD dev set not found at {squad}")
    examples = read_squad_examples(squad)[:40]
    settings = FeatureSettings(max_seq_length=128, doc_stride=32)  # many windows
    features = build_features(examples, vocab_path, settings)
    rng = np.random.default_rng(0)
    for rounding in (None, 0):  # rounded logits: many ties
        logits = {}
        for row in range(len(features)):
            if row % 7 == 3:
                continue  # some features without results
            n = int(features.seq_len[row]) if row % 2 else 128
            pair = rng.normal(0, 3, size=(2, n)).astype(np.float32)
            if rounding is not None:
                pair = np.round(pair, rounding)
            logits[row] = (pair[0], pair[1])
        got = predict_answers(features, logits, examples, vocab)
        padded = {
            row: tuple(
                np.pad(x.astype(np.float64), (0, 128 - len(x)), constant_values=-1e4) for x in pair
            )
            for row, pair in logits.items()
        }
        assert got == literal_answers(features, padded, examples, vocab)


# --- read_accuracy_log -------------------------------------------------------------------


def write_log(path: Path, entries) -> Path:
    path.write_text(json.dumps(entries) if not isinstance(entries, str) else entries)
    return path


def hex_of(start, end) -> str:
    return np.stack([start, end], axis=1).astype("<f4").tobytes().hex().upper()


def test_read_accuracy_log_round_trip_and_last_wins(tmp_path: Path) -> None:
    a, b = np.array([1.5, -2.0, 3.25], np.float32), np.array([0.0, 7.0, -1e4], np.float32)
    log = write_log(
        tmp_path / "log.json",
        [
            {"seq_id": 0, "qsl_idx": 5, "data": hex_of(b, a)},
            {"seq_id": 1, "qsl_idx": 2, "data": hex_of(a[:1], b[:1])},
            {"seq_id": 2, "qsl_idx": 5, "data": hex_of(a, b)},  # duplicate: this one wins
        ],
    )
    result = read_accuracy_log(log)
    assert sorted(result) == [2, 5]
    np.testing.assert_array_equal(result[5][0], a)
    np.testing.assert_array_equal(result[5][1], b)
    np.testing.assert_array_equal(result[2][0], a[:1])
    assert result[5][0].dtype == np.float32


@pytest.mark.parametrize(
    "content",
    [
        None,  # missing file
        "[{not json",
        '{"qsl_idx": 0, "data": ""}',  # not a list
        [{"seq_id": 0, "data": "00000000"}],  # no qsl_idx
        [{"qsl_idx": -1, "data": "00000000"}],
        [{"qsl_idx": 0, "data": 12}],
        [{"qsl_idx": 0, "data": "zz00"}],  # not hex
        [{"qsl_idx": 0, "data": "0000803f"}],  # 4 bytes: half a (start, end) pair
    ],
)
def test_read_accuracy_log_malformed(tmp_path: Path, content) -> None:
    path = tmp_path / "mlperf_log_accuracy.json"
    if content is not None:
        write_log(path, content)
    with pytest.raises(DataError, match="mlperf_log_accuracy.json"):
        read_accuracy_log(path)
