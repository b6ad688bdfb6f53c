"""SQuAD examples -> BERT features, exactly as the MLPerf reference ``create_squad_data.py``.

The reference tokenizes with a pure-Python WordPiece tokenizer (~100 s for dev-v1.1); here
the Rust ``tokenizers`` library does the same tokenization (BERT normalizer with lower
casing and accent stripping, BERT pre-tokenizer, WordPiece with ``[UNK]`` and 100 characters
per word at most) in a few seconds, and the sliding-window logic follows the reference.

Cache layout (``.npz``, one array per name, ``N`` features, ``S`` = max_seq_length):

=====================  ===========  ==================================================
array                  dtype/shape  meaning
=====================  ===========  ==================================================
input_ids              int32 [N,S]  WordPiece ids, ``[CLS] question [SEP] context [SEP]``
input_mask             int32 [N,S]  1 for real tokens, 0 for padding
segment_ids            int32 [N,S]  0 question part, 1 context part, 0 padding
example_index          int32 [N]    index of the question in file order
doc_span_index         int32 [N]    window number within the question's paragraph
token_to_orig          int32 [N,S]  whitespace-token index in the paragraph, -1 if none
token_is_max_context   bool  [N,S]  this window is the max-context one for the token
seq_len                int32 [N]    number of real tokens (``sum(input_mask)``)
meta                   str   []     JSON: settings, key, format, each array's shape and
                                    dtype, and ``sha256`` over the arrays' bytes
=====================  ===========  ==================================================

A cache is trusted only when it reads cleanly and matches its key, the settings, the
questions and its recorded shapes, dtypes and digest; any other cache (truncated, flipped
bytes, wrong shapes, an older format) is rebuilt with a warning naming it and the fault.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from backends.base import FeatureBatch
from common.errors import DataError, HarnessWarning
from common.files import atomic_path, file_sha256
from squad.examples import SquadExample

FORMAT_VERSION = 1
CLS, SEP = "[CLS]", "[SEP]"
ARRAY_NAMES = (
    "input_ids",
    "input_mask",
    "segment_ids",
    "example_index",
    "doc_span_index",
    "token_to_orig",
    "token_is_max_context",
    "seq_len",
)
# Arrays with one value per token ([N, S]); the others hold one value per feature ([N]).
TOKEN_ARRAYS = frozenset(
    ("input_ids", "input_mask", "segment_ids", "token_to_orig", "token_is_max_context")
)
ARRAY_DTYPES = {
    name: np.dtype(bool) if name == "token_is_max_context" else np.dtype(np.int32)
    for name in ARRAY_NAMES
}


class FeatureCacheWarning(HarnessWarning):
    """A feature cache did not match what it should hold and is being rebuilt."""


@dataclasses.dataclass(frozen=True)
class FeatureSettings:
    """Window settings; the MLPerf values are the defaults (tokens)."""

    max_seq_length: int = 384
    doc_stride: int = 128
    max_query_length: int = 64


@dataclasses.dataclass(frozen=True)
class FeatureSet:
    """Arrays of all features, in reference order (see module docstring for layout)."""

    input_ids: np.ndarray
    input_mask: np.ndarray
    segment_ids: np.ndarray
    example_index: np.ndarray
    doc_span_index: np.ndarray
    token_to_orig: np.ndarray
    token_is_max_context: np.ndarray
    seq_len: np.ndarray
    meta: dict = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def num_examples(self) -> int:
        """Number of distinct questions covered."""
        return int(self.example_index[-1]) + 1 if len(self) else 0

    def batch(self, rows: int | slice | list[int]) -> FeatureBatch:
        """The given rows as an int64 :class:`FeatureBatch`, the backends' input."""
        return FeatureBatch(
            *(getattr(self, name)[rows].astype(np.int64) for name in ARRAY_NAMES[:3])
        )

    def first_examples(self, max_examples: int | None) -> FeatureSet:
        """Features of the first ``max_examples`` questions (all their windows)."""
        if max_examples is None or max_examples >= self.num_examples:
            return self
        count = int(np.searchsorted(self.example_index, max_examples, side="left"))
        arrays = {name: getattr(self, name)[:count] for name in ARRAY_NAMES}
        return FeatureSet(**arrays, meta={**self.meta, "max_examples": max_examples})

    def save(self, path: Path) -> dict:
        """Write atomically: a crash never leaves a truncated cache behind.

        The meta written is ``self.meta`` plus each array's shape and dtype and the sha256
        of their bytes, which :func:`check_cache` verifies before a cache is used; it is
        returned.
        """
        arrays = {name: np.ascontiguousarray(getattr(self, name)) for name in ARRAY_NAMES}
        meta = {**self.meta, "arrays": _array_layout(arrays), "sha256": arrays_sha256(arrays)}
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, meta=np.array(json.dumps(meta)), **arrays)
        return meta

    @classmethod
    def load(cls, path: Path) -> FeatureSet:
        """Read a cache written by :meth:`save`; :class:`DataError` if it cannot be read.

        This only reads; :func:`check_cache` says whether the contents can be trusted.
        """
        try:
            # our own handle: np.load leaks the one it opens when the zip is unreadable
            with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as data:
                arrays = {name: data[name] for name in ARRAY_NAMES}
                meta = json.loads(str(data["meta"]))
        # A damaged zip raises anything from BadZipFile, EOFError, zlib.error and OSError
        # to ValueError (npy header, JSON), KeyError (a missing array) or MemoryError (a
        # garbled shape): whatever it is, the cache cannot be read.
        except Exception as exc:
            raise DataError(
                f"{path}: unreadable feature cache ({type(exc).__name__}: {_one_line(exc)})"
            ) from None
        if not isinstance(meta, dict):
            raise DataError(f"{path}: unreadable feature cache (its meta is not a JSON object)")
        return cls(**arrays, meta=meta)


