"""Convert BERT SQuAD models between the MLPerf formats, validating every result.

Usage::

    python -m models.convert SRC DST [--to pytorch|onnx|tf|ckpt] [--names mlperf|hf]
                                     [--heads N] [--gelu erf|tanh]

Sources (detected from SRC): a TF checkpoint prefix (``model.ckpt-5474``, with ``.index``
beside it), a PyTorch state dict (``.pytorch``/``.pt``/``.pth``/``.bin``/``.safetensors``),
a Hugging Face checkpoint directory, an ONNX file exported by torch, a TF frozen graph
(``.pb``). Targets (``--to``, else from DST's suffix): ``pytorch`` (transformers
``BertForQuestionAnswering`` state dict, MLPerf's ``model.pytorch`` layout), ``onnx``
(:mod:`models.export_onnx`, MLPerf tensor names unless ``--names hf``), ``tf`` (frozen graph
with MLPerf's tensor names, :mod:`models.tf_bert`) and ``ckpt`` (TF checkpoint).

Validation: before DST appears, the new model and a reference run the same padded
``[2, 384]`` batch and must agree to max abs logit difference < 1e-3. The reference is the
source file itself when it is executable (ONNX, frozen graph); for weights-only sources
(checkpoint, state dict) it is the other framework's implementation -- transformers for TF
targets, the TF graph builder for PyTorch/ONNX targets -- so a naming or layout slip cannot
pass unnoticed. Nothing is left at DST when a conversion fails.

Attention heads are not recoverable from weight shapes: ``--heads``, else ``config.json`` /
``bert_config.json`` beside the source, else hidden/64 (BERT-Base/Large). GELU: ``erf``
(transformers' ``gelu``, MLPerf's PyTorch/ONNX models) by default, ``tanh`` for the
approximation Google's TF ``modeling.py`` uses (MLPerf's ``model.pb``); a frozen graph
source says which it uses.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from backends import BackendError, FeatureBatch, formats, tensor_names
from common.files import atomic_path
from models import tf_bert
from models.bert_weights import (
    GELU_FOR_HF_ACT,
    GELUS,
    HF_ACT_FOR_GELU,
    ModelConversionError,
    bert_shape,
    config_beside,
    google_to_state_dict,
    read_state_dict,
    resolve_heads,
    state_dict_to_google,
)
from models.export_onnx import (
    VALIDATE_ATOL,
    ModelExportError,
    backend_logits,
    export_qa_model_to_onnx,
    max_abs_diff,
    validation_batch,
)

TARGETS = ("pytorch", "onnx", "tf", "ckpt")
# the target a destination's format means, and the backend that runs each executable format
TARGET_OF_FORMAT = {formats.PYTORCH: "pytorch", formats.ONNX: "onnx", formats.TF_FROZEN: "tf"}
EXECUTABLE_SOURCES = {formats.ONNX: "onnxruntime", formats.TF_FROZEN: "tensorflow"}
# A frozen graph run once for a check needs none of grappler's rewrites (minutes at BERT-Large).
TF_CHECK_OPTIONS = {"graph_rewrites": "off"}


@dataclasses.dataclass
class Source:
    """A model read into Google-named weights (``format``: see :mod:`backends.formats`)."""

    path: Path
    format: str
    weights: dict[str, np.ndarray]
    heads: int
    gelu: str
    notes: list[str]


@dataclasses.dataclass(frozen=True)
class ConversionReport:
    """What was written and how it was checked (``max_abs_diff``: logits, absolute)."""

    path: Path
    source_format: str
    target_format: str
    reference: str
    max_abs_diff: float
    notes: tuple[str, ...]


def source_format(path: Path) -> str:
    """Format of ``path`` (:func:`backends.formats.detect_format`); raise saying what is
    accepted."""
    try:
        fmt = formats.detect_format(path)
    except formats.ModelFormatError as exc:
        raise ModelConversionError(str(exc)) from None
    if fmt == formats.TF_SAVEDMODEL:
        raise ModelConversionError(f"{path} is a SavedModel; convert from its frozen graph, "
                                   "checkpoint or weights instead")
    return fmt


def load_source(path: Path, *, heads: int | None = None, gelu: str | None = None) -> Source:
    """Read ``path`` into Google-named weights; see the module doc for heads and GELU."""
    path = Path(path)
    fmt = source_format(path)
    config = config_beside(path)
    if fmt == formats.TF_CKPT:
        weights = tf_bert.read_tf_checkpoint(path)
    elif fmt in (formats.PYTORCH, formats.HF):
        weights = state_dict_to_google(read_state_dict(formats.checkpoint_dir(path)
                                                       if fmt == formats.HF else path))
    elif fmt == formats.ONNX:
        from models.onnx_weights import state_dict_from_onnx

        weights = state_dict_to_google(state_dict_from_onnx(path))
    else:
        graph_def = tf_bert.read_frozen_graph(path)
        weights = tf_bert.weights_from_frozen_graph(graph_def)
        graph_gelu = tf_bert.gelu_of_graph(graph_def)
        if gelu not in (None, graph_gelu):
            raise ModelConversionError(f"{path} computes GELU with {graph_gelu}, not {gelu}")
        gelu = graph_gelu
    notes = []
    if gelu is None:  # Google's bert_config.json says "gelu" for its tanh formula: HF only
        gelu = (GELU_FOR_HF_ACT.get(str(config.get("hidden_act")), "erf")
                if fmt == formats.HF else "erf")
    if gelu not in GELUS:
        raise ModelConversionError(f"unknown gelu {gelu!r}; choose one of: {', '.join(GELUS)}")
    if float(config.get("layer_norm_eps", tf_bert.LAYER_NORM_EPS)) != tf_bert.LAYER_NORM_EPS:
        raise ModelConversionError(f"{path}: layer_norm_eps {config['layer_norm_eps']} is not "
                                   f"BERT's {tf_bert.LAYER_NORM_EPS:g}, which all formats assume")
    hidden = weights["bert/embeddings/word_embeddings"].shape[1] if weights else 0
    n_heads, origin = resolve_heads(heads, hidden, config)
    if origin.startswith("guessed"):
        notes.append(f"attention heads {origin} = {n_heads}; pass --heads if that is wrong")
    bert_shape(weights, n_heads)  # names every missing variable now, not mid-conversion
    return Source(path, fmt, weights, n_heads, gelu, notes)


# ---- models from weights --------------------------------------------------------------------


def torch_model(weights: dict[str, np.ndarray], heads: int, gelu: str = "erf") -> Any:
    """A transformers ``BertForQuestionAnswering`` (eager attention, eval) with these weights."""
    import torch
    from transformers import BertConfig, BertForQuestionAnswering

    shape = bert_shape(weights, heads)
    config = BertConfig(
        vocab_size=shape.vocab_size, hidden_size=shape.hidden, num_hidden_layers=shape.layers,
        num_attention_heads=heads, intermediate_size=shape.intermediate,
        max_position_embeddings=shape.max_positions, type_vocab_size=shape.type_vocab_size,
        hidden_act=HF_ACT_FOR_GELU[gelu], layer_norm_eps=tf_bert.LAYER_NORM_EPS,
        attn_implementation="eager",
    )
    try:  # skip the random init that load_state_dict overwrites (seconds at BERT-Large size)
        from transformers.initialization import no_init_weights
    except ImportError:
        no_init_weights = contextlib.nullcontext
    with no_init_weights():
        model = BertForQuestionAnswering(config).eval()
    state = {k: torch.from_numpy(np.ascontiguousarray(v))
             for k, v in google_to_state_dict(weights).items() if not k.startswith("bert.pooler")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith(("position_ids", "token_type_ids"))]
    if missing or unexpected:
        raise ModelConversionError(f"weights do not fit BertForQuestionAnswering: missing "
                                   f"{missing[:4]}, unexpected {unexpected[:4]}")
    return model


def _hf_config(weights: dict[str, np.ndarray], heads: int, gelu: str) -> dict[str, Any]:
    """The Hugging Face ``config.json`` of these weights (heads and GELU are not in them)."""
    shape = bert_shape(weights, heads)
    return {"model_type": "bert", "architectures": ["BertForQuestionAnswering"],
            "vocab_size": shape.vocab_size, "hidden_size": shape.hidden,
            "num_hidden_layers": shape.layers, "num_attention_heads": heads,
            "intermediate_size": shape.intermediate,
            "max_position_embeddings": shape.max_positions,
            "type_vocab_size": shape.type_vocab_size, "hidden_act": HF_ACT_FOR_GELU[gelu],
            "layer_norm_eps": tf_bert.LAYER_NORM_EPS}


def _write_state_dict(state: dict[str, np.ndarray], path: Path) -> None:
    if path.suffix.lower() == ".safetensors":
        from safetensors.numpy import save_file

        save_file(state, str(path))
    else:
        import torch

        torch.save(collections.OrderedDict((k, torch.from_numpy(v)) for k, v in state.items()),
                   str(path))


def _tf_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorflow") is not None


# ---- conversion ---------------------------------------------------------------------------


def convert(src: Path, dst: Path, *, to: str | None = None, names: str = "mlperf",
            heads: int | None = None, gelu: str | None = None) -> ConversionReport:
    """Convert ``src`` to ``dst`` (format ``to``, else from DST's suffix) and validate it.

    Every model involved (the source file when it is executable, a reference built from the
    weights otherwise, and the result) is run by the registered backend that loads its
    format, on the same padded batch.
    """
    src, dst = Path(src), Path(dst)
    target = to or TARGET_OF_FORMAT.get(formats.SUFFIXES.get(dst.suffix.lower(), "")) or (
        "ckpt" if ".ckpt" in dst.name else None)
    if target not in TARGETS:
        raise ModelConversionError(f"cannot tell the target format of {dst}; pass --to "
                                   f"{'|'.join(TARGETS)}")
    if names not in tensor_names.NAMINGS:
        raise ModelConversionError(
            f"unknown naming {names!r}; choose one of: {', '.join(tensor_names.NAMINGS)}")
    source = load_source(src, heads=heads, gelu=gelu)
    weights, h, g = source.weights, source.heads, source.gelu
    batch = validation_batch(bert_shape(weights, h).vocab_size)
    notes = list(source.notes)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dst.parent, prefix=f".{dst.name}.") as scratch_dir:
        scratch = Path(scratch_dir)
        if source.format in EXECUTABLE_SOURCES:
            backend = EXECUTABLE_SOURCES[source.format]
            reference = backend_logits(backend, src, batch, **_check_options(backend))
            ref_label = f"{source.format} source file"
        elif target in ("tf", "ckpt") or not _tf_available():
            reference = _pytorch_logits(weights, h, g, scratch / "reference", batch)
            ref_label = "transformers (torch)"
        else:
            reference = _frozen_graph_logits(weights, h, g, scratch / "reference.pb", batch)
            ref_label = "TF graph built from the weights"

        def check(candidate: tuple[np.ndarray, np.ndarray]) -> float:
            diff = max_abs_diff(reference, candidate)
            if not diff < VALIDATE_ATOL:  # also catches NaN
                raise ModelConversionError(
                    f"converting {src} to {target}: the result disagrees with the {ref_label} "
                    f"(max abs logit difference {diff:.3g} >= {VALIDATE_ATOL:g}); {dst} was not "
                    "written." + "".join(f" Note: {n}." for n in notes)
                )
            return diff

        if target == "ckpt":
            diff = check(_frozen_graph_logits(weights, h, g, scratch / "check.pb", batch))
            tf_bert.write_tf_checkpoint(weights, dst)
        else:
            with atomic_path(dst) as tmp:
                diff = check(_write_target(target, source, tmp, dst, names, scratch, batch))
    if g == "tanh" and target in ("pytorch", "ckpt"):
        notes.append("weights expect the tanh GELU: run them with transformers hidden_act="
                     "'gelu_new' (its default 'gelu' is exact erf)")
    return ConversionReport(dst, source.format, target, ref_label, diff, tuple(notes))


def _check_options(backend: str) -> dict[str, str]:
    return TF_CHECK_OPTIONS if backend == "tensorflow" else {}


def _pytorch_logits(weights: dict[str, np.ndarray], heads: int, gelu: str, folder: Path,
                    batch: FeatureBatch) -> tuple[np.ndarray, np.ndarray]:
    """Logits of the weights saved as a Hugging Face checkpoint and run by the PyTorch
    backend (transformers' implementation)."""
    torch_model(weights, heads, gelu).save_pretrained(folder, safe_serialization=True)
    return backend_logits("pytorch", folder, batch, attn_implementation="eager")


def _frozen_graph_logits(weights: dict[str, np.ndarray], heads: int, gelu: str, path: Path,
                         batch: FeatureBatch) -> tuple[np.ndarray, np.ndarray]:
    """Logits of a frozen graph built from the weights, run by the TensorFlow backend."""
    tf_bert.write_frozen_graph(tf_bert.frozen_graph_from_weights(weights, heads, gelu=gelu), path)
    return backend_logits("tensorflow", path, batch, **TF_CHECK_OPTIONS)


def _write_target(target: str, source: Source, tmp: Path, dst: Path, names: str,
                  scratch: Path, batch: FeatureBatch) -> tuple[np.ndarray, np.ndarray]:
    """Write the new model to ``tmp``; return its logits as the backend of its format reads
    it back (a state dict is checked beside a config.json with its heads and GELU)."""
    weights, heads, gelu = source.weights, source.heads, source.gelu
    if target == "tf":
        tmp.write_bytes(tf_bert.frozen_graph_from_weights(weights, heads, gelu=gelu)
                        .SerializeToString())
        return backend_logits("tensorflow", tmp, batch, **TF_CHECK_OPTIONS)
    if target == "onnx":
        export_qa_model_to_onnx(torch_model(weights, heads, gelu), tmp, names=names,
                                source=str(dst))
        return backend_logits("onnxruntime", tmp, batch)
    checked = scratch / "target" / dst.name
    checked.parent.mkdir()
    _write_state_dict(google_to_state_dict(weights), checked)
    (checked.parent / formats.HF_CONFIG).write_text(json.dumps(_hf_config(weights, heads, gelu)))
    logits = backend_logits("pytorch", checked, batch, attn_implementation="eager")
    os.replace(checked, tmp)
    return logits


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the process exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m models.convert",
        description="Convert BERT SQuAD models between TF checkpoint, PyTorch state dict, "
        "ONNX and TF frozen graph; every result is checked against a reference (< 1e-3).",
    )
    parser.add_argument("src", type=Path, help="checkpoint prefix, state dict, HF dir, .onnx, .pb")
    parser.add_argument("dst", type=Path, help="file to write (checkpoint: its prefix)")
    parser.add_argument("--to", choices=TARGETS, help="target format (default: from DST suffix)")
    parser.add_argument("--names", choices=sorted(tensor_names.NAMINGS), default="mlperf",
                        help="ONNX tensor names: mlperf (model.onnx) or hf (default mlperf)")
    parser.add_argument("--heads", type=int, help="attention heads (default: config or hidden/64)")
    parser.add_argument("--gelu", choices=GELUS, help="GELU of the model (default erf; the "
                        "tanh approximation is what Google's TF BERT and MLPerf's model.pb use)")
    args = parser.parse_args(argv)
    try:
        report = convert(args.src, args.dst, to=args.to, names=args.names, heads=args.heads,
                         gelu=args.gelu)
    except (ModelExportError, BackendError) as exc:  # ModelConversionError is one
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"wrote {report.path} ({report.source_format} -> {report.target_format}); max abs "
          f"logit difference vs {report.reference}: {report.max_abs_diff:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
