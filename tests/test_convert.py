"""Conversions between the MLPerf formats on small random BERTs with the exact real names.

Converting takes TensorFlow and PyTorch ([tf] and [torch]); the tests that write or read ONNX
also take [onnx] and [export].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backends import FeatureBatch
from models import convert as convert_module
from models.bert_weights import ModelConversionError, google_to_state_dict
from models.convert import convert, load_source, main, torch_model
from models.export_onnx import validation_batch
from tests.helpers import needs, open_backend, torch_logits
from tests.tiny_models import make_google_checkpoint, random_google_weights

needs("tf", "torch", purpose="the conversion tests")

ATOL = 1e-3  # logits, absolute; the conversions measure ~3e-7 on these models


def needs_onnx() -> None:
    needs("onnx", "export", purpose="converting to or from ONNX")


def run_file(path: Path, batch: FeatureBatch) -> tuple[np.ndarray, np.ndarray]:
    """Logits of a converted file, run by its own framework (through the backends)."""
    name = {".onnx": "onnxruntime", ".pb": "tensorflow"}[path.suffix]
    with open_backend(name, path) as backend:
        return backend.predict(batch)


def assert_close(got: tuple, want: tuple) -> None:
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=0, atol=ATOL)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return make_google_checkpoint(tmp_path_factory.mktemp("ckpt") / "model.ckpt-5474", seed=11)


@pytest.fixture(scope="module")
def reference(ckpt: Path):
    """transformers' BertForQuestionAnswering holding the checkpoint's weights."""
    return torch_model(load_source(ckpt).weights, heads=2)


def test_checkpoint_reading_skips_optimizer_state(ckpt: Path) -> None:
    source = load_source(ckpt)
    assert source.heads == 2 and source.notes == []  # from bert_config.json
    assert "global_step" not in source.weights
    assert not any("adam" in name for name in source.weights)
    assert "bert/pooler/dense/kernel" in source.weights
    expected = random_google_weights(seed=11)
    assert sorted(source.weights) == sorted(expected)
    np.testing.assert_array_equal(source.weights["bert/encoder/layer_1/output/dense/kernel"],
                                  expected["bert/encoder/layer_1/output/dense/kernel"])


def test_chain_ckpt_pytorch_onnx_tf_agrees_at_every_step(ckpt, reference, tmp_path) -> None:
    needs_onnx()
    import torch

    batch = validation_batch(30522, seed=4)
    want = torch_logits(reference, batch)
    pytorch = convert(ckpt, tmp_path / "model.pytorch")
    assert pytorch.reference == "TF graph built from the weights" and pytorch.max_abs_diff < ATOL
    state = torch.load(tmp_path / "model.pytorch", weights_only=True)
    from_ckpt = torch_model(load_source(tmp_path / "model.pytorch", heads=2).weights, 2)
    assert_close(torch_logits(from_ckpt, batch), want)
    # MLPerf's model.pytorch layout: transformers names, [out, in] weights, pooler kept.
    kernel = load_source(ckpt).weights["bert/encoder/layer_0/intermediate/dense/kernel"]
    assert kernel.shape == (64, 128)
    assert tuple(state["bert.encoder.layer.0.intermediate.dense.weight"].shape) == (128, 64)
    assert "bert.pooler.dense.weight" in state and "qa_outputs.weight" in state

    onnx_report = convert(tmp_path / "model.pytorch", tmp_path / "model.onnx", heads=2)
    assert onnx_report.max_abs_diff < ATOL
    assert_close(run_file(tmp_path / "model.onnx", batch), want)

    tf_report = convert(tmp_path / "model.onnx", tmp_path / "model.pb", heads=2)
    assert tf_report.reference == "onnx source file" and tf_report.max_abs_diff < ATOL
    assert_close(run_file(tmp_path / "model.pb", batch), want)


def test_checkpoint_to_frozen_graph_directly(ckpt, reference, tmp_path) -> None:
    """MLPerf's own path (model.ckpt-5474 -> model.pb), checked against transformers."""
    assert main([str(ckpt), str(tmp_path / "model.pb")]) == 0
    batch = validation_batch(30522, seed=2)
    assert_close(run_file(tmp_path / "model.pb", batch), torch_logits(reference, batch))
    # ...and back: frozen graph constants keep the checkpoint's variable names.
    report = convert(tmp_path / "model.pb", tmp_path / "back.ckpt-1", heads=2)
    assert report.target_format == "ckpt" and report.max_abs_diff == 0.0
    back = load_source(tmp_path / "back.ckpt-1", heads=2).weights
    original = load_source(ckpt).weights
    assert sorted(back) == sorted(k for k in original if not k.startswith("bert/pooler"))


