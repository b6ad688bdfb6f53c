"""Faithful small stand-ins for the real models, built locally (no hub downloads).

The tiny BERT keeps the real architecture, vocabulary size and position table (512), so
exports and backends exercise the same graph shapes as BERT-Large, only narrower and
shallower. Building one takes well under a second on 2 cores.

Each builder imports the framework it writes with when called, and skips the calling test
when that framework is not installed (naming the extra that brings it): importing this
module needs numpy only.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import numpy as np

from tests.helpers import needs


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
    needs("torch", purpose="building a tiny Hugging Face BERT")
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
    input_dtype: str = "int64",
) -> Path:
    """Write a tiny valid ONNX graph with ``[batch, seq]`` integer inputs and float outputs.

    Output ``k`` is input ``(k + 1) % len(inputs)`` cast to float32: with three inputs in
    FeatureBatch order, start = mask and end = segments, so a test can see which array was
    fed to which name. ``input_dtype`` is ``"int64"`` or ``"int32"``. Returns ``path``.
    """
    needs("onnx", only=("onnx",), purpose="building an ONNX graph")
    import onnx
    from onnx import TensorProto, helper

    dtype = {"int64": TensorProto.INT64, "int32": TensorProto.INT32}[input_dtype]
    value_inputs = [
        helper.make_tensor_value_info(name, dtype, ["batch", "seq"]) for name in inputs
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


def make_mlperf_pytorch_state_dict(
    path: Path,
    *,
    layers: int = 1,
    hidden: int = 1024,
    heads: int = 16,
    intermediate: int = 4096,
    vocab_size: int = 30522,
    seed: int = 0,
    legacy_format: bool = False,
) -> Path:
    """Save a random BERT QA state dict laid out like MLPerf's ``model.pytorch``.

    The keys and shapes are those transformers 2.x's ``BertForQuestionAnswering.state_dict()``
    wrote (MLPerf converted its TF checkpoint with it): the pooler is included, LayerNorm
    parameters are ``weight``/``bias``, and there are no buffers. They are spelled out here,
    not taken from the installed transformers, so that tests check the backend's mapping to
    today's names. Sizes are counts; ``heads`` only documents the shape, since the file holds
    no head count (loaders infer ``hidden / 64``). ``legacy_format`` writes torch's pre-1.6
    (non-zip) serialization. Returns ``path``.
    """
    needs("torch", purpose="writing a PyTorch state dict")
    import torch

    if hidden != heads * 64:
        raise ValueError(f"hidden ({hidden}) must be heads ({heads}) x 64, as in BERT")
    shapes: dict[str, tuple[int, ...]] = {
        "bert.embeddings.word_embeddings.weight": (vocab_size, hidden),
        "bert.embeddings.position_embeddings.weight": (512, hidden),
        "bert.embeddings.token_type_embeddings.weight": (2, hidden),
        "bert.embeddings.LayerNorm.weight": (hidden,),
        "bert.embeddings.LayerNorm.bias": (hidden,),
    }
    for n in range(layers):
        prefix = f"bert.encoder.layer.{n}."
        for name in ("attention.self.query", "attention.self.key", "attention.self.value",
                     "attention.output.dense"):
            shapes[f"{prefix}{name}.weight"] = (hidden, hidden)
            shapes[f"{prefix}{name}.bias"] = (hidden,)
        shapes[f"{prefix}attention.output.LayerNorm.weight"] = (hidden,)
        shapes[f"{prefix}attention.output.LayerNorm.bias"] = (hidden,)
        shapes[f"{prefix}intermediate.dense.weight"] = (intermediate, hidden)
        shapes[f"{prefix}intermediate.dense.bias"] = (intermediate,)
        shapes[f"{prefix}output.dense.weight"] = (hidden, intermediate)
        shapes[f"{prefix}output.dense.bias"] = (hidden,)
        shapes[f"{prefix}output.LayerNorm.weight"] = (hidden,)
        shapes[f"{prefix}output.LayerNorm.bias"] = (hidden,)
    shapes["bert.pooler.dense.weight"] = (hidden, hidden)
    shapes["bert.pooler.dense.bias"] = (hidden,)
    shapes["qa_outputs.weight"] = (2, hidden)
    shapes["qa_outputs.bias"] = (2,)

    generator = torch.Generator().manual_seed(seed)
    # Module.state_dict() returns an OrderedDict carrying per-module ``_metadata``; pickled
    # alongside, it is part of what a loader must accept.
    state: OrderedDict[str, torch.Tensor] = OrderedDict()
    state._metadata = OrderedDict(  # type: ignore[attr-defined]
        (prefix, {"version": 1}) for prefix in ("", "bert", "bert.embeddings", "qa_outputs")
    )
    for key, shape in shapes.items():
        # BERT's init scale (0.02); LayerNorm gains near 1. Every tensor is random, biases
        # included, so that a weight loaded into the wrong place changes the logits.
        values = torch.randn(shape, generator=generator) * 0.02
        state[key] = values + 1.0 if key.endswith("LayerNorm.weight") else values
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path, _use_new_zipfile_serialization=not legacy_format)
    return path


def random_google_weights(
    *,
    layers: int = 2,
    hidden: int = 64,
    intermediate: int = 128,
    vocab_size: int = 30522,
    seed: int = 0,
    pooler: bool = True,
) -> dict[str, np.ndarray]:
    """Random float32 BERT SQuAD weights keyed by Google checkpoint variable names.

    Names and layouts are those of ``run_squad.py`` checkpoints (kernels ``[in, out]``,
    ``cls/squad/output_weights`` ``[2, hidden]``); the pooler is in every Google checkpoint.
    Every tensor is random (LayerNorm gains near 1, the rest at BERT's init scale 0.02), so a
    weight loaded into the wrong place changes the logits. Dense kernels and the QA output
    weights are scaled by 1/sqrt(fan in) instead (1.5x for query/key), so that activations
    stay O(1) as in a trained model: at init scale attention is uniform and GELU nearly
    linear, and a wrong head split, mask or GELU would hide below 1e-3. Sizes are counts.
    """
    from models.bert_weights import expected_google_names

    rng = np.random.default_rng(seed)
    weights = {}
    for name in expected_google_names(layers, pooler=pooler):
        if name.endswith("_embeddings"):
            rows = {"word": vocab_size, "position": 512, "token_type": 2}
            shape: tuple[int, ...] = (rows[name.split("/")[-1][: -len("_embeddings")]], hidden)
        elif name == "cls/squad/output_weights":
            shape = (2, hidden)
        elif name == "cls/squad/output_bias":
            shape = (2,)
        elif "intermediate/dense" in name:
            shape = (hidden, intermediate) if name.endswith("kernel") else (intermediate,)
        elif "/output/dense/kernel" in name and "attention" not in name:
            shape = (intermediate, hidden)
        else:
            shape = (hidden, hidden) if name.endswith("kernel") else (hidden,)
        scale = 0.02
        if name.endswith("kernel") or name == "cls/squad/output_weights":
            fan_in = shape[0] if name.endswith("kernel") else shape[1]
            scale = (1.5 if name.endswith(("query/kernel", "key/kernel")) else 1.0) / fan_in**0.5
        values = rng.normal(0.0, scale, size=shape).astype(np.float32)
        weights[name] = values + 1.0 if name.endswith("gamma") else values
    return weights


def make_google_checkpoint(
    prefix: Path,
    *,
    layers: int = 2,
    hidden: int = 64,
    heads: int = 2,
    intermediate: int = 128,
    seed: int = 0,
    optimizer_slots: bool = True,
) -> Path:
    """Write a random BERT SQuAD TF checkpoint like MLPerf's ``model.ckpt-5474``.

    Besides the model variables (:func:`random_google_weights`, pooler included) it holds
    what a fine-tuning run leaves: Adam slots (``.../adam_m``, ``.../adam_v``) and
    ``global_step``, which converters must skip; and ``bert_config.json`` beside it, in
    Google's format. Returns ``prefix`` (``prefix.index`` and its data file exist).
    """
    needs("tf", purpose="writing a TF checkpoint")
    from models.tf_bert import write_tf_checkpoint

    weights: dict[str, np.ndarray] = dict(random_google_weights(
        layers=layers, hidden=hidden, intermediate=intermediate, seed=seed))
    if optimizer_slots:
        for name in list(weights)[:3]:
            weights[f"{name}/adam_m"] = np.zeros_like(weights[name])
            weights[f"{name}/adam_v"] = np.zeros_like(weights[name])
        weights["global_step"] = np.array(5474, dtype=np.int64)
    prefix = Path(prefix)
    write_tf_checkpoint(weights, prefix)
    config = {
        "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
        "hidden_size": hidden, "initializer_range": 0.02, "intermediate_size": intermediate,
        "max_position_embeddings": 512, "num_attention_heads": heads,
        "num_hidden_layers": layers, "type_vocab_size": 2, "vocab_size": 30522,
    }
    (prefix.parent / "bert_config.json").write_text(json.dumps(config, indent=2))
    return prefix


def make_mlperf_frozen_graph(
    path: Path,
    *,
    layers: int = 2,
    hidden: int = 64,
    heads: int = 2,
    intermediate: int = 128,
    seed: int = 0,
    batch_size: int | None = 1,
    seq_len: int | None = 384,
    gelu: str = "erf",
) -> Path:
    """Write a random frozen BERT graph with MLPerf ``model.pb``'s tensors: int32
    ``input_ids``/``input_mask``/``segment_ids`` placeholders (``[1, 384]`` by default, as in
    model.pb; None makes an axis dynamic) and ``logits`` ``[B, S, 2]``. Returns ``path``."""
    needs("tf", purpose="writing a TF frozen graph")
    from models.tf_bert import frozen_graph_from_weights, write_frozen_graph

    weights = random_google_weights(layers=layers, hidden=hidden, intermediate=intermediate,
                                    seed=seed, pooler=False)
    graph_def = frozen_graph_from_weights(weights, heads, gelu=gelu, batch_size=batch_size,
                                          seq_len=seq_len)
    return write_frozen_graph(graph_def, path)