def _one_line(exc: BaseException) -> str:
    """An exception's message on one line (the CLI prints messages on one line)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def arrays_sha256(arrays: Mapping[str, np.ndarray]) -> str:
    """sha256 over the arrays' names, dtypes, shapes and bytes, in :data:`ARRAY_NAMES` order."""
    digest = hashlib.sha256()
    for name in ARRAY_NAMES:
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{array.dtype.str}:{list(array.shape)};".encode())
        digest.update(array.data)
    return digest.hexdigest()


def _array_layout(arrays: Mapping[str, np.ndarray]) -> dict[str, dict]:
    return {
        name: {"shape": list(arrays[name].shape), "dtype": arrays[name].dtype.str}
        for name in ARRAY_NAMES
    }


def check_cache(
    features: FeatureSet, key: str, settings: FeatureSettings, num_examples: int | None = None
) -> str | None:
    """What is wrong with a loaded cache (``None`` when it can be used).

    Checks its format and key, each array's dtype and shape against the settings (``[N, S]``
    or ``[N]``, one ``N`` for all), the shapes, dtypes and sha256 recorded when it was
    written, the number of questions (when given) and the rows' basic consistency.
    """
    meta = features.meta
    if meta.get("format") != FORMAT_VERSION:
        return f"format {meta.get('format')!r}, expected {FORMAT_VERSION}"
    if meta.get("key") != key:
        return f"key {meta.get('key')!r}, expected {key!r}"
    if not isinstance(meta.get("arrays"), dict) or not isinstance(meta.get("sha256"), str):
        return "no shapes or digest recorded (written by an older version)"
    arrays = {name: getattr(features, name) for name in ARRAY_NAMES}
    count = arrays["input_ids"].shape[0] if arrays["input_ids"].ndim else 0
    for name, array in arrays.items():
        expected = (count, settings.max_seq_length) if name in TOKEN_ARRAYS else (count,)
        if array.dtype != ARRAY_DTYPES[name]:
            return f"{name} has dtype {array.dtype}, expected {ARRAY_DTYPES[name]}"
        if array.shape != expected:
            return f"{name} has shape {list(array.shape)}, expected {list(expected)}"
    if count == 0:
        return "it holds no features"
    if meta.get("num_features") != count:
        return f"{count} features, its meta says {meta.get('num_features')!r}"
    if meta["arrays"] != _array_layout(arrays):
        return "array shapes or dtypes differ from those recorded when it was written"
    if arrays_sha256(arrays) != meta["sha256"]:
        return "contents differ from the sha256 recorded when it was written"
    examples = arrays["example_index"]
    if examples[0] != 0 or np.any(np.diff(examples) < 0) or np.any(np.diff(examples) > 1):
        return "example_index is not 0, 1, 2, ... in order"
    if num_examples is not None and int(examples[-1]) + 1 != num_examples:
        return f"features of {int(examples[-1]) + 1} questions, expected {num_examples}"
    if not np.array_equal(arrays["seq_len"], arrays["input_mask"].sum(axis=1)):
        return "seq_len differs from the number of real tokens in input_mask"
    return None


