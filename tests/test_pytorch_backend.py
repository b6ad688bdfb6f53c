"""PyTorch backend: MLPerf-format stand-ins, agreement with ONNX Runtime, refusals, end to end."""

from __future__ import annotations

import builtins
import hashlib
import json
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

from backends import BackendError, BackendSettings, FeatureBatch
from common.errors import ConfigError
from common.settings import build
from harness.loadgen.sut import PAD_LOGIT
from harness.runner import RunConfig
from squad.data import prepare_data
from squad.postprocess import read_accuracy_log
from tests.helpers import CPU, FAST_CONF, isolated, needs, open_backend, random_batch, squad_data
from tests.tiny_models import make_mlperf_pytorch_state_dict

# the torch extra is optional: without it this module skips instead of failing to import
needs("torch", purpose="the PyTorch backend tests")
import torch  # noqa: E402

from backends.pytorch_backend import DEFAULT_ATTENTION  # noqa: E402

ATOL = 1e-3  # logits, absolute: pytorch vs ONNX Runtime (fp32, measured ~1e-6)
SMALL = {"hidden": 128, "heads": 2, "intermediate": 256}  # fast stand-in, same key layout


@pytest.fixture(scope="module")
def mlperf_file(tmp_path_factory) -> Path:
    """Real BERT-Large widths (1024 hidden, 16 heads, 4096), one layer: ~180 MB, ~5 s."""
    return make_mlperf_pytorch_state_dict(tmp_path_factory.mktemp("mlperf") / "model.pytorch")


@pytest.fixture(scope="module")
def small_file(tmp_path_factory) -> Path:
    return make_mlperf_pytorch_state_dict(
        tmp_path_factory.mktemp("small") / "model.pytorch", layers=2, **SMALL
    )


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, squad_dir: Path) -> dict:
    """Official SQuAD features of the first 5 questions, cached for the end-to-end run too."""
    root = tmp_path_factory.mktemp("pytorch_run")
    (root / "user.conf").write_text(FAST_CONF)
    data = squad_data(root, squad_dir, max_examples=5)
    return {"root": root, "data": data, "prepared": prepare_data(data, progress=False)}


# ---- MLPerf model.pytorch format ----------------------------------------------------------


@pytest.mark.parametrize("batch", [1, 3])
def test_mlperf_format_returns_logits(mlperf_file: Path, batch: int) -> None:
    features = random_batch(batch)
    with open_backend("pytorch", mlperf_file) as backend:
        start, end = backend.predict(features)
        first_alone = backend.predict(FeatureBatch(*(a[:1] for a in (
            features.input_ids, features.input_mask, features.segment_ids))))
        info = backend.describe()
    for logits in (start, end):
        assert logits.dtype == np.float32 and logits.shape == (batch, 384)
        assert logits.flags["C_CONTIGUOUS"] and np.isfinite(logits).all()
        assert logits.std() > 0
    assert not np.allclose(start, end)
    # a row's logits do not depend on the other (differently padded) rows of its batch
    np.testing.assert_allclose(start[:1], first_alone[0], rtol=0, atol=1e-4)
    np.testing.assert_allclose(end[:1], first_alone[1], rtol=0, atol=1e-4)
    assert info["config"] == {"layers": 1, "hidden": 1024, "heads": 16, "intermediate": 4096,
                              "vocab": 30522, "max_positions": 512}
    assert info["model_format"] == "state-dict" and info["model_path"] == str(mlperf_file)
    assert info["device"] == "cpu" and info["attn_implementation"] == DEFAULT_ATTENTION
    assert info["torch_version"] == torch.__version__


def test_every_weight_lands_where_its_name_says(small_file: Path) -> None:
    saved = torch.load(small_file, weights_only=True)
    with open_backend("pytorch", small_file) as backend:
        loaded = backend._model.state_dict()
    assert set(saved) - set(loaded) == {"bert.pooler.dense.weight", "bert.pooler.dense.bias"}
    assert set(loaded) <= set(saved)
    for key, tensor in loaded.items():
        assert torch.equal(tensor, saved[key]), key


def test_older_spellings_load_to_the_same_model(small_file: Path, tmp_path: Path) -> None:
    """gamma/beta LayerNorm names, a saved position_ids buffer, torch's pre-1.6 format."""
    state = torch.load(small_file, weights_only=True)
    renamed = OrderedDict(
        (k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias",
                                                                   "LayerNorm.beta"), v)
        for k, v in state.items()
    )
    renamed["bert.embeddings.position_ids"] = torch.arange(512).unsqueeze(0)
    old = tmp_path / "old.pt"
    torch.save(renamed, old, _use_new_zipfile_serialization=False)
    features = random_batch(2)
    with open_backend("pytorch", small_file) as backend:
        want = backend.predict(features)
    with open_backend("pytorch", old) as backend:
        got = backend.predict(features)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


