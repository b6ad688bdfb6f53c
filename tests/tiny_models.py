"""Faithful small stand-ins for the real models, built locally (no hub downloads).

The tiny BERT keeps the real architecture, vocabulary size and position table (512), so
exports and backends exercise the same graph shapes as BERT-Large, only narrower and
shallower. Building one takes well under a second on 2 cores.
"""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto, helper


def make_tiny_hf_qa_model(
    out_dir: Path,
    *,
    layers: int = 2,
    hidden: int = 64,
    heads: int = 2,
    intermediate: int = 128,
    vocab_size: int = 30522,
    seed: int = 0,
) -> Path:
    """Save a randomly initialised ``BertForQuestionAnswering`` to ``out_dir``.

    Writes ``config.json`` and ``model.safetensors`` (``save_pretrained``); sizes are
    counts (layers, hidden units, heads). Returns ``out_dir``.
    """
    import torch
    from transformers import BertConfig, BertForQuestionAnswering

    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=intermediate,
        max_position_embeddings=512,
        type_vocab_size=2,
    )
    # Seed so that two calls give byte-identical weights (reproducible tests).
    torch.manual_seed(seed)
    model = BertForQuestionAnswering(config).eval()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    return out_dir


def make_onnx_with_names(
    path: Path,
    inputs: list[str],
    outputs: list[str],
    *,
    input_dtype: int = TensorProto.INT64,
) -> Path:
    """Write a tiny valid ONNX graph with ``[batch, seq]`` integer inputs and float outputs.

    Output ``k`` is input ``(k + 1) % len(inputs)`` cast to float32: with three inputs in
    FeatureBatch order, start = mask and end = segments, so a test can see which array was
    fed to which name. ``input_dtype`` is an ``onnx.TensorProto`` type (INT64 or INT32).
    Returns ``path``.
    """
    value_inputs = [
        helper.make_tensor_value_info(name, input_dtype, ["batch", "seq"]) for name in inputs
    ]
    value_outputs = [
        helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", "seq"]) for name in outputs
    ]
    nodes = [
        helper.make_node("Cast", [inputs[(k + 1) % len(inputs)]], [name], to=TensorProto.FLOAT)
        for k, name in enumerate(outputs)
    ]
    graph = helper.make_graph(nodes, "names_only", value_inputs, value_outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    # onnx 1.23 defaults to IR 14; ONNX Runtime 1.31 reads at most IR 13.
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = Path(path)
    onnx.save(model, path)
    return path
