"""Corrupt state heals or explains itself: feature caches and exports in models/store/.

A damaged feature cache (truncated, flipped bytes, wrong shapes, an older format) is
rebuilt with a warning naming it; a damaged export or export record is made again.
"""

from __future__ import annotations

import json
import shutil
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

from common.files import file_sha256
from models import catalog
from squad.examples import read_squad_examples
from squad.features import (
    ARRAY_NAMES,
    FeatureCacheWarning,
    FeatureSet,
    build_features,
    load_or_build_features,
)
from tests.helpers import needs, write_squad

# ---- feature cache ------------------------------------------------------------------------


@pytest.fixture()
def small_squad(tmp_path: Path, squad_dir: Path) -> dict:
    """A three-question SQuAD file (two of them on a paragraph of several 384-token windows),
    the official vocabulary, and its cache built once."""
    long_context = " ".join(f"Word{i} is here." for i in range(90))
    squad = write_squad(tmp_path / "small.json", [
        ("The Eiffel Tower is in Paris.", [("q0", "Where is the tower?", ["Paris"])]),
        (long_context, [("q1", "What is word7?", ["Word7"]), ("q2", "Is it here?", ["here"])]),
    ])
    vocab = squad_dir / "vocab.txt"
    examples = read_squad_examples(squad)
    cache_dir = tmp_path / "cache"
    with warnings.catch_warnings():
        warnings.simplefilter("error", FeatureCacheWarning)  # a fresh build never warns
        features, path = load_or_build_features(examples, squad, vocab, cache_dir, progress=False)
    return {"squad": squad, "vocab": vocab, "examples": examples, "cache": path,
            "fresh": build_features(examples, vocab), "features": features}


def _reload(small: dict) -> FeatureSet:
    features, path = load_or_build_features(small["examples"], small["squad"], small["vocab"],
                                            small["cache"].parent, progress=False)
    assert path == small["cache"]
    return features


def _assert_equal_to_fresh(features: FeatureSet, fresh: FeatureSet) -> None:
    for name in ARRAY_NAMES:
        got, want = getattr(features, name), getattr(fresh, name)
        assert got.dtype == want.dtype and np.array_equal(got, want), name


