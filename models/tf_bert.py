"""A small TensorFlow BERT SQuAD graph builder, and TF checkpoint / frozen graph files.

Transformers 5 has no TensorFlow models, so this module builds the inference graph of
Google's ``run_squad.py`` directly from checkpoint-named weights (see
:mod:`models.bert_weights`), the way MLPerf froze ``model.pb`` from ``model.ckpt-5474``:

* placeholders ``input_ids``, ``input_mask``, ``segment_ids``: int32 ``[B, S]`` (MLPerf's
  model.pb fixes them to ``[1, 384]``; here both axes are dynamic unless asked otherwise);
* output ``logits``: float32 ``[B, S, 2]``, start logits in ``[..., 0]``, end in ``[..., 1]``;
* layer norm epsilon 1e-12, attention mask adder -10000 on padded keys, scores scaled by
  ``1/sqrt(head size)``.

GELU: ``"erf"`` (exact) is what transformers' ``"gelu"`` computes, hence what MLPerf's
``model.pytorch`` and ``model.onnx`` compute. Google's and NVIDIA's TF ``modeling.py`` (which
froze MLPerf's ``model.pb``) use the tanh approximation: pass ``gelu="tanh"`` to match it.

Weights become graph constants named after their checkpoint variables, so a frozen graph
can be read back into weights (:func:`weights_from_frozen_graph`). TensorFlow is imported
inside the functions: importing this module stays cheap.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from backends import tensor_names
from common.files import atomic_path
from models.bert_weights import GELUS, ModelConversionError, bert_shape, is_model_variable

INPUT_NAMES = tensor_names.INPUTS["mlperf"]  # MLPerf's model.pb placeholders
OUTPUT_NAME = tensor_names.LOGITS
LAYER_NORM_EPS = 1e-12
MASK_ADDER = -10000.0
DATA_SUFFIX = ".data-00000-of-00001"  # single-shard TF checkpoint data file


def import_tensorflow() -> Any:
    """Import TensorFlow with its C++ INFO/WARNING logs off (unless the user chose a level)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
    except ImportError as exc:
        raise ModelConversionError(
            "TensorFlow is not installed; install it with: pip install -e '.[tf]'"
        ) from exc
    return tf


# ---- graph building -----------------------------------------------------------------------


def _layer_norm(tf: Any, x: Any, w: dict, scope: str) -> Any:
    """Layer norm over the last axis, eps 1e-12, as tf.contrib.layers.layer_norm in BERT."""
    mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
    normed = (x - mean) * tf.math.rsqrt(variance + LAYER_NORM_EPS)
    return normed * w[f"{scope}/gamma"] + w[f"{scope}/beta"]


def _dense(tf: Any, x: Any, w: dict, scope: str) -> Any:
    """``x @ kernel + bias`` with a TF ``[in, out]`` kernel."""
    return tf.nn.bias_add(tf.matmul(x, w[f"{scope}/kernel"]), w[f"{scope}/bias"])


def _gelu(tf: Any, x: Any, kind: str) -> Any:
    if kind == "erf":
        return x * 0.5 * (1.0 + tf.math.erf(x / math.sqrt(2.0)))
    inner = math.sqrt(2.0 / math.pi) * (x + 0.044715 * tf.pow(x, 3))
    return x * (0.5 * (1.0 + tf.tanh(inner)))