# ---- Hugging Face checkpoints agree with ONNX Runtime -------------------------------------


@pytest.mark.parametrize("attention", ["eager", "sdpa"])
def test_hf_checkpoint_matches_onnxruntime(tiny_hf_dir: Path, tiny_onnx: Path, workspace: dict,
                                           attention: str) -> None:
    data = workspace["prepared"]
    assert len(data.features) >= 4 and (data.features.input_mask[:4] == 0).any()  # padded
    settings = BackendSettings(device="cpu", options={"attn_implementation": attention})
    # the checkpoint directory and its model.safetensors name the same model
    with open_backend("onnxruntime", tiny_onnx) as ort, \
            open_backend("pytorch", tiny_hf_dir, settings) as by_dir, \
            open_backend("pytorch", tiny_hf_dir / "model.safetensors", settings) as by_file:
        for rows in (slice(0, 1), slice(1, 4)):
            batch = data.features.batch(rows)
            want = ort.predict(batch)
            for got in (by_dir.predict(batch), by_file.predict(batch)):
                for g, w in zip(got, want, strict=True):
                    assert g.dtype == np.float32 and g.shape == w.shape
                    np.testing.assert_allclose(g, w, rtol=0, atol=ATOL)
        info = by_dir.describe()
    assert info["attn_implementation"] == attention and info["model_format"] == "hf"
    assert info["config"]["layers"] == 2 and info["config"]["hidden"] == 64


def test_hf_checkpoint_without_qa_head_is_refused(tmp_path: Path) -> None:
    from transformers import BertConfig, BertModel

    config = BertConfig(hidden_size=64, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=128)
    BertModel(config).save_pretrained(tmp_path)
    with pytest.raises(BackendError, match="missing 2 keys: qa_outputs.bias, qa_outputs.weight"):
        open_backend("pytorch", tmp_path)


# ---- refusals -----------------------------------------------------------------------------


