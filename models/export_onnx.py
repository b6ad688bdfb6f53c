"""Export a local Hugging Face ``BertForQuestionAnswering`` checkpoint to ONNX.

Usage::

    python -m models.export_onnx HF_DIR OUT.onnx [--names hf|mlperf] [--opset 17]

``--names mlperf`` gives the tensor names of MLCommons' ``model.onnx`` (``input_ids``,
``input_mask``, ``segment_ids`` -> ``output_start_logits``, ``output_end_logits``), so a
small local model can stand in for it; ``--names hf`` gives Hugging Face's names.

Why the choices below (measured on torch 2.13 / onnx 1.23 / onnxruntime 1.31):

* ``dynamo=False``: the dynamo exporter emitted an opset-18 ``Split`` attribute at opset 17
  that ONNX Runtime rejects.
* ``attn_implementation="eager"``: transformers 5 defaults to SDPA attention, which ONNX
  Runtime's transformer optimizer cannot fuse.
* IR version: onnx 1.23 may stamp IR 14, ONNX Runtime 1.31 reads at most 13.

torch and transformers are imported inside the functions so that importing this module (and
the harness) stays cheap.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from backends import BackendError, BackendSettings, FeatureBatch, load_backend, tensor_names
from common.errors import HarnessError
from common.files import atomic_path

# Highest ONNX IR version that onnxruntime 1.31 loads.
MAX_ORT_IR_VERSION = 13
# ORT vs torch tolerance on logits (absolute); fp32 exports differ by ~1e-6 in practice.
VALIDATE_ATOL = 1e-3
VALIDATE_SHAPE = (2, 384)  # [batch, sequence] of the validation batch, in tokens

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


class ModelExportError(HarnessError):
    """The checkpoint could not be exported or the export does not match the source model."""


def _one_line(exc: BaseException) -> str:
    """An exception's message on one line: the CLI prints errors as one line."""
    return " ".join(str(exc).split()) or type(exc).__name__


def _check_naming(names: str) -> None:
    if names not in tensor_names.NAMINGS:
        raise ModelExportError(
            f"unknown naming {names!r}; choose one of: {', '.join(tensor_names.NAMINGS)}"
        )


def _check_hf_dir(hf_dir: Path) -> None:
    """Fail early, naming the directory, when it is not a usable local checkpoint."""
    if not hf_dir.is_dir():
        raise ModelExportError(f"Hugging Face model directory {hf_dir} does not exist")
    if not (hf_dir / "config.json").is_file():
        raise ModelExportError(f"{hf_dir} has no config.json: not a Hugging Face checkpoint")
    if not any((hf_dir / name).is_file() for name in WEIGHT_FILES):
        raise ModelExportError(
            f"{hf_dir} has no weights (expected one of: {', '.join(WEIGHT_FILES)})"
        )
    # config.json must be a JSON object and model.safetensors complete: transformers would
    # report either with a traceback that does not name the file.
    from backends.pytorch_backend import check_safetensors, read_hf_config

    try:
        read_hf_config(hf_dir)
        if (hf_dir / "model.safetensors").is_file():
            check_safetensors(hf_dir / "model.safetensors")
    except BackendError as exc:
        raise ModelExportError(str(exc)) from None


def _lower_ir_version(path: Path) -> None:
    """Rewrite ``path`` with an IR version ONNX Runtime 1.31 accepts, if it needs one."""
    import onnx
    from onnx import helper

    model = onnx.load(str(path))
    if model.ir_version <= MAX_ORT_IR_VERSION:
        return
    # The lowest IR that declares the model's opsets is always valid for its contents.
    model.ir_version = min(
        MAX_ORT_IR_VERSION, helper.find_min_ir_version_for(list(model.opset_import), True)
    )
    onnx.save(model, str(path))


def validation_batch(vocab_size: int, seed: int = 0) -> FeatureBatch:
    """A random ``[2, 384]`` int64 batch with real padding (row 1 is 200 tokens long)."""
    rng = np.random.default_rng(seed)
    batch, seq = VALIDATE_SHAPE
    ids = rng.integers(1000, vocab_size, size=(batch, seq), dtype=np.int64)
    mask = np.ones((batch, seq), dtype=np.int64)
    segments = np.zeros((batch, seq), dtype=np.int64)
    segments[:, 20:] = 1  # question = first 20 tokens, then context
    mask[1, 200:] = 0
    ids[1, 200:] = 0  # [PAD]
    segments[1, 200:] = 0
    return FeatureBatch(ids, mask, segments)


def max_abs_diff(reference: Sequence[Any], candidate: Sequence[Any]) -> float:
    """Largest absolute difference between paired logits arrays (NaN if any is NaN)."""
    return max(float(np.max(np.abs(np.asarray(r, np.float64) - np.asarray(c, np.float64))))
               for r, c in zip(reference, candidate, strict=True))


def backend_logits(backend: str, path: Path, batch: FeatureBatch,
                   **options: Any) -> tuple[np.ndarray, np.ndarray]:
    """Start and end logits of the model file ``path`` run by the registered ``backend``
    on the CPU: every export and conversion is checked the way a run would load it."""
    with load_backend(backend, path, BackendSettings(device="cpu", options=options)) as runner:
        return runner.predict(batch)