def _build_logits(tf: Any, weights: dict[str, np.ndarray], heads: int, gelu: str,
                  static_shape: tuple[int | None, int | None]) -> None:
    """Add placeholders, constants and the ``logits`` node to the default graph."""
    shape = bert_shape(weights, heads)
    head_size = shape.hidden // heads
    w = {name: tf.constant(np.asarray(a, dtype=np.float32), name=name)
         for name, a in weights.items() if not name.startswith("bert/pooler/")}
    ids, mask, segments = (
        tf.compat.v1.placeholder(tf.int32, static_shape, name=n) for n in INPUT_NAMES
    )
    dims = tf.shape(ids)
    batch, seq = dims[0], dims[1]
    positions = tf.slice(w["bert/embeddings/position_embeddings"], [0, 0], [seq, -1])
    x = (tf.gather(w["bert/embeddings/word_embeddings"], ids)
         + tf.gather(w["bert/embeddings/token_type_embeddings"], segments) + positions)
    x = tf.reshape(_layer_norm(tf, x, w, "bert/embeddings/LayerNorm"), [-1, shape.hidden])
    # [B, 1, 1, S]: 0 where a key is a real token, -10000 where it is padding.
    adder = (1.0 - tf.cast(mask, tf.float32))[:, tf.newaxis, tf.newaxis, :] * MASK_ADDER

    def split_heads(t: Any) -> Any:  # [B*S, H] -> [B, heads, S, head_size]
        return tf.transpose(tf.reshape(t, [batch, seq, heads, head_size]), [0, 2, 1, 3])

    for n in range(shape.layers):
        p = f"bert/encoder/layer_{n}/"
        q, k, v = (split_heads(_dense(tf, x, w, p + "attention/self/" + part))
                   for part in ("query", "key", "value"))
        scores = tf.matmul(q, k, transpose_b=True) * (1.0 / math.sqrt(head_size)) + adder
        context = tf.matmul(tf.nn.softmax(scores), v)
        context = tf.reshape(tf.transpose(context, [0, 2, 1, 3]), [-1, shape.hidden])
        attended = _layer_norm(
            tf, _dense(tf, context, w, p + "attention/output/dense") + x, w,
            p + "attention/output/LayerNorm")
        inner = _gelu(tf, _dense(tf, attended, w, p + "intermediate/dense"), gelu)
        x = _layer_norm(tf, _dense(tf, inner, w, p + "output/dense") + attended, w,
                        p + "output/LayerNorm")
    logits = tf.matmul(x, w["cls/squad/output_weights"], transpose_b=True)
    logits = tf.nn.bias_add(logits, w["cls/squad/output_bias"])
    tf.reshape(logits, [batch, seq, 2], name=OUTPUT_NAME)


def frozen_graph_from_weights(
    weights: dict[str, np.ndarray],
    num_heads: int,
    *,
    gelu: str = "erf",
    batch_size: int | None = None,
    seq_len: int | None = None,
) -> Any:
    """A frozen ``tf.compat.v1.GraphDef`` of BERT SQuAD built from Google-named weights.

    ``num_heads``: attention heads (not recoverable from weight shapes). ``batch_size`` /
    ``seq_len`` fix the placeholder shape (MLPerf's model.pb: 1 and 384); None = dynamic.
    """
    if gelu not in GELUS:
        raise ModelConversionError(f"unknown gelu {gelu!r}; choose one of: {', '.join(GELUS)}")
    tf = import_tensorflow()
    graph = tf.Graph()
    with graph.as_default():
        _build_logits(tf, weights, num_heads, gelu, (batch_size, seq_len))
    return graph.as_graph_def()


# ---- files --------------------------------------------------------------------------------


def write_frozen_graph(graph_def: Any, path: Path) -> Path:
    """Serialise ``graph_def`` to ``path`` (binary ``.pb``) atomically; returns ``path``."""
    data = graph_def.SerializeToString()
    with atomic_path(Path(path)) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def read_frozen_graph(path: Path) -> Any:
    """Parse a binary GraphDef file; raise ModelConversionError naming it if it is not one."""
    tf = import_tensorflow()
    path = Path(path)
    if not path.is_file():
        raise ModelConversionError(f"frozen graph {path} does not exist")
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(path.read_bytes())
    except Exception as exc:  # google.protobuf.message.DecodeError, RuntimeWarning...
        raise ModelConversionError(f"{path} is not a TensorFlow GraphDef (.pb): {exc}") from exc
    if not graph_def.node:
        raise ModelConversionError(f"{path} holds an empty graph; is it a frozen GraphDef?")
    return graph_def


def weights_from_frozen_graph(graph_def: Any) -> dict[str, np.ndarray]:
    """Google-named weights from the graph's constants (frozen variables keep their names)."""
    tf = import_tensorflow()
    return {
        node.name: np.asarray(tf.make_ndarray(node.attr["value"].tensor), dtype=np.float32)
        for node in graph_def.node
        if node.op == "Const" and is_model_variable(node.name)
    }