class _WritesMarker:
    """Unpickling this calls open(marker, "w"): a stand-in for any code a file could run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (builtins.open, (str(self.marker), "w"))


def test_pickle_that_would_run_code_is_refused_unrun(tmp_path: Path) -> None:
    marker = tmp_path / "code_ran"
    path = tmp_path / "model.pytorch"
    torch.save({"qa_outputs.bias": torch.zeros(2), "payload": _WritesMarker(marker)}, path)
    torch.load(path, weights_only=False)  # proves the payload is live: unsafe loading runs it
    assert marker.exists()
    marker.unlink()
    with pytest.raises(BackendError, match="would run code") as info:
        open_backend("pytorch", path)
    refused = f"{builtins.open.__module__}.{builtins.open.__qualname__}"  # io.open
    assert str(path) in str(info.value) and f"it calls {refused}" in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "listed"),
    [({"x": 1, "f": "not a tensor"}, "'f': str"), ([torch.zeros(2)], "list")],
)
def test_non_tensor_contents_are_refused(tmp_path: Path, content, listed: str) -> None:
    path = tmp_path / "model.pt"
    torch.save(content, path)
    with pytest.raises(BackendError, match="not a plain state dict") as info:
        open_backend("pytorch", path)
    assert listed in str(info.value) and str(path) in str(info.value)


@pytest.mark.parametrize(
    ("edit", "listed"),
    [
        ("drop", ["missing 1 keys", "bert.encoder.layer.1.output.dense.weight"]),
        ("extra", ["unexpected 1 keys", "bert.encoder.layer.0.adapter.weight"]),
        ("reshape", ["shape mismatch", "qa_outputs.weight [3, 128] vs [2, 128]"]),
        ("no_embeddings", ["bert.embeddings.word_embeddings.weight", "not a BertForQuestion"]),
    ],
)
def test_wrong_keys_are_listed(small_file: Path, tmp_path: Path, edit: str, listed) -> None:
    state = torch.load(small_file, weights_only=True)
    if edit == "drop":
        del state["bert.encoder.layer.1.output.dense.weight"]
    elif edit == "extra":
        state["bert.encoder.layer.0.adapter.weight"] = torch.zeros(4)
    elif edit == "reshape":
        state["qa_outputs.weight"] = torch.zeros(3, 128)
    else:
        del state["bert.embeddings.word_embeddings.weight"]
    path = tmp_path / "edited.pytorch"
    torch.save(state, path)
    with pytest.raises(BackendError) as info:
        open_backend("pytorch", path)
    for text in (str(path), *listed):
        assert text in str(info.value)


@pytest.mark.parametrize(
    ("name", "message"),
    [("absent.pytorch", "does not exist"), ("absent_dir", "does not exist"),
     # a file of no model format, and one of a format for another backend
     ("model.h5", "unknown model format"), ("model.onnx", "which this backend does not read")],
)
def test_missing_or_unknown_file(tmp_path: Path, name: str, message: str) -> None:
    path = tmp_path / name
    if "." in name and not name.startswith("absent"):
        path.write_bytes(b"weights of another format")
    with pytest.raises(BackendError, match=message) as info:
        open_backend("pytorch", path)
    assert str(path) in str(info.value)


def test_truncated_file(mlperf_file: Path, tmp_path: Path) -> None:
    path = tmp_path / "cut.pytorch"
    path.write_bytes(mlperf_file.read_bytes()[:100_000])
    with pytest.raises(BackendError, match="corrupt or truncated"):
        open_backend("pytorch", path)


def test_gpu_required_but_absent(small_file: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(BackendError, match="needs CUDA"):
        open_backend("pytorch", small_file, BackendSettings(device="gpu"))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"device": "tpu"}, "cpu, gpu, auto"),
        ({"options": {"attn_implementation": "flash"}}, "eager, sdpa"),
        ({"options": {"graph_optimization_level": "all"}}, "unknown option.*attn_implementation"),
        ({"intra_op_threads": -1}, "intra_op_threads"),
    ],
)
def test_bad_settings(small_file: Path, settings: dict, message: str) -> None:
    # refused when the settings are made (shared ones), or when the backend is (options)
    with pytest.raises((BackendError, ConfigError), match=message):
        open_backend("pytorch", small_file, build(BackendSettings, settings))


def test_threads_are_set_and_interop_twice_only_warns(small_file: Path) -> None:
    intra = torch.get_num_threads()
    interop = torch.get_num_interop_threads()
    try:
        with open_backend("pytorch", small_file, BackendSettings(1, interop, "cpu")) as backend:
            assert torch.get_num_threads() == 1  # and the same interop count is not re-set
            assert backend.describe()["intra_op_threads"] == 1
        # torch allows one change per process: the second of these can never apply
        with pytest.warns(RuntimeWarning, match="inter-op threads"):
            for extra in (1, 2):
                settings = BackendSettings(0, interop + extra, "cpu")
                with open_backend("pytorch", small_file, settings) as b:
                    assert b.describe()["inter_op_threads"] == torch.get_num_interop_threads()
    finally:
        torch.set_num_threads(intra)


def test_predict_needs_a_loaded_model(small_file: Path) -> None:
    backend = open_backend("pytorch", small_file)
    backend.close()
    with pytest.raises(BackendError, match="load"):
        backend.predict(random_batch(1))


# ---- end to end ---------------------------------------------------------------------------


@pytest.mark.slow
def test_harness_accuracy_run_with_pytorch(workspace: dict, tiny_hf_dir: Path) -> None:
    root = workspace["root"]
    config = RunConfig(
        scenario="Offline", mode="accuracy", backend="pytorch", model=str(tiny_hf_dir),
        batch_size=2, system="test-system", user_conf=root / "user.conf", short_run=True,
        data=workspace["data"], results_dir=root / "results", progress=False,
        backend_settings=CPU,
    )
    outcome = isolated(config, timeout_s=180)
    run = outcome.directory
    assert run == root / "results/test-system/tiny-bert-qa/Offline/accuracy"
    for name in ("mlperf_log_accuracy.json", "settings.json", "accuracy.json", "summary.txt"):
        assert (run / name).is_file(), name
    data = workspace["prepared"]
    assert outcome.accuracy.scores.total == 5
    settings = json.loads((run / "settings.json").read_text())
    block = settings["backend"]
    assert block["backend"] == "pytorch" and block["model_format"] == "hf"
    assert block["model_path"] == str(tiny_hf_dir) and block["device"] == "cpu"
    assert block["config"]["layers"] == 2 and block["attn_implementation"] == DEFAULT_ATTENTION
    weights_md5 = hashlib.md5((tiny_hf_dir / "model.safetensors").read_bytes()).hexdigest()
    assert settings["model"]["path"] == str(tiny_hf_dir) and settings["model"]["md5"] == weights_md5
    # every feature was logged once, with exactly the logits this backend gives for it
    logged = read_accuracy_log(run / "mlperf_log_accuracy.json")
    assert sorted(logged) == list(range(len(data.features)))
    with open_backend("pytorch", tiny_hf_dir) as backend:
        start, end = backend.predict(data.features.batch(slice(None)))
    lengths = data.features.input_mask.sum(axis=1)
    for index, (s, e) in logged.items():
        # real tokens as the padded model gives them (batches run at their real length;
        # past a batch's length the log holds PAD_LOGIT, as the accuracy script expects)
        real = int(lengths[index])
        for logged_logits, padded in ((s, start[index]), (e, end[index])):
            np.testing.assert_allclose(logged_logits[:real], padded[:real], rtol=0, atol=1e-4)
            tail = logged_logits[real:]
            assert (np.isclose(tail, padded[real:], atol=1e-4) | (tail == PAD_LOGIT)).all()