def make_wordpiece_tokenizer(vocab_path: Path):
    """A ``tokenizers.Tokenizer`` equal to the reference's uncased BERT ``FullTokenizer``."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import WordPiece

    vocab = read_vocab(vocab_path)
    model = WordPiece(
        {token: index for index, token in enumerate(vocab)},
        unk_token="[UNK]",
        max_input_chars_per_word=100,
    )
    tokenizer = Tokenizer(model)
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
    )
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return tokenizer


def read_vocab(vocab_path: Path) -> list[str]:
    """Vocabulary tokens by id (one token a line, as in BERT's vocab.txt)."""
    try:
        text = Path(vocab_path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{vocab_path}: cannot read vocabulary ({exc})") from exc
    vocab = [line.rstrip("\n").strip() for line in text.splitlines()]
    for required in ("[UNK]", CLS, SEP, "[PAD]"):
        if required not in vocab:
            raise DataError(f"{vocab_path}: not a BERT vocabulary (no {required} token)")
    return vocab


def _max_context_table(spans: Sequence[tuple[int, int]], num_tokens: int) -> np.ndarray:
    """For each doc token, the window giving it the most context (reference tie rules)."""
    best_score = np.full(num_tokens, -np.inf)
    best_span = np.full(num_tokens, -1, dtype=np.int64)
    for span_index, (start, length) in enumerate(spans):
        positions = np.arange(start, start + length)
        left = positions - start
        right = start + length - 1 - positions
        score = np.minimum(left, right) + 0.01 * length
        # strictly greater: the earlier window wins ties, as in the reference
        better = score > best_score[positions]
        best_score[positions[better]] = score[better]
        best_span[positions[better]] = span_index
    return best_span


def doc_spans(
    num_doc_tokens: int, max_tokens_for_doc: int, doc_stride: int
) -> list[tuple[int, int]]:
    """Sliding windows ``(start, length)`` over the paragraph's WordPieces."""
    spans: list[tuple[int, int]] = []
    start = 0
    while start < num_doc_tokens:
        length = min(num_doc_tokens - start, max_tokens_for_doc)
        spans.append((start, length))
        if start + length == num_doc_tokens:
            break
        start += min(length, doc_stride)
    return spans


def build_features(
    examples: Sequence[SquadExample],
    vocab_path: Path,
    settings: FeatureSettings = FeatureSettings(),
    progress: bool = False,
) -> FeatureSet:
    """Turn examples into features; identical ids/masks/segments to the MLPerf reference."""
    tokenizer = make_wordpiece_tokenizer(vocab_path)
    cls_id, sep_id = tokenizer.token_to_id(CLS), tokenizer.token_to_id(SEP)
    seq = settings.max_seq_length

    # Paragraphs are shared by many questions: tokenize each distinct one once.
    paragraph_ids: dict[tuple[str, ...], int] = {}
    for example in examples:
        paragraph_ids.setdefault(example.doc_tokens, len(paragraph_ids))
    paragraphs = list(paragraph_ids)
    doc_encodings = tokenizer.encode_batch(
        [list(tokens) for tokens in paragraphs], is_pretokenized=True, add_special_tokens=False
    )
    query_encodings = tokenizer.encode_batch(
        [example.question_text for example in examples], add_special_tokens=False
    )

    rows: dict[str, list] = {name: [] for name in ARRAY_NAMES}
    iterator = enumerate(examples)
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, total=len(examples), desc="features", unit="question")
    for example_index, example in iterator:
        query = query_encodings[example_index].ids[: settings.max_query_length]
        doc = doc_encodings[paragraph_ids[example.doc_tokens]]
        doc_ids = doc.ids
        tok_to_orig = [word if word is not None else -1 for word in doc.word_ids]
        max_tokens_for_doc = seq - len(query) - 3
        spans = doc_spans(len(doc_ids), max_tokens_for_doc, settings.doc_stride)
        best_span = _max_context_table(spans, len(doc_ids))
        offset = len(query) + 2
        for span_index, (start, length) in enumerate(spans):
            ids = np.zeros(seq, dtype=np.int32)
            segments = np.zeros(seq, dtype=np.int32)
            to_orig = np.full(seq, -1, dtype=np.int32)
            max_context = np.zeros(seq, dtype=bool)
            ids[0] = cls_id
            ids[1 : 1 + len(query)] = query
            ids[offset - 1] = sep_id
            ids[offset : offset + length] = doc_ids[start : start + length]
            ids[offset + length] = sep_id
            segments[offset : offset + length + 1] = 1
            to_orig[offset : offset + length] = tok_to_orig[start : start + length]
            max_context[offset : offset + length] = best_span[start : start + length] == span_index
            real = offset + length + 1
            mask = np.zeros(seq, dtype=np.int32)
            mask[:real] = 1
            for name, value in (
                ("input_ids", ids),
                ("input_mask", mask),
                ("segment_ids", segments),
                ("example_index", example_index),
                ("doc_span_index", span_index),
                ("token_to_orig", to_orig),
                ("token_is_max_context", max_context),
                ("seq_len", real),
            ):
                rows[name].append(value)
    if not rows["input_ids"]:
        raise DataError("the SQuAD file holds no questions: nothing to build features from")
    arrays = {
        name: np.asarray(values, dtype=bool if name == "token_is_max_context" else np.int32)
        for name, values in rows.items()
    }
    return FeatureSet(**arrays, meta={"settings": dataclasses.asdict(settings)})


def cache_key(squad_path: Path, vocab_path: Path, settings: FeatureSettings) -> str:
    """Key of everything that shapes the features: data, vocabulary, settings, format."""
    import tokenizers

    parts = {
        "format": FORMAT_VERSION,
        "squad_sha256": file_sha256(squad_path),
        "vocab_sha256": file_sha256(vocab_path),
        "settings": dataclasses.asdict(settings),
        "tokenizers": tokenizers.__version__,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def load_or_build_features(
    examples: Sequence[SquadExample],
    squad_path: Path,
    vocab_path: Path,
    cache_dir: Path,
    settings: FeatureSettings = FeatureSettings(),
    progress: bool = True,
) -> tuple[FeatureSet, Path]:
    """Return features from the keyed cache in ``cache_dir``, building them on a miss.

    A cache that cannot be read or fails :func:`check_cache` is rebuilt, with a
    :class:`FeatureCacheWarning` naming the file and what was wrong with it.
    """
    key = cache_key(squad_path, vocab_path, settings)
    path = Path(cache_dir) / f"squad_features_{key}.npz"
    if path.exists():
        try:
            cached = FeatureSet.load(path)
            problem = check_cache(cached, key, settings, len(examples))
        except DataError as exc:
            problem = str(exc).removeprefix(f"{path}: ")
        if problem is None:
            return cached, path
        warnings.warn(
            f"{path}: {problem}; rebuilding the feature cache",
            FeatureCacheWarning,
            stacklevel=2,
        )
    features = build_features(examples, vocab_path, settings, progress=progress)
    meta = {
        **features.meta,
        "format": FORMAT_VERSION,
        "key": key,
        "squad_file": str(squad_path),
        "vocab_file": str(vocab_path),
        "num_features": len(features),
        "num_examples": features.num_examples,
    }
    features = dataclasses.replace(features, meta=meta)
    return dataclasses.replace(features, meta=features.save(path)), path