def gelu_of_graph(graph_def: Any) -> str:
    """``"erf"`` if the graph computes GELU with Erf, else ``"tanh"`` (Google's formula)."""
    return "erf" if any(node.op == "Erf" for node in graph_def.node) else "tanh"


def read_tf_checkpoint(prefix: Path) -> dict[str, np.ndarray]:
    """Model variables of a TF checkpoint (``model.ckpt-5474``: the prefix, no suffix).

    Optimizer slots (``adam_m``/``adam_v``) and counters are left out. Arrays are float32.
    """
    tf = import_tensorflow()
    try:
        reader = tf.train.load_checkpoint(str(prefix))
    except Exception as exc:  # NotFoundError, DataLossError, ValueError
        raise ModelConversionError(
            f"cannot read TF checkpoint {prefix}: {str(exc).strip().splitlines()[0]}. Pass the "
            f"prefix (e.g. model.ckpt-5474), with {prefix}.index and its data files beside it."
        ) from exc
    return {
        name: np.asarray(reader.get_tensor(name), dtype=np.float32)
        for name in sorted(reader.get_variable_to_shape_map())
        if is_model_variable(name)
    }


def write_tf_checkpoint(weights: dict[str, np.ndarray], prefix: Path) -> Path:
    """Write ``weights`` as a TF checkpoint: ``prefix.index`` and ``prefix.data-00000-of-00001``.

    Variables keep the given names and dtypes (as ``tf.compat.v1.train.Saver`` writes them), so
    ``tf.train.load_checkpoint`` and Google's ``init_from_checkpoint`` read them. Both files
    are written in a temporary folder beside ``prefix`` and moved into place at the end.
    """
    tf = import_tensorflow()
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    names = sorted(weights)
    staging = Path(tempfile.mkdtemp(dir=prefix.parent, prefix=f".{prefix.name}."))
    try:
        tmp_prefix = staging / prefix.name
        tf.raw_ops.SaveV2(
            prefix=str(tmp_prefix), tensor_names=names, shape_and_slices=[""] * len(names),
            tensors=[tf.constant(np.asarray(weights[n])) for n in names],
        )
        # Data first, index last: a reader looks for the index, so it never sees half a pair.
        for suffix in (DATA_SUFFIX, ".index"):
            os.replace(f"{tmp_prefix}{suffix}", f"{prefix}{suffix}")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return prefix


def write_saved_model(graph_def: Any, export_dir: Path, *, hf_names: bool = False) -> Path:
    """Save a frozen BERT graph as a SavedModel whose ``serving_default`` maps features to
    ``logits`` (or, with ``hf_names``, ``attention_mask``/``token_type_ids`` ->
    ``start_logits``/``end_logits``). ``export_dir`` must not exist yet."""
    tf = import_tensorflow()
    export_dir = Path(export_dir)
    if export_dir.exists():
        raise ModelConversionError(f"{export_dir} already exists; choose a new directory")

    def imported() -> None:
        tf.graph_util.import_graph_def(graph_def, name="")

    wrapped = tf.compat.v1.wrap_function(imported, [])
    pruned = wrapped.prune([f"{n}:0" for n in INPUT_NAMES], f"{OUTPUT_NAME}:0")
    keys = tensor_names.INPUTS["hf"] if hf_names else INPUT_NAMES
    spec = {k: tf.TensorSpec([None, None], tf.int32, name=k) for k in keys}

    @tf.function(input_signature=[spec])
    def serve(features: dict) -> dict:
        logits = pruned(*(features[k] for k in keys))
        if hf_names:
            return {"start_logits": logits[..., 0], "end_logits": logits[..., 1]}
        return {OUTPUT_NAME: logits}

    module = tf.Module()
    module.pruned = pruned  # keep the imported graph alive and tracked by the SavedModel
    staging = Path(tempfile.mkdtemp(dir=export_dir.parent, prefix=f".{export_dir.name}."))
    try:
        tf.saved_model.save(module, str(staging / "m"), signatures={"serving_default": serve})
        os.replace(staging / "m", export_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return export_dir