def test_tanh_gelu_matches_google_formula(ckpt, tmp_path) -> None:
    from models.tf_bert import read_frozen_graph

    weights = load_source(ckpt).weights
    report = convert(ckpt, tmp_path / "tanh.pb", gelu="tanh")
    assert report.reference == "transformers (torch)"  # hidden_act gelu_new
    batch = validation_batch(30522)
    tanh = run_file(tmp_path / "tanh.pb", batch)
    assert_close(tanh, torch_logits(torch_model(weights, 2, "tanh"), batch))
    assert load_source(tmp_path / "tanh.pb", heads=2).gelu == "tanh"
    ops = {node.op for node in read_frozen_graph(tmp_path / "tanh.pb").node}
    assert "Tanh" in ops and "Erf" not in ops
    # The GELUs differ by ~5e-4 in these logits: below the 1e-3 validation tolerance, so the
    # choice must come from the user or the graph, never from validation.
    erf = torch_logits(torch_model(weights, 2, "erf"), batch)
    assert 1e-4 < np.abs(tanh[0] - erf[0]).max() < ATOL


def test_hf_checkpoint_to_frozen_graph_reads_heads_from_config(tmp_path) -> None:
    from transformers import BertForQuestionAnswering

    from tests.tiny_models import make_tiny_hf_qa_model

    hf_dir = make_tiny_hf_qa_model(tmp_path / "hf", heads=4, seed=2)
    report = convert(hf_dir, tmp_path / "hf.pb")
    assert report.notes == () and load_source(hf_dir).heads == 4
    model = BertForQuestionAnswering.from_pretrained(hf_dir, attn_implementation="eager").eval()
    batch = validation_batch(30522, seed=3)
    assert_close(run_file(tmp_path / "hf.pb", batch), torch_logits(model, batch))


def test_onnx_without_scope_names_or_with_shared_initializers(tmp_path) -> None:
    """Older exporters leave no node scopes; fresh models share equal parameters."""
    needs_onnx()
    import onnx

    from tests.tiny_models import make_tiny_hf_qa_model

    hf_dir = make_tiny_hf_qa_model(tmp_path / "hf")  # LayerNorm 1s and 0 biases: deduplicated
    convert(hf_dir, tmp_path / "fresh.onnx", heads=2)
    model = onnx.load(str(tmp_path / "fresh.onnx"))
    assert any(n.op_type == "Identity" for n in model.graph.node)
    for node in model.graph.node:
        node.name = ""
    onnx.save(model, str(tmp_path / "anonymous.onnx"))
    report = convert(tmp_path / "anonymous.onnx", tmp_path / "anonymous.pb", heads=2)
    assert report.max_abs_diff < ATOL


