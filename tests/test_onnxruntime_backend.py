"""ONNX Runtime backend and ONNX export, on a tiny random BERT built locally (~20 s, 2 cores).

Needs the [onnx] extra; the tests that export a Hugging Face model also need [export].
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from backends import BackendError, BackendSettings, FeatureBatch, get_backend_class
from common.errors import ConfigError
from common.settings import build
from models import export_onnx
from models.export_onnx import ModelExportError, export_hf_qa_to_onnx
from tests.helpers import CPU_1T, needs, open_backend, random_batch, torch_logits
from tests.tiny_models import make_onnx_with_names

needs("onnx", purpose="the ONNX Runtime backend tests")

ATOL = 1e-4  # logits, absolute; fp32 ORT vs torch measured ~2e-7


@pytest.fixture(scope="module")
def torch_model(tiny_hf_dir: Path):
    from transformers import BertForQuestionAnswering

    return BertForQuestionAnswering.from_pretrained(tiny_hf_dir,
                                                    attn_implementation="eager").eval()


@pytest.fixture(scope="module", params=["hf", "mlperf"])
def exported(request: pytest.FixtureRequest, tmp_path_factory) -> tuple[str, Path]:
    """The tiny model exported with each naming (``tiny_onnx`` is the Hugging Face one)."""
    if request.param == "hf":
        return "hf", request.getfixturevalue("tiny_onnx")
    needs("export", purpose="exporting a Hugging Face checkpoint to ONNX")
    out = tmp_path_factory.mktemp(f"onnx_{request.param}") / "model.onnx"
    tiny_hf_dir = request.getfixturevalue("tiny_hf_dir")
    return request.param, export_hf_qa_to_onnx(tiny_hf_dir, out, names=request.param)


# ---- agreement with torch -----------------------------------------------------------------


def test_predict_matches_torch(exported: tuple[str, Path], torch_model) -> None:
    naming, path = exported
    batch = random_batch()
    want_start, want_end = torch_logits(torch_model, batch)
    with open_backend("onnxruntime", path, CPU_1T) as backend:
        start, end = backend.predict(batch)
        info = backend.describe()
    for got, want in ((start, want_start), (end, want_end)):
        assert got.dtype == np.float32 and got.shape == (3, 384)
        assert got.flags["C_CONTIGUOUS"]
        np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)
    expected_inputs = {
        "hf": ["input_ids", "attention_mask", "token_type_ids"],
        "mlperf": ["input_ids", "input_mask", "segment_ids"],
    }[naming]
    assert info["input_names"] == expected_inputs
    assert info["providers"] == ["CPUExecutionProvider"]
    assert info["model_path"] == str(path)
    assert info["graph_optimization_level"] == "all"


def test_reference_is_sensitive_to_mask_and_segments(torch_model) -> None:
    """Guards the test above: a backend that mixed up mask/segments would exceed ATOL."""
    batch = random_batch()
    start, _ = torch_logits(torch_model, batch)
    swapped = FeatureBatch(batch.input_ids, batch.segment_ids, batch.input_mask)
    start_swapped, _ = torch_logits(torch_model, swapped)
    assert np.abs(start - start_swapped).max() > 100 * ATOL


def test_other_shapes_and_int32_features(exported: tuple[str, Path], torch_model) -> None:
    """Dynamic axes: batch 1 and sequence 128; int32 features are cast to the graph's int64."""
    _, path = exported
    batch = random_batch(batch=1, seq=128, seed=1)
    batch32 = FeatureBatch(
        *(a.astype(np.int32) for a in (batch.input_ids, batch.input_mask, batch.segment_ids))
    )
    want_start, want_end = torch_logits(torch_model, batch)
    with open_backend("onnxruntime", path, CPU_1T) as backend:
        start, end = backend.predict(batch32)
    assert start.shape == end.shape == (1, 128)
    np.testing.assert_allclose(start, want_start, rtol=0, atol=ATOL)
    np.testing.assert_allclose(end, want_end, rtol=0, atol=ATOL)


def test_export_is_loadable_by_ort_131(exported: tuple[str, Path]) -> None:
    import onnx

    model = onnx.load(str(exported[1]))
    assert model.ir_version <= export_onnx.MAX_ORT_IR_VERSION
    dims = [d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "sequence"]


# ---- names and dtypes read from the graph -------------------------------------------------


