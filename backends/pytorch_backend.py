"""PyTorch fp32 backend: MLPerf's ``model.pytorch`` state dict or a Hugging Face QA checkpoint.

State dicts are read by :mod:`backends.pytorch_state_dict` (``weights_only``: a model file
never runs code; config read off the tensor shapes). Hugging Face checkpoints
(``config.json`` + ``model.safetensors``) load with ``from_pretrained(local_files_only=True)``.
Either way a missing or left-over weight (beyond known-harmless ones) is an error, never a
silent random init. Inference runs under ``torch.inference_mode()``.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers
from pydantic.dataclasses import dataclass as pydantic_dataclass
from transformers import BertForQuestionAnswering

from backends import formats
from backends.base import Backend, BackendError, FeatureBatch
from backends.model_safety import torch_refusal, without_unsafe_advice
from backends.pytorch_state_dict import HARMLESS_EXTRA_KEYS, check_keys, model_from_state_dict
from common.settings import STRICT, choice, setting

ATTENTION_IMPLEMENTATIONS = ("eager", "sdpa")
# Measured on the 2-core host (torch 2.13, demo 6x384 model, sequence 384, three interleaved
# runs): sdpa took ~0.8x (batch 1) and ~0.7x (batch 4) of eager's time per sample.
# Override with the backend option attn_implementation=eager.
DEFAULT_ATTENTION = "sdpa"
# describe()'s config summary: short name -> BertConfig attribute
CONFIG_SUMMARY = {"layers": "num_hidden_layers", "hidden": "hidden_size",
                  "heads": "num_attention_heads", "intermediate": "intermediate_size",
                  "vocab": "vocab_size", "max_positions": "max_position_embeddings"}


@pydantic_dataclass(frozen=True, config=STRICT)
class PyTorchOptions:
    """``--backend-option``s of the PyTorch backend."""

    attn_implementation: choice(ATTENTION_IMPLEMENTATIONS) = setting(  # type: ignore
        DEFAULT_ATTENTION, choices=ATTENTION_IMPLEMENTATIONS,
        help="transformers' attention implementation")
    precision: choice(("fp32", "bf16")) = setting(  # type: ignore
        "fp32", choices=("fp32", "bf16"),
        help="bf16 runs the model under torch's autocast (fp32 weights, bf16 matmuls: fast on "
        "CPUs with AVX-512 BF16 or AMX)")
    compile: choice(("off", "on")) = setting(  # type: ignore
        "off", choices=("off", "on"), help="torch.compile the model (dynamic shapes)")


class PyTorchBackend(Backend):
    """Runs a BERT SQuAD model in fp32 with PyTorch (CPU, or CUDA when asked/available)."""

    name = "pytorch"
    threads_on_local_cores = True
    Options = PyTorchOptions
    options: PyTorchOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._model: BertForQuestionAnswering | None = None
        self._model_path: Path | None = None
        self._model_format: str | None = None
        self._device = torch.device("cpu")
        self._precision = "fp32"
        self._compile = "off"
        self._attention = DEFAULT_ATTENTION
        self._config: dict[str, int] | None = None

    def version(self) -> str:
        """The torch package version, e.g. ``"2.13.0+cpu"``."""
        return torch.__version__

    # ---- settings ------------------------------------------------------------------------

    def _resolve_device(self) -> torch.device:
        device = self.settings.device
        if device == "cpu" or (device == "auto" and not torch.cuda.is_available()):
            return torch.device("cpu")
        if not torch.cuda.is_available():  # device "gpu"
            raise BackendError(
                f"device 'gpu' needs CUDA, but this torch ({torch.__version__}) sees no "
                "CUDA device. Install a CUDA build of torch on a machine with a GPU, or "
                "use device 'cpu' or 'auto'."
            )
        return torch.device("cuda")

    def _apply_settings(self) -> None:
        """Check the attention option; set torch's thread pools (0 = torch's default)."""
        s = self.settings
        self._attention = self.options.attn_implementation
        self._precision = self.options.precision
        self._compile = self.options.compile
        if s.intra_op_threads > 0:
            torch.set_num_threads(s.intra_op_threads)
        if s.inter_op_threads > 0 and torch.get_num_interop_threads() != s.inter_op_threads:
            try:
                torch.set_num_interop_threads(s.inter_op_threads)
            except RuntimeError:
                # torch allows this once per process, before any parallel work; a second
                # backend in the same process keeps the pool it finds (describe() says so).
                warnings.warn(
                    f"pytorch backend: cannot change inter-op threads to "
                    f"{s.inter_op_threads} in this process; keeping "
                    f"{torch.get_num_interop_threads()}",
                    RuntimeWarning,
                    stacklevel=3,
                )

    # ---- loading -------------------------------------------------------------------------

    def load(self, model_path: Path) -> None:
        """Load a Hugging Face checkpoint dir (or its ``model.safetensors``) or a state dict.

        State dict files: see :data:`backends.formats.STATE_DICT_SUFFIXES` (MLPerf's
        ``model.pytorch`` among them).
        """
        path = Path(model_path)
        self._apply_settings()
        device = self._resolve_device()
        accepted = (
            "Pass a Hugging Face checkpoint directory (config.json + model.safetensors) or a "
            f"state dict file ({', '.join(formats.STATE_DICT_SUFFIXES)})."
        )
        if not path.exists() and path.suffix.lower() in formats.STATE_DICT_SUFFIXES:
            raise BackendError(
                f"PyTorch state dict {path} does not exist. Fetch it with "
                "`make model MODEL=bert-large-fp32-pytorch BACKEND=pytorch`, or pass the "
                "path of an existing file."
            )
        try:
            fmt = formats.detect_format(path)
        except formats.ModelFormatError as exc:
            raise BackendError(f"{exc}. {accepted}") from None
        if fmt == formats.HF:
            model = self._load_hf(formats.checkpoint_dir(path))
        elif fmt == formats.PYTORCH:
            model = model_from_state_dict(path, self._attention)
        else:
            raise BackendError(f"{path} is a {fmt} model, which this backend does not read. "
                               + accepted)
        self._model = model.to(device).eval()
        if self._compile == "on":
            self._model = torch.compile(self._model, dynamic=True)
        self._device, self._model_path = device, path
        self._model_format = "state-dict" if fmt == formats.PYTORCH else fmt
        self._config = {k: getattr(model.config, v) for k, v in CONFIG_SUMMARY.items()}
        # what transformers actually built (it may fall back from the one asked for)
        self._attention = model.config._attn_implementation

    def _load_hf(self, hf_dir: Path) -> BertForQuestionAnswering:
        model_type = read_hf_config(hf_dir).get("model_type")
        if model_type != "bert":
            raise BackendError(
                f"{hf_dir}/config.json has model_type {model_type!r}; this backend runs BERT "
                "question-answering checkpoints (model_type 'bert')"
            )
        weights = hf_dir / "model.safetensors"
        if weights.is_file():
            check_safetensors(weights)
        try:
            model, info = BertForQuestionAnswering.from_pretrained(
                hf_dir, local_files_only=True, dtype=torch.float32,
                attn_implementation=self._attention, output_loading_info=True,
            )
        # transformers reports a bad config or weights with many exception types (OSError,
        # ValueError, TypeError, KeyError, safetensors' own...): the checkpoint is unusable.
        except Exception as exc:
            text = str(exc)
            reason = (f"refused: loading it would run code ({torch_refusal(text)})"
                      if "Weights only load failed" in text
                      else without_unsafe_advice(text) or one_line(exc))
            raise BackendError(
                f"cannot load a BertForQuestionAnswering from {hf_dir}: {reason}"
            ) from None
        unexpected = {k for k in info["unexpected_keys"] if not HARMLESS_EXTRA_KEYS.match(k)}
        check_keys(hf_dir, set(info["missing_keys"]), unexpected,
                   {str(k) for k in info["mismatched_keys"]})
        return model

    # ---- inference -----------------------------------------------------------------------

    def predict(self, batch: FeatureBatch) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(start_logits, end_logits)``, float32 ``[B, S]`` (C-contiguous)."""
        if self._model is None:
            raise BackendError("pytorch backend: call load() before predict()")
        arrays = batch.arrays()
        shape = np.shape(arrays[0])
        # from_numpy shares memory: free when the harness already holds int64
        ids, mask, segments = (
            torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64)).to(self._device)
            for a in arrays
        )
        try:
            with torch.inference_mode(), torch.autocast(
                    self._device.type, dtype=torch.bfloat16, enabled=self._precision == "bf16"):
                out = self._model(input_ids=ids, attention_mask=mask, token_type_ids=segments)
        except (RuntimeError, IndexError) as exc:  # out-of-range ids, too-long sequence...
            raise BackendError(
                f"PyTorch failed on a batch of shape {shape} with {self._model_path}: {exc}"
            ) from exc
        return tuple(  # type: ignore[return-value]
            np.ascontiguousarray(t.float().cpu().numpy(), dtype=np.float32)
            for t in (out.start_logits, out.end_logits)
        )

    # ---- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        """Drop the model (its memory goes with the last reference)."""
        self._model = None

    def describe(self) -> dict[str, Any]:
        """Base description plus model path, config, device, threads and attention kernel."""
        info = super().describe()
        info.update(
            model_path=str(self._model_path) if self._model_path else None,
            model_format=self._model_format,
            config=self._config,
            device=str(self._device),
            intra_op_threads=torch.get_num_threads(),  # in use; settings hold what was asked
            inter_op_threads=torch.get_num_interop_threads(),
            attn_implementation=self._attention,
            torch_version=torch.__version__,
            transformers_version=transformers.__version__,
            dtype="float32",
            precision=self._precision,
            compile=self._compile,
        )
        return info


