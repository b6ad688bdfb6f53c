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
import contextlib
import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from harness.files import atomic_path
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
    NAMINGS,
    VALIDATE_ATOL,
    ModelExportError,
    _validation_batch,
    export_qa_model_to_onnx,
)

TARGETS = ("pytorch", "onnx", "tf", "ckpt")
SUFFIXES = {".pytorch": "pytorch", ".pt": "pytorch", ".pth": "pytorch", ".bin": "pytorch",
            ".safetensors": "pytorch", ".onnx": "onnx", ".pb": "tf"}
Batch = dict[str, np.ndarray]  # input_ids, attention_mask, token_type_ids: int64 [B, S]
Runner = Callable[[Batch], tuple[np.ndarray, np.ndarray]]  # -> float32 start, end [B, S]


@dataclasses.dataclass
class Source:
    """A model read into Google-named weights, plus a way to run the file itself if any."""

    path: Path
    format: str  # ckpt, pytorch, hf, onnx, tf
    weights: dict[str, np.ndarray]
    heads: int
    gelu: str
    notes: list[str]
    run: Runner | None = None


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
    """Format of ``path``: ckpt, hf, pytorch, onnx or tf; raise saying what is accepted."""
    if Path(f"{path}.index").is_file():
        return "ckpt"
    if path.is_dir():
        if (path / "config.json").is_file():
            return "hf"
        raise ModelConversionError(
            f"{path} is a directory but not a Hugging Face checkpoint (no config.json); for a TF "
            "checkpoint pass its prefix, e.g. DIR/model.ckpt-5474"
        )
    if not path.is_file():
        raise ModelConversionError(f"{path} does not exist (for a TF checkpoint, pass the prefix "
                                   "whose .index file exists)")
    if path.suffix.lower() not in SUFFIXES:
        raise ModelConversionError(
            f"{path}: unknown model format; expected a TF checkpoint prefix, a Hugging Face "
            f"directory or one of {', '.join(SUFFIXES)}"
        )
    return SUFFIXES[path.suffix.lower()]


def load_source(path: Path, *, heads: int | None = None, gelu: str | None = None) -> Source:
    """Read ``path`` into Google-named weights; see the module doc for heads and GELU."""
    path = Path(path)
    fmt = source_format(path)
    config = config_beside(path)
    run: Runner | None = None
    if fmt == "ckpt":
        weights = tf_bert.read_tf_checkpoint(path)
    elif fmt in ("pytorch", "hf"):
        weights = state_dict_to_google(read_state_dict(path))
    elif fmt == "onnx":
        from models.onnx_weights import state_dict_from_onnx

        weights = state_dict_to_google(state_dict_from_onnx(path))
        run = _ort_runner(path)
    else:
        graph_def = tf_bert.read_frozen_graph(path)
        weights = tf_bert.weights_from_frozen_graph(graph_def)
        graph_gelu = tf_bert.gelu_of_graph(graph_def)
        if gelu not in (None, graph_gelu):
            raise ModelConversionError(f"{path} computes GELU with {graph_gelu}, not {gelu}")
        gelu = graph_gelu
        run = _graph_runner(graph_def)
    notes = []
    if gelu is None:  # Google's bert_config.json says "gelu" for its tanh formula: HF only
        gelu = GELU_FOR_HF_ACT.get(str(config.get("hidden_act")), "erf") if fmt == "hf" else "erf"
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
    return Source(path, fmt, weights, n_heads, gelu, notes, run)


# ---- runners: each takes the int64 validation batch and returns start, end logits ----------


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


def _torch_runner(model: Any) -> Runner:
    def run(batch: Batch) -> tuple[np.ndarray, np.ndarray]:
        import torch

        with torch.inference_mode():
            out = model(**{k: torch.from_numpy(v) for k, v in batch.items()})
        return out.start_logits.numpy(), out.end_logits.numpy()

    return run


def _graph_runner(graph_def: Any) -> Runner:
    def run(batch: Batch) -> tuple[np.ndarray, np.ndarray]:
        runner = tf_bert.FrozenGraphRunner(graph_def)
        try:
            logits = runner(*batch.values())
        finally:
            runner.close()
        return logits[..., 0], logits[..., 1]

    return run


def _ort_runner(path: Path) -> Runner:
    names = {"input_ids": 0, "input_mask": 1, "attention_mask": 1, "segment_ids": 2,
             "token_type_ids": 2}
    starts, ends = ("output_start_logits", "start_logits"), ("output_end_logits", "end_logits")

    def run(batch: Batch) -> tuple[np.ndarray, np.ndarray]:
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        arrays = list(batch.values())
        dtypes = {"tensor(int32)": np.int32}
        feeds = {i.name: arrays[names[i.name]].astype(dtypes.get(i.type, np.int64))
                 for i in session.get_inputs()}
        outs = [o.name for o in session.get_outputs()]
        fetch = [next(n for n in starts if n in outs), next(n for n in ends if n in outs)]
        start, end = session.run(fetch, feeds)
        return start.reshape(arrays[0].shape), end.reshape(arrays[0].shape)

    return run


