"""Feature creation: identical to the MLPerf reference, windowed correctly, cached by key."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from squad.examples import SquadExample, read_squad_examples, split_context
from squad.features import (
    FeatureSet,
    FeatureSettings,
    build_features,
    cache_key,
    doc_spans,
    load_or_build_features,
)

# sha256 over int32 input_ids, input_mask and segment_ids (in that order, C order) of the
# 10833 features that the MLCommons reference create_squad_data.py (convert_examples_to_features,
# is_training=False, 384/128/64, transformers' pure-Python BertTokenizer on vocab.txt)
# produced from dev-v1.1.json; computed once with the reference, on 2026-11-23.
REFERENCE_SHA256 = "aa67e77d9ed11444f0f0f844a1bba58b8e74d069360c85158adea18b705cedfe"


@pytest.fixture(scope="module")
def dev_features(squad_dir: Path) -> FeatureSet:
    examples = read_squad_examples(squad_dir / "dev-v1.1.json")
    return build_features(examples, squad_dir / "vocab.txt")


def test_dev_set_matches_the_mlperf_reference(dev_features: FeatureSet) -> None:
    assert len(dev_features) == 10833
    assert dev_features.num_examples == 10570
    digest = hashlib.sha256()
    for name in ("input_ids", "input_mask", "segment_ids"):
        digest.update(np.ascontiguousarray(getattr(dev_features, name), np.int32).tobytes())
    assert digest.hexdigest() == REFERENCE_SHA256


def test_dev_set_length_statistics(dev_features: FeatureSet) -> None:
    # Documented facts of this data: mean real length 178.5 tokens, 2.4% fill all 384.
    assert dev_features.seq_len.mean() == pytest.approx(178.49, abs=0.01)
    assert (dev_features.seq_len == 384).mean() == pytest.approx(0.0244, abs=0.0005)
    assert np.array_equal(dev_features.seq_len, dev_features.input_mask.sum(axis=1))


def test_first_examples_keeps_all_windows_of_the_first_questions(dev_features) -> None:
    subset = dev_features.first_examples(2804)
    assert subset.num_examples == 2804
    assert len(subset) == 2841  # the demo model card's held-out feature count
    assert np.array_equal(subset.input_ids, dev_features.input_ids[:2841])
    assert dev_features.first_examples(None) is dev_features


def test_doc_spans_follow_the_reference_stride() -> None:
    assert doc_spans(10, 4, 2) == [(0, 4), (2, 4), (4, 4), (6, 4)]
    assert doc_spans(3, 10, 2) == [(0, 3)]
    assert doc_spans(9, 4, 8) == [(0, 4), (4, 4), (8, 1)]  # stride capped by window length


def test_windows_masks_and_max_context(squad_dir: Path) -> None:
    context = " ".join(f"word{i}" for i in range(60))
    example = SquadExample("q", "which word?", tuple(split_context(context)), ())
    settings = FeatureSettings(max_seq_length=32, doc_stride=8, max_query_length=64)
    features = build_features([example], squad_dir / "vocab.txt", settings)
    assert len(features) > 2
    assert list(features.doc_span_index) == list(range(len(features)))
    for row in range(len(features)):
        real = features.seq_len[row]
        assert features.input_mask[row, :real].all() and not features.input_mask[row, real:].any()
        context_positions = np.flatnonzero(features.token_to_orig[row] >= 0)
        # context tokens have segment 1, as does the final [SEP]; padding is 0
        assert features.segment_ids[row, context_positions].all()
        assert features.segment_ids[row, real - 1] == 1
        assert features.segment_ids[row, real:].sum() == 0
    # every WordPiece of the paragraph is "max context" in exactly one window
    query_len, doc_len = 3, 60 * 2  # "which word ?"; "word12" -> "word", "##12"
    spans = doc_spans(doc_len, 32 - query_len - 3, 8)
    assert len(spans) == len(features)
    owners = np.zeros(doc_len, int)
    for row, (span_start, _) in enumerate(spans):
        positions = np.flatnonzero(features.token_is_max_context[row])
        owners[span_start + positions - (query_len + 2)] += 1
    assert (owners == 1).all()


def test_query_is_truncated_to_max_query_length(squad_dir: Path) -> None:
    question = " ".join(["what"] * 100)
    example = SquadExample("q", question, ("answer",), ())
    features = build_features([example], squad_dir / "vocab.txt")
    # [CLS] + 64 query tokens + [SEP]: the first context token sits at position 66
    assert np.flatnonzero(features.token_to_orig[0] >= 0)[0] == 66
    assert features.seq_len[0] == 68


def test_cache_is_keyed_by_settings_and_reused(squad_dir: Path, tmp_path: Path) -> None:
    squad, vocab = squad_dir / "dev-v1.1.json", squad_dir / "vocab.txt"
    examples = read_squad_examples(squad)[:50]
    default, other = FeatureSettings(), FeatureSettings(doc_stride=64)
    assert cache_key(squad, vocab, default) != cache_key(squad, vocab, other)
    built, path = load_or_build_features(examples, squad, vocab, tmp_path, progress=False)
    assert path.is_file() and list(tmp_path.iterdir()) == [path]  # no temp files left
    again, path_again = load_or_build_features(examples, squad, vocab, tmp_path, progress=False)
    assert path_again == path
    for name in ("input_ids", "token_to_orig", "token_is_max_context", "example_index"):
        assert np.array_equal(getattr(built, name), getattr(again, name))
    assert again.meta["key"] == cache_key(squad, vocab, default)