# ---- checkpoint files ----------------------------------------------------------------------


def one_line(exc: BaseException) -> str:
    """An exception's message on one line: the CLI prints errors as one line."""
    return " ".join(str(exc).split()) or type(exc).__name__


def read_hf_config(hf_dir: Path) -> dict[str, Any]:
    """A checkpoint's ``config.json`` as a dict; :class:`BackendError` naming the file when
    it cannot be read, is not JSON or not a JSON object."""
    path = Path(hf_dir) / formats.HF_CONFIG
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BackendError(f"{path}: cannot read ({exc.strerror or one_line(exc)})") from None
    except UnicodeDecodeError as exc:
        raise BackendError(f"{path}: not a text file (byte {exc.start} is not UTF-8)") from None
    except json.JSONDecodeError as exc:
        raise BackendError(
            f"{path}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    if not isinstance(config, dict):
        raise BackendError(
            f"{path}: expected a JSON object of model settings, found a JSON "
            f"{type(config).__name__}"
        )
    return config


def check_safetensors(path: Path) -> None:
    """Refuse a truncated or garbled ``.safetensors`` file before a framework reads it.

    Opening it parses the header and checks that the tensors' offsets cover the file
    exactly (memory-mapped: nothing is loaded). Flipped bytes inside tensor data are not
    seen: the format keeps no checksum.
    """
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            handle.keys()
    except Exception as exc:  # SafetensorError derives from Exception only
        raise BackendError(
            f"{path}: corrupt or truncated safetensors file ({one_line(exc)})"
        ) from None