def _max_diff(reference: Runner, target: Runner, batch: Batch) -> float:
    pairs = zip(reference(batch), target(batch), strict=True)
    return max(float(np.max(np.abs(np.asarray(r) - np.asarray(t)))) for r, t in pairs)


def _tf_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorflow") is not None


# ---- conversion ---------------------------------------------------------------------------


def convert(src: Path, dst: Path, *, to: str | None = None, names: str = "mlperf",
            heads: int | None = None, gelu: str | None = None) -> ConversionReport:
    """Convert ``src`` to ``dst`` (format ``to``, else from DST's suffix) and validate it."""
    src, dst = Path(src), Path(dst)
    target = to or SUFFIXES.get(dst.suffix.lower()) or ("ckpt" if ".ckpt" in dst.name else None)
    if target not in TARGETS:
        raise ModelConversionError(f"cannot tell the target format of {dst}; pass --to "
                                   f"{'|'.join(TARGETS)}")
    if names not in NAMINGS:
        raise ModelConversionError(f"unknown naming {names!r}; choose one of: {', '.join(NAMINGS)}")
    source = load_source(src, heads=heads, gelu=gelu)
    weights, h, g = source.weights, source.heads, source.gelu
    if source.run is not None:
        reference, ref_label = source.run, f"{source.format} source file"
    elif target in ("tf", "ckpt") or not _tf_available():
        reference, ref_label = _torch_runner(torch_model(weights, h, g)), "transformers (torch)"
    else:
        graph_def = tf_bert.frozen_graph_from_weights(weights, h, gelu=g)
        reference, ref_label = _graph_runner(graph_def), "TF graph built from the weights"
    batch = _validation_batch(bert_shape(weights, h).vocab_size)
    notes = list(source.notes)

    def check(target_runner: Runner) -> float:
        diff = _max_diff(reference, target_runner, batch)
        if not diff < VALIDATE_ATOL:  # also catches NaN
            raise ModelConversionError(
                f"converting {src} to {target}: the result disagrees with the {ref_label} (max "
                f"abs logit difference {diff:.3g} >= {VALIDATE_ATOL:g}); {dst} was not written."
                + "".join(f" Note: {n}." for n in notes)
            )
        return diff

    if target == "ckpt":
        diff = check(_graph_runner(tf_bert.frozen_graph_from_weights(weights, h, gelu=g)))
        tf_bert.write_tf_checkpoint(weights, dst)
    else:
        with atomic_path(dst) as tmp:
            diff = check(_write_target(target, weights, h, g, tmp, dst, names))
    if g == "tanh" and target in ("pytorch", "ckpt"):
        notes.append("weights expect the tanh GELU: run them with transformers hidden_act="
                     "'gelu_new' (its default 'gelu' is exact erf)")
    return ConversionReport(dst, source.format, target, ref_label, diff, tuple(notes))


def _write_target(target: str, weights: dict[str, np.ndarray], heads: int, gelu: str,
                  tmp: Path, dst: Path, names: str) -> Runner:
    """Write the new model to ``tmp``; return a runner that reads it back from ``tmp``."""
    if target == "tf":
        tmp.write_bytes(tf_bert.frozen_graph_from_weights(weights, heads, gelu=gelu)
                        .SerializeToString())
        return _graph_runner(tf_bert.read_frozen_graph(tmp))
    if target == "onnx":
        export_qa_model_to_onnx(torch_model(weights, heads, gelu), tmp, names=names,
                                source=str(dst))
        return _ort_runner(tmp)
    state = google_to_state_dict(weights)
    if dst.suffix.lower() == ".safetensors":
        from safetensors.numpy import save_file

        save_file(state, str(tmp))
    else:
        import collections

        import torch

        torch.save(collections.OrderedDict((k, torch.from_numpy(v)) for k, v in state.items()),
                   str(tmp))
    return _torch_runner(torch_model(state_dict_to_google(read_state_dict(tmp)), heads, gelu))


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
    parser.add_argument("--names", choices=sorted(NAMINGS), default="mlperf",
                        help="ONNX tensor names: mlperf (model.onnx) or hf (default mlperf)")
    parser.add_argument("--heads", type=int, help="attention heads (default: config or hidden/64)")
    parser.add_argument("--gelu", choices=GELUS, help="GELU of the model (default erf; the "
                        "tanh approximation is what Google's TF BERT and MLPerf's model.pb use)")
    args = parser.parse_args(argv)
    try:
        report = convert(args.src, args.dst, to=args.to, names=args.names, heads=args.heads,
                         gelu=args.gelu)
    except ModelExportError as exc:  # includes ModelConversionError
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"wrote {report.path} ({report.source_format} -> {report.target_format}); max abs "
          f"logit difference vs {report.reference}: {report.max_abs_diff:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