def _validate(model: Any, onnx_path: Path, vocab: int) -> float:
    """Run torch and the ONNX Runtime backend on the same batch; the max abs difference."""
    import torch

    batch = validation_batch(vocab)
    with torch.inference_mode():
        ref = model(*(torch.from_numpy(a) for a in batch.arrays()))
    return max_abs_diff([r.numpy() for r in ref], backend_logits("onnxruntime", onnx_path, batch))


def export_hf_qa_to_onnx(
    hf_dir: Path,
    out_path: Path,
    *,
    names: str = "hf",
    opset: int = 17,
    validate: bool = True,
) -> Path:
    """Export the fp32 QA checkpoint in ``hf_dir`` to ``out_path``; return ``out_path``.

    Batch and sequence axes are dynamic on every input and output. The file appears only
    when the export (and, with ``validate``, the ORT-vs-torch check on a ``[2, 384]`` batch,
    max abs logit difference < 1e-3) succeeded; otherwise nothing is left at ``out_path``.
    """
    hf_dir, out_path = Path(hf_dir), Path(out_path)
    _check_naming(names)
    _check_hf_dir(hf_dir)

    import torch
    from transformers import BertForQuestionAnswering

    try:
        hf_model = BertForQuestionAnswering.from_pretrained(
            hf_dir, attn_implementation="eager", dtype=torch.float32, local_files_only=True
        )
    # transformers reports a bad checkpoint with many exception types (OSError, ValueError,
    # TypeError, KeyError...), none of which a user can act on better than on this line.
    except Exception as exc:
        raise ModelExportError(
            f"cannot load a BertForQuestionAnswering from {hf_dir}: {_one_line(exc)}"
        ) from None
    return export_qa_model_to_onnx(
        hf_model, out_path, names=names, opset=opset, validate=validate, source=str(hf_dir)
    )


def export_qa_model_to_onnx(
    hf_model: object,
    out_path: Path,
    *,
    names: str = "hf",
    opset: int = 17,
    validate: bool = True,
    source: str = "the model",
) -> Path:
    """Export an in-memory transformers ``BertForQuestionAnswering`` to ``out_path``.

    Same graph, names, validation and atomicity as :func:`export_hf_qa_to_onnx`; ``source``
    names the model in messages. Load it with ``attn_implementation="eager"`` (module doc).
    """
    import torch

    out_path = Path(out_path)
    _check_naming(names)
    input_names, output_names = tensor_names.INPUTS[names], tensor_names.OUTPUTS[names]
    hf_model.eval()  # type: ignore[attr-defined]

    class _Logits(torch.nn.Module):
        """Positional inputs and a plain (start, end) tuple, as torch.onnx.export wants."""

        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, ids, mask, segments):  # untyped: only ever traced by the exporter
            out = self.inner(input_ids=ids, attention_mask=mask, token_type_ids=segments)
            return out.start_logits, out.end_logits

    wrapper = _Logits(hf_model).eval()
    dims = {0: "batch", 1: "sequence"}
    vocab_size = hf_model.config.vocab_size  # type: ignore[attr-defined]
    example = tuple(torch.from_numpy(a) for a in validation_batch(vocab_size).arrays())

    try:
        with atomic_path(out_path) as tmp, torch.inference_mode(), warnings.catch_warnings():
            # Known noise: the TorchScript exporter is deprecated but is the one that works
            # (see module doc); the traced mask-padding branch is always 0 because mask and
            # sequence share one axis; the aten::index warning concerns negative indices, which
            # mask building does not use. Tests check other batch/sequence sizes against torch.
            warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export")
            warnings.filterwarnings("ignore", message=".*feature will be removed")
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message=".*aten::index operator of advanced")
            torch.onnx.export(
                wrapper,
                example,
                str(tmp),
                input_names=list(input_names),
                output_names=list(output_names),
                dynamic_axes={name: dims for name in (*input_names, *output_names)},
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
            _lower_ir_version(tmp)
            if validate:
                diff = _validate(wrapper, tmp, vocab_size)
                if not diff < VALIDATE_ATOL:  # also catches NaN
                    raise ModelExportError(
                        f"ONNX export of {source} disagrees with torch: max abs logit "
                        f"difference {diff:.3g} >= {VALIDATE_ATOL:g}"
                    )
    except ModelExportError:
        raise
    except Exception as exc:
        raise ModelExportError(
            f"exporting {source} to {out_path} failed: {_one_line(exc)}"
        ) from exc
    return out_path


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the process exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m models.export_onnx",
        description="Export a local Hugging Face BertForQuestionAnswering to ONNX.",
    )
    parser.add_argument("hf_dir", type=Path, help="directory with config.json and weights")
    parser.add_argument("out", type=Path, help="ONNX file to write")
    parser.add_argument(
        "--names",
        choices=sorted(tensor_names.NAMINGS),
        default="hf",
        help="tensor names: hf (Hugging Face) or mlperf (MLCommons model.onnx)",
    )
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    parser.add_argument(
        "--no-validate", action="store_true", help="skip the ONNX Runtime vs torch comparison"
    )
    args = parser.parse_args(argv)
    try:
        path = export_hf_qa_to_onnx(
            args.hf_dir,
            args.out,
            names=args.names,
            opset=args.opset,
            validate=not args.no_validate,
        )
    except ModelExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
