"""Start/end logits -> answer text, as the MLPerf Inference v1.0 ``accuracy-squad.py`` does.

The reference scores every feature with pure-Python loops (~1 min for dev-v1.1). Here the
candidate search is vectorised with numpy over all features at once, keeping the
reference's rules bit for bit:

* top-``n_best`` start and end indexes per feature, ties to the lower index (stable sort);
* a (start, end) pair is kept only if both lie in the real tokens, both are context tokens,
  the start has max context in this window, ``end >= start`` and the span has at most
  ``max_answer_length`` tokens;
* candidates of all an example's windows are ranked by ``start_logit + end_logit``
  (float64), stable in (feature, start rank, end rank) order.

The reference then builds an n-best list of distinct final texts and answers with its
first entry. That entry is always the top-ranked candidate (nothing has been seen yet
when it is added), so only that candidate's text is built here: same answer, ~20x fewer
``final_text`` calls.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from common.errors import DataError
from squad.examples import SquadExample
from squad.features import FeatureSet

# What the reference puts in the logits beyond the length the backend returned.
PAD_LOGIT = -10000.0
# The reference's answer when no candidate span survives the filters.
NO_ANSWER = "empty"

_basic_tokenizer = None


def _basic_tokenize(text: str) -> list[str]:
    """BERT ``BasicTokenizer(do_lower_case=True)``: clean, lower, strip accents, split
    on whitespace and punctuation; no WordPiece. The pair is built once, on first use."""
    global _basic_tokenizer
    if _basic_tokenizer is None:
        from tokenizers import normalizers, pre_tokenizers

        normalizer = normalizers.BertNormalizer(
            clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
        )
        _basic_tokenizer = (normalizer, pre_tokenizers.BertPreTokenizer())
    normalizer, pre_tokenizer = _basic_tokenizer
    return [piece for piece, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text))]


def _strip_spaces(text: str) -> tuple[str, list[int]]:
    """``text`` without spaces, and for each kept character its index in ``text``."""
    positions = [index for index, char in enumerate(text) if char != " "]
    return "".join(text[index] for index in positions), positions


def final_text(pred_text: str, orig_text: str) -> str:
    """Project the normalised prediction back onto the original paragraph text.

    ``pred_text`` is lower-cased, accent-stripped WordPiece text (e.g. ``"steve smith"``);
    ``orig_text`` is the paragraph words it came from (e.g. ``"Steve Smith's"``). Characters
    are aligned through the space-stripped basic-tokenized original; the matching slice of
    ``orig_text`` is returned (``"Steve Smith"``), or all of ``orig_text`` whenever the
    heuristic cannot align (pred not found, or normalisation changed the length).
    """
    tok_text = " ".join(_basic_tokenize(orig_text))
    start = tok_text.find(pred_text)
    if start == -1:
        return orig_text
    end = start + len(pred_text) - 1

    orig_ns_text, orig_ns_to_s = _strip_spaces(orig_text)
    tok_ns_text, tok_ns_to_s = _strip_spaces(tok_text)
    if len(orig_ns_text) != len(tok_ns_text):
        return orig_text
    tok_s_to_ns = {s_index: ns_index for ns_index, s_index in enumerate(tok_ns_to_s)}
    # A prediction starting or ending on a space has no aligned character: give up.
    if start not in tok_s_to_ns or end not in tok_s_to_ns:
        return orig_text
    return orig_text[orig_ns_to_s[tok_s_to_ns[start]] : orig_ns_to_s[tok_s_to_ns[end]] + 1]


def _span_text(
    features: FeatureSet,
    row: int,
    start: int,
    end: int,
    example: SquadExample,
    id_to_token: Sequence[str],
) -> str:
    """Final answer text of the token span ``[start, end]`` of feature ``row``."""
    tokens = [id_to_token[int(token_id)] for token_id in features.input_ids[row, start : end + 1]]
    # Undo WordPiece: glue "##" continuations back onto their word.
    tok_text = " ".join(tokens).replace(" ##", "").replace("##", "")
    tok_text = " ".join(tok_text.strip().split())
    orig_start = int(features.token_to_orig[row, start])
    orig_end = int(features.token_to_orig[row, end])
    orig_text = " ".join(example.doc_tokens[orig_start : orig_end + 1])
    return final_text(tok_text, orig_text)


def predict_answers(
    features: FeatureSet,
    logits: Mapping[int, tuple[np.ndarray, np.ndarray]],
    examples: Sequence[SquadExample],
    id_to_token: Sequence[str],
    n_best_size: int = 20,
    max_answer_length: int = 30,
) -> dict[str, str]:
    """Answer text for every example in ``examples`` (qas_id -> text, in example order).

    ``logits`` maps feature index (LoadGen ``qsl_idx``) to (start, end) arrays of at most
    S = max_seq_length values; shorter arrays are padded with -10000. Features without
    logits are skipped; logits of features outside ``examples`` are ignored. An example
    with no valid candidate span answers ``"empty"``. ``max_answer_length`` is in tokens.
    """
    seq = features.input_ids.shape[1]
    wanted = np.flatnonzero(features.example_index < len(examples))
    rows = np.array([row for row in wanted if int(row) in logits], dtype=np.int64)
    start_logits = np.full((len(rows), seq), PAD_LOGIT, dtype=np.float64)
    end_logits = np.full((len(rows), seq), PAD_LOGIT, dtype=np.float64)
    for slot, row in enumerate(rows):
        start, end = (np.asarray(values).reshape(-1) for values in logits[int(row)])
        if len(start) > seq or len(end) > seq:
            raise DataError(
                f"feature {row}: {max(len(start), len(end))} logits for a sequence of {seq}"
            )
        start_logits[slot, : len(start)] = start
        end_logits[slot, : len(end)] = end

    # [M, n] candidate positions, best first; stable so ties go to the lower index.
    top_start = np.argsort(-start_logits, axis=1, kind="stable")[:, :n_best_size]
    top_end = np.argsort(-end_logits, axis=1, kind="stable")[:, :n_best_size]
    take = np.arange(len(rows))[:, None]
    seq_len = features.seq_len[rows][:, None]
    is_context = features.token_to_orig[rows] != -1
    max_context = features.token_is_max_context[rows]
    start_ok = (top_start < seq_len) & is_context[take, top_start] & max_context[take, top_start]
    end_ok = (top_end < seq_len) & is_context[take, top_end]
    span = top_end[:, None, :] - top_start[:, :, None]  # [M, n_start, n_end] end - start
    valid = start_ok[:, :, None] & end_ok[:, None, :] & (span >= 0) & (span < max_answer_length)
    pairs = top_start.shape[1] * top_end.shape[1]
    scores = (
        start_logits[take, top_start][:, :, None] + end_logits[take, top_end][:, None, :]
    ).reshape(len(rows), pairs)
    valid = valid.reshape(len(rows), pairs)

    answers = {example.qas_id: NO_ANSWER for example in examples}
    example_of_row = features.example_index[rows]
    # rows are sorted by example, so each example's windows form one contiguous block
    bounds = np.flatnonzero(np.diff(example_of_row)) + 1
    for block in np.split(np.arange(len(rows)), bounds) if len(rows) else []:
        block_valid = valid[block].reshape(-1)
        candidates = np.flatnonzero(block_valid)
        if not len(candidates):
            continue
        # argmax returns the first maximum: the head of a stable descending sort.
        best = candidates[np.argmax(scores[block].reshape(-1)[candidates])]
        slot, pair = block[best // pairs], best % pairs
        count = top_end.shape[1]
        start, end = int(top_start[slot, pair // count]), int(top_end[slot, pair % count])
        example = examples[int(example_of_row[slot])]
        answers[example.qas_id] = _span_text(
            features, int(rows[slot]), start, end, example, id_to_token
        )
    return answers


def read_accuracy_log(path: Path) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Parse LoadGen's ``mlperf_log_accuracy.json`` into qsl_idx -> (start, end) logits.

    Each entry's ``data`` is hex of float32 values shaped [S, 2] (column 0 start, 1 end).
    When a qsl_idx repeats, the last entry wins, as in the reference. Raises
    :class:`DataError` naming the file when it is missing or malformed.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            entries = json.load(handle)
    except FileNotFoundError as exc:
        raise DataError(
            f"{path}: accuracy log not found (run the benchmark in accuracy mode)"
        ) from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a readable JSON accuracy log ({exc})") from exc
    except RecursionError:  # nested past Python's stack: not what LoadGen writes
        raise DataError(f"{path}: not a JSON accuracy log (nested too deeply)") from None
    if not isinstance(entries, list):
        raise DataError(f"{path}: expected a JSON list of LoadGen results")
    results: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for number, entry in enumerate(entries):
        qsl_idx = entry.get("qsl_idx") if isinstance(entry, dict) else None
        data = entry.get("data") if isinstance(entry, dict) else None
        if type(qsl_idx) is not int or qsl_idx < 0 or not isinstance(data, str):
            raise DataError(
                f"{path}: entry {number} needs a non-negative integer 'qsl_idx' and a 'data' string"
            )
        try:
            raw = bytes.fromhex(data)
        except ValueError as exc:
            raise DataError(f"{path}: entry {number} (qsl_idx {qsl_idx}): bad hex ({exc})") from exc
        if len(raw) % 8:
            raise DataError(
                f"{path}: entry {number} (qsl_idx {qsl_idx}): {len(raw)} bytes is not a whole "
                "number of float32 (start, end) pairs"
            )
        pairs = np.frombuffer(raw, dtype="<f4").reshape(-1, 2)
        results[qsl_idx] = (pairs[:, 0].copy(), pairs[:, 1].copy())
    return results
