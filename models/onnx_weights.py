"""Recover a ``BertForQuestionAnswering`` state dict from an exported (unoptimised) ONNX graph.

What ``torch.onnx.export`` leaves behind, and how each piece is found:

* embeddings, LayerNorm parameters and most biases stay initializers named after the
  parameter (``bert.encoder.layer.0.attention.self.query.bias``, maybe with a wrapper
  prefix such as ``inner.``);
* parameters equal to another one (fresh LayerNorm gains, zero biases) are stored once and
  re-exposed by ``Identity`` nodes whose output carries the parameter name;
* Linear weights are constant-folded into anonymous ``[in, out]`` initializers
  (``onnx::MatMul_324``); their ``MatMul`` node's scope name
  (``/inner/bert/encoder/layer.0/attention/self/query/MatMul``) says which module they
  belong to. Older exporters left no scope names: then the anonymous weights are assigned
  in graph order (query, key, value, attention output, intermediate, output per layer, then
  ``qa_outputs``). Shapes are checked when a model is built from the result, values by the
  caller's numeric validation against the ONNX file itself.

Graphs rewritten by ONNX Runtime's transformer optimizer (fused Attention, packed QKV) or
quantized are not recoverable this way; the error says to convert from the state dict.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from models.bert_weights import ModelConversionError, count_layers

_PARAM = re.compile(r"(?:^|[./])((?:bert|qa_outputs)[./].*)$")
_DENSE_ORDER = ("attention.self.query", "attention.self.key", "attention.self.value",
                "attention.output.dense", "intermediate.dense", "output.dense")


def _param_name(name: str) -> str | None:
    """``inner.bert.embeddings.LayerNorm.weight`` -> ``bert.embeddings.LayerNorm.weight``."""
    match = _PARAM.search(name)
    return match.group(1).replace("/", ".") if match else None


def _dense_keys(layers: int) -> list[str]:
    keys = [f"bert.encoder.layer.{n}.{part}.weight" for n in range(layers) for part in _DENSE_ORDER]
    return keys + ["qa_outputs.weight"]


def state_dict_from_onnx(path: Path) -> dict[str, np.ndarray]:
    """``BertForQuestionAnswering`` state dict (numpy, ``[out, in]`` weights) from ``path``."""
    import onnx
    from onnx import numpy_helper

    path = Path(path)
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # DecodeError, FileNotFoundError...
        raise ModelConversionError(f"cannot read ONNX model {path}: {exc}") from exc
    graph = model.graph
    fused = sorted({n.op_type for n in graph.node} & {"Attention", "EmbedLayerNormalization",
                                                         "SkipLayerNormalization", "QLinearMatMul",
                                                         "MatMulInteger", "DynamicQuantizeLinear"})
    if fused:
        raise ModelConversionError(
            f"{path} has fused or quantized nodes ({', '.join(fused)}): its weights cannot be "
            "mapped back to BERT parameters. Convert from the PyTorch state dict or TF "
            "checkpoint it was made from instead."
        )
    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:  # deduplicated parameters, re-exposed under their own names
        if node.op_type == "Identity" and node.input[0] in values:
            values[node.output[0]] = values[node.input[0]]
    state: dict[str, np.ndarray] = {}
    for name, value in values.items():
        key = _param_name(name)
        if key is not None:
            state[key] = value
    anonymous = []  # (node scope or "", [in, out] weight), graph order
    for node in graph.node:
        if node.op_type != "MatMul" or len(node.input) < 2 or node.input[1] not in values:
            continue
        weight = values[node.input[1]]
        if _param_name(node.input[1]) is not None or weight.ndim != 2:
            continue
        scope = _param_name(node.name.rsplit("/", 1)[0]) if "/" in node.name else None
        if scope is not None:
            state[f"{scope}.weight"] = weight.T
        else:
            anonymous.append(weight)
    layers = count_layers(state)
    missing = [k for k in _dense_keys(layers) if k not in state]
    if anonymous and len(anonymous) == len(missing):
        for key, weight in zip(missing, anonymous, strict=True):
            state[key] = weight.T
    required = ["bert.embeddings.word_embeddings.weight", *_dense_keys(layers)]
    absent = [k for k in required if k not in state]
    if layers == 0 or absent:
        shown = ", ".join(absent[:4]) + (" ..." if len(absent) > 4 else "")
        raise ModelConversionError(
            f"cannot recover BERT weights from {path}: "
            + (f"no parameter for {shown}" if absent else "no encoder layers found")
            + f" ({len(values)} initializers). Convert from the PyTorch state dict or TF "
            "checkpoint it was made from instead."
        )
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in state.items()}