def _npz_contents(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    with np.load(path) as data:
        return {name: data[name] for name in ARRAY_NAMES}, json.loads(str(data["meta"]))


def _write_npz(path: Path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    with open(path, "wb") as handle:
        np.savez(handle, meta=np.array(json.dumps(meta)), **arrays)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip_byte_in_input_ids(path: Path) -> None:
    """Flip one byte near the end of input_ids' data (padding): the zip's CRC no longer
    matches."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("input_ids.npy")
    data = bytearray(path.read_bytes())
    local = info.header_offset  # local file header: 30 bytes, then name and extra field
    start = local + 30 + int.from_bytes(data[local + 26 : local + 28], "little") + \
        int.from_bytes(data[local + 28 : local + 30], "little")
    data[start + info.compress_size - 10] ^= 0x5A
    path.write_bytes(bytes(data))


def _change_value_keep_crc(path: Path) -> None:
    """Rewrite the archive with one changed token and the old meta: a clean zip whose
    contents no longer match the recorded sha256."""
    arrays, meta = _npz_contents(path)
    arrays["input_ids"] = arrays["input_ids"].copy()
    arrays["input_ids"][0, 3] += 1
    _write_npz(path, arrays, meta)


def _five_token_rows(path: Path) -> None:
    """A self-consistent cache (its recorded shapes and digest match) of 5-token rows,
    under the right key: only the settings (384 tokens a row) show it is wrong."""
    arrays, meta = _npz_contents(path)
    arrays = {name: a[:, :5] if a.ndim == 2 else a for name, a in arrays.items()}
    arrays["seq_len"] = arrays["input_mask"].sum(axis=1).astype(np.int32)
    meta = {k: v for k, v in meta.items() if k not in ("arrays", "sha256")}
    FeatureSet(**arrays, meta=meta).save(path)


def _old_format(path: Path) -> None:
    arrays, meta = _npz_contents(path)
    _write_npz(path, arrays, {k: v for k, v in meta.items() if k not in ("arrays", "sha256")})


def _last_question_missing(path: Path) -> None:
    """A self-consistent cache lacking the last question's windows."""
    arrays, meta = _npz_contents(path)
    keep = arrays["example_index"] < arrays["example_index"][-1]
    meta = {k: v for k, v in meta.items() if k not in ("arrays", "sha256")}
    meta["num_features"] = int(keep.sum())
    FeatureSet(**{name: a[keep] for name, a in arrays.items()}, meta=meta).save(path)


def _wrong_dtype(path: Path) -> None:
    arrays, meta = _npz_contents(path)
    arrays["input_ids"] = arrays["input_ids"].astype(np.int64)
    _write_npz(path, arrays, meta)


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_truncate, "unreadable feature cache"),
        (lambda path: path.write_bytes(b""), "unreadable feature cache"),
        (lambda path: path.write_bytes(b"\x00garbage" * 100), "unreadable feature cache"),
        (_flip_byte_in_input_ids, "unreadable feature cache .*CRC"),
        (_change_value_keep_crc, "contents differ from the sha256"),
        (_five_token_rows, r"input_ids has shape \[(\d+), 5\], expected \[\1, 384\]"),
        (_old_format, "no shapes or digest recorded"),
        (_last_question_missing, "features of 2 questions, expected 3"),
        (_wrong_dtype, "input_ids has dtype int64, expected int32"),
    ],
    ids=["truncated", "empty", "garbage", "byte-flipped", "changed-value", "5-token-rows",
         "old-format", "question-missing", "wrong-dtype"],
)
def test_damaged_feature_cache_is_rebuilt_with_a_warning(small_squad: dict, damage,
                                                         reason: str) -> None:
    path = small_squad["cache"]
    _assert_equal_to_fresh(small_squad["features"], small_squad["fresh"])
    assert len(small_squad["fresh"]) > small_squad["fresh"].num_examples == 3
    damage(path)
    with pytest.warns(FeatureCacheWarning, match=reason) as record:
        rebuilt = _reload(small_squad)
    [message] = [str(w.message) for w in record if w.category is FeatureCacheWarning]
    assert message.startswith(f"{path}: ") and message.endswith("rebuilding the feature cache")
    assert "\n" not in message
    _assert_equal_to_fresh(rebuilt, small_squad["fresh"])
    # the rebuilt cache is whole again: the next load uses it without a word
    with warnings.catch_warnings():
        warnings.simplefilter("error", FeatureCacheWarning)
        _assert_equal_to_fresh(_reload(small_squad), small_squad["fresh"])
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temp files


def test_cache_of_other_questions_is_rebuilt(small_squad: dict) -> None:
    """The key covers the files; a cache built for only some of their questions (a caller
    passing a subset) is not taken for all of them."""
    subset = small_squad["examples"][:1]
    with pytest.warns(FeatureCacheWarning, match="features of 3 questions, expected 1"):
        features, _ = load_or_build_features(subset, small_squad["squad"], small_squad["vocab"],
                                             small_squad["cache"].parent, progress=False)
    assert features.num_examples == 1


# ---- exports in models/store/ -------------------------------------------------------------


@pytest.fixture(scope="module")
def exported_store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """A store holding the tiny checkpoint exported once (copied by each test)."""
    needs("onnx", "export", purpose="exporting a Hugging Face checkpoint to ONNX")
    tiny_hf_dir = request.getfixturevalue("tiny_hf_dir")
    spec = catalog.ModelSpec("tiny", "tiny test model", "hf", "fp32", "onnxruntime",
                             local_dirs=(str(tiny_hf_dir),))
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(catalog.CATALOG, "tiny", spec)
        store = tmp_path_factory.mktemp("store")
        catalog.resolve_model("tiny", "onnxruntime", store)
    return spec, store


