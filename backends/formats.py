"""Model file formats, told from a path in one place (the catalog, backends, converters).

Formats: ``onnx`` (``.onnx``), ``pytorch`` (a state dict: ``.pytorch`` as MLPerf's
``model.pytorch``, ``.pt``, ``.pth``, ``.bin`` or ``.safetensors``), ``hf`` (a Hugging Face
checkpoint directory with ``config.json``, or its ``model.safetensors``), ``tf-frozen``
(a TensorFlow frozen graph ``.pb``), ``tf-savedmodel`` (a directory with
``saved_model.pb``) and ``tf-ckpt`` (a TensorFlow checkpoint prefix, ``model.ckpt-5474``
with ``model.ckpt-5474.index`` beside it).
"""

from __future__ import annotations

import json
from pathlib import Path

from backends.base import BackendError

ONNX, PYTORCH, HF = "onnx", "pytorch", "hf"
TF_FROZEN, TF_SAVEDMODEL, TF_CKPT = "tf-frozen", "tf-savedmodel", "tf-ckpt"
FORMATS = (ONNX, PYTORCH, HF, TF_FROZEN, TF_SAVEDMODEL, TF_CKPT)
STATE_DICT_SUFFIXES = (".pytorch", ".pt", ".pth", ".bin", ".safetensors")
SUFFIXES: dict[str, str] = {
    ".onnx": ONNX, ".pb": TF_FROZEN, **{suffix: PYTORCH for suffix in STATE_DICT_SUFFIXES}
}
HF_CONFIG = "config.json"
SAVED_MODEL_FILE = "saved_model.pb"
ACCEPTED = (
    f"an .onnx file, a state dict ({', '.join(STATE_DICT_SUFFIXES)}), a .pb frozen graph, a "
    f"Hugging Face directory ({HF_CONFIG}), a SavedModel directory ({SAVED_MODEL_FILE}) or a "
    "TF checkpoint prefix (with its .index file)"
)


class ModelFormatError(BackendError):
    """The path is not a model in any known format; the message lists the accepted ones."""


def detect_format(path: Path) -> str:
    """The format of the model at ``path`` (one of :data:`FORMATS`)."""
    path = Path(path)
    if Path(f"{path}.index").is_file():
        return TF_CKPT
    if path.is_dir():
        if (path / HF_CONFIG).is_file():
            return HF
        if (path / SAVED_MODEL_FILE).is_file():
            return TF_SAVEDMODEL
        raise ModelFormatError(
            f"{path} is a directory with neither {HF_CONFIG} (Hugging Face checkpoint) nor "
            f"{SAVED_MODEL_FILE} (TensorFlow SavedModel)"
        )
    if not path.exists():
        raise ModelFormatError(f"{path} does not exist; expected {ACCEPTED}")
    if path.name == "model.safetensors" and (path.parent / HF_CONFIG).is_file():
        return HF  # the weights of a checkpoint directory
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise ModelFormatError(f"{path}: unknown model format; expected {ACCEPTED}")
    return fmt


def checkpoint_dir(path: Path) -> Path:
    """The Hugging Face checkpoint directory of ``path`` (itself, or its weights' folder)."""
    path = Path(path)
    return path if path.is_dir() else path.parent


# ---- configuration beside a model file ----------------------------------------------------

# BERT-Base/Large attention heads are 64 wide; MLPerf's weight files carry no head count.
BERT_HEAD_SIZE = 64
CONFIG_FILES = (HF_CONFIG, "bert_config.json")  # Hugging Face, then Google's


def config_beside(path: Path) -> tuple[dict, Path | None]:
    """The model config next to (or, for a directory, inside) ``path`` and its file.

    ``config.json`` (Hugging Face) is preferred to ``bert_config.json`` (Google); ``({},
    None)`` when there is neither. Google's file says ``"gelu"`` for its tanh formula, so
    read ``hidden_act`` only from ``config.json``.
    """
    folder = checkpoint_dir(path)
    for name in CONFIG_FILES:
        candidate = folder / name
        if candidate.is_file():
            try:
                config = json.loads(candidate.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise ModelFormatError(f"{candidate} is not valid JSON: {exc}") from None
            if not isinstance(config, dict):
                raise ModelFormatError(f"{candidate} is not a JSON object")
            return config, candidate
    return {}, None