@pytest.mark.slow
def test_real_hidden_sizes_one_layer_checkpoint(tmp_path) -> None:
    """BERT-Large widths: 1024 hidden, 16 heads, 4096 intermediate, one layer; the frozen
    graph loads in the TensorFlow backend (~20 s, most of it TF optimising the graph)."""
    from tests.tiny_models import make_mlperf_pytorch_state_dict

    ckpt = make_google_checkpoint(tmp_path / "model.ckpt-5474", layers=1, hidden=1024, heads=16,
                                  intermediate=4096, optimizer_slots=False)
    (tmp_path / "bert_config.json").unlink()  # MLPerf's files alone: heads = hidden / 64
    report = convert(ckpt, tmp_path / "model.pb")
    assert report.max_abs_diff < ATOL and "guessed" in report.notes[0]
    start, end = run_file(tmp_path / "model.pb", validation_batch(30522))
    assert start.shape == end.shape == (2, 384) and start.dtype == np.float32
    # Its state dict has exactly the keys and shapes of MLPerf's model.pytorch (the writer
    # saves google_to_state_dict's output; the pytorch conversion itself is tested above).
    import torch

    ours = google_to_state_dict(load_source(ckpt).weights)
    mlperf = torch.load(make_mlperf_pytorch_state_dict(tmp_path / "mlperf.pytorch"),
                        weights_only=True)
    assert {k: v.shape for k, v in ours.items()} == {
        k: tuple(v.shape) for k, v in mlperf.items()}


# ---- failures -----------------------------------------------------------------------------


def test_missing_variable_is_named_and_nothing_is_written(tmp_path) -> None:
    from models.tf_bert import write_tf_checkpoint

    weights = random_google_weights(layers=1)
    del weights["bert/encoder/layer_0/attention/self/key/bias"]
    write_tf_checkpoint(weights, tmp_path / "broken.ckpt")
    with pytest.raises(ModelConversionError, match="attention/self/key/bias"):
        convert(tmp_path / "broken.ckpt", tmp_path / "out.pb", heads=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "broken.ckpt.data-00000-of-00001", "broken.ckpt.index"]


@pytest.mark.parametrize("target", ["out.pb", "out.pytorch", "out.onnx", "out.ckpt"])
def test_failed_validation_leaves_no_file(ckpt, tmp_path, monkeypatch, target) -> None:
    if target.endswith(".onnx"):
        needs_onnx()
    monkeypatch.setattr(convert_module, "VALIDATE_ATOL", 0.0)  # no diff is < 0
    with pytest.raises(ModelConversionError, match="was not written"):
        convert(ckpt, tmp_path / target)
    assert list(tmp_path.iterdir()) == []


def test_wrong_head_count_from_an_executable_source_is_caught(ckpt, tmp_path) -> None:
    needs_onnx()
    convert(ckpt, tmp_path / "model.pb")
    with pytest.raises(ModelConversionError, match="disagrees"):
        convert(tmp_path / "model.pb", tmp_path / "model.onnx", heads=1)
    assert not (tmp_path / "model.onnx").exists()


def test_command_line_errors(tmp_path, capsys) -> None:
    assert main([str(tmp_path / "absent.pytorch"), str(tmp_path / "x.pb")]) == 1
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "model.txt").write_text("x")
    assert main([str(tmp_path / "model.txt"), str(tmp_path / "x.pb")]) == 1
    assert "unknown model format" in capsys.readouterr().err
    state = tmp_path / "s.pytorch"
    import torch

    torch.save({k: torch.from_numpy(v) for k, v in
                google_to_state_dict(random_google_weights(layers=1)).items()}, state)
    assert main([str(state), str(tmp_path / "x.weird")]) == 1
    assert "--to" in capsys.readouterr().err
    assert not (tmp_path / "x.weird").exists() and not (tmp_path / "x.pb").exists()


def test_fused_onnx_graph_is_refused_with_the_alternative(tmp_path) -> None:
    needs("onnx", only=("onnx",), purpose="building an ONNX graph")
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("Attention", ["x"], ["y"], domain="com.microsoft")
    graph = helper.make_graph([node], "fused", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1])], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph), str(tmp_path / "fused.onnx"))
    with pytest.raises(ModelConversionError, match="PyTorch state dict or TF checkpoint"):
        convert(tmp_path / "fused.onnx", tmp_path / "out.pb")
    assert not (tmp_path / "out.pb").exists()