@pytest.fixture()
def store(exported_store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    spec, built = exported_store
    monkeypatch.setitem(catalog.CATALOG, "tiny", spec)
    shutil.copytree(built, tmp_path / "store")
    return tmp_path / "store"


def _export_paths(store: Path) -> tuple[Path, Path]:
    out = store / "tiny" / "model.onnx"
    return out, catalog.source_record_path(out)


def test_export_records_its_size_and_digest_and_is_reused(store: Path) -> None:
    out, record = _export_paths(store)
    data = json.loads(record.read_text())
    assert data["output_size"] == out.stat().st_size
    assert data["output_sha256"] == file_sha256(out)
    assert data["weights_sha256"] == file_sha256(Path(data["source"]) / "model.safetensors")
    before = out.stat().st_mtime_ns
    with warnings.catch_warnings():
        warnings.simplefilter("error", catalog.StaleExportWarning)
        resolved = catalog.resolve_model("tiny", "onnxruntime", store)
    assert resolved.path == out and out.stat().st_mtime_ns == before
    # the export, its record, and the checkpoint's config (heads for ORT's fusions)
    assert sorted(p.name for p in out.parent.iterdir()) == sorted(
        [out.name, record.name, "config.json"])


def _truncate_file(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])


def _flip_middle_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("target", "damage", "reason"),
    [
        ("model", _truncate_file, r"model.onnx is \d+ bytes, \d+ when it was made"),
        ("model", _flip_middle_byte, "model.onnx differs from the sha256 recorded"),
        ("record", _truncate_file, r"model.onnx.source.json is unreadable"),
        ("record", lambda p: p.write_bytes(b"\xff\xfe\x00\x01garbage"),
         r"model.onnx.source.json is unreadable"),
        ("record", lambda p: p.write_text("[1, 2]"), "is not a JSON object"),
        ("record", lambda p: p.unlink(), "model.onnx.source.json is missing"),
        ("record", lambda p: p.write_text(json.dumps(
            {k: v for k, v in json.loads(p.read_text()).items() if not k.startswith("output")}
        )), "records no size and sha256"),
    ],
    ids=["model-truncated", "model-byte-flipped", "record-truncated", "record-binary",
         "record-not-object", "record-missing", "record-old-format"],
)
def test_damaged_export_is_made_again(store: Path, target: str, damage, reason: str) -> None:
    out, record = _export_paths(store)
    good_size = out.stat().st_size
    damage(out if target == "model" else record)
    with pytest.warns(catalog.StaleExportWarning, match=reason) as caught:
        resolved = catalog.resolve_model("tiny", "onnxruntime", store)
    assert "\n" not in str(caught[0].message) and str(out) in str(caught[0].message)
    assert resolved.path == out and out.stat().st_size == good_size
    data = json.loads(record.read_text())
    assert data["output_sha256"] == file_sha256(out) and data["output_size"] == good_size
    with warnings.catch_warnings():  # whole again: reused without a word
        warnings.simplefilter("error", catalog.StaleExportWarning)
        catalog.resolve_model("tiny", "onnxruntime", store)


def test_changed_weights_are_exported_again_without_a_warning(store: Path) -> None:
    out, record = _export_paths(store)
    data = json.loads(record.read_text())
    record.write_text(json.dumps({**data, "weights_sha256": "0" * 64}))
    with warnings.catch_warnings():
        warnings.simplefilter("error", catalog.StaleExportWarning)
        catalog.resolve_model("tiny", "onnxruntime", store)
    assert json.loads(record.read_text())["weights_sha256"] == data["weights_sha256"]


def test_a_checkpoint_kept_in_the_stores_own_folder_exports_beside_itself(
        tiny_hf_dir: Path, tmp_path: Path) -> None:
    """models/store/<name>/ may hold the checkpoint itself: its config.json is already where
    the export wants one (copying it onto itself used to fail)."""
    needs("onnx", "export", purpose="exporting a Hugging Face checkpoint to ONNX")
    store = tmp_path / "store"
    checkpoint = store / "mine"
    shutil.copytree(tiny_hf_dir, checkpoint)
    config = (checkpoint / "config.json").read_text()
    resolved = catalog.resolve_model(str(checkpoint), "onnxruntime", store)
    assert resolved.path.parent == checkpoint and resolved.path.suffix == ".onnx"
    assert (checkpoint / "config.json").read_text() == config