@pytest.mark.parametrize(
    "np_type", ["int32", "int64"]
)
def test_feed_dtype_follows_graph_and_mixed_naming(tmp_path: Path, np_type) -> None:
    """HF inputs with MLPerf outputs (like the fake-quant model); start=mask, end=segments."""
    path = make_onnx_with_names(
        tmp_path / "m.onnx",
        ["input_ids", "attention_mask", "token_type_ids"],
        ["output_start_logits", "output_end_logits"],
        input_dtype=np_type,
    )
    batch = random_batch(batch=2, seq=20)
    with open_backend("onnxruntime", path, CPU_1T) as backend:
        start, end = backend.predict(batch)
        info = backend.describe()
    assert info["input_dtypes"] == [np_type] * 3
    assert info["output_names"] == ["output_start_logits", "output_end_logits"]
    np.testing.assert_array_equal(start, batch.input_mask.astype(np.float32))
    np.testing.assert_array_equal(end, batch.segment_ids.astype(np.float32))


@pytest.mark.parametrize(
    ("inputs", "outputs"),
    [
        (["ids", "mask", "types"], ["start_logits", "end_logits"]),
        (["input_ids", "input_mask", "segment_ids"], ["logits"]),
        (["input_ids", "attention_mask"], ["start_logits", "end_logits"]),
    ],
)
def test_unknown_tensor_names_are_listed(tmp_path: Path, inputs, outputs) -> None:
    path = make_onnx_with_names(tmp_path / "odd.onnx", inputs, outputs)
    backend = get_backend_class("onnxruntime")(CPU_1T)
    with pytest.raises(BackendError) as info:
        backend.load(path)
    message = str(info.value)
    assert str(path) in message
    for name in (*inputs, *outputs):
        assert name in message
    assert "segment_ids" in message and "token_type_ids" in message  # what is accepted


# ---- errors -------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "model.onnx"
    with pytest.raises(BackendError, match="make model MODEL=") as info:
        get_backend_class("onnxruntime")(CPU_1T).load(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("kind", ["garbage", "truncated"])
def test_corrupt_file(tmp_path: Path, exported: tuple[str, Path], kind: str) -> None:
    path = tmp_path / "broken.onnx"
    real = exported[1].read_bytes()
    path.write_bytes(b"\x00not an onnx file\xff" * 10 if kind == "garbage" else real[:50_000])
    with pytest.raises(BackendError) as info:
        get_backend_class("onnxruntime")(CPU_1T).load(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)  # one line, not ORT's C++ context
    assert info.value.__cause__ is not None


def test_gpu_required_but_absent(exported: tuple[str, Path]) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has CUDA")
    backend = get_backend_class("onnxruntime")(BackendSettings(device="gpu"))
    with pytest.raises(BackendError, match="CPUExecutionProvider"):
        backend.load(exported[1])


def test_bad_settings(exported: tuple[str, Path]) -> None:
    bad_level = BackendSettings(device="cpu", options={"graph_optimization_level": "max"})
    with pytest.raises(BackendError, match="disabled, basic, extended, all"):
        open_backend("onnxruntime", exported[1], bad_level)
    with pytest.raises(ConfigError, match="cpu, gpu, auto"):  # refused before any backend
        build(BackendSettings, {"device": "tpu"})


def test_predict_needs_a_loaded_model(exported: tuple[str, Path]) -> None:
    backend = open_backend("onnxruntime", exported[1], BackendSettings(device="auto"))
    backend.close()
    with pytest.raises(BackendError, match="load"):
        backend.predict(random_batch(batch=1, seq=8))


def test_backend_module_does_not_import_torch() -> None:
    code = (
        "import sys, backends.onnxruntime_backend; "
        "sys.exit(bool({'torch', 'transformers'} & set(sys.modules)))"
    )
    root = Path(__file__).resolve().parents[1]
    assert subprocess.run([sys.executable, "-c", code], cwd=root, check=False).returncode == 0


# ---- export errors and atomicity ----------------------------------------------------------


def test_export_without_weights_names_dir_and_writes_nothing(tmp_path: Path,
                                                             tiny_hf_dir: Path) -> None:
    no_weights = tmp_path / "config_only"
    no_weights.mkdir()
    (no_weights / "config.json").write_text((tiny_hf_dir / "config.json").read_text())
    out = tmp_path / "out" / "model.onnx"
    with pytest.raises(ModelExportError, match="no weights") as info:
        export_hf_qa_to_onnx(no_weights, out)
    assert str(no_weights) in str(info.value)
    assert not out.exists()
    assert export_onnx.main([str(tmp_path / "absent"), str(out)]) == 1


def test_failed_validation_leaves_old_file_and_no_temp(tmp_path: Path, tiny_hf_dir: Path,
                                                        monkeypatch) -> None:
    """Fails after the ONNX file was written: the target keeps its old bytes, no temp remains."""
    out = tmp_path / "model.onnx"
    out.write_bytes(b"previous model")
    monkeypatch.setattr(export_onnx, "VALIDATE_ATOL", 0.0)  # no diff is < 0: forces failure
    with pytest.raises(ModelExportError, match="disagrees with torch"):
        export_hf_qa_to_onnx(tiny_hf_dir, out, names="mlperf")
    assert out.read_bytes() == b"previous model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]
