"""BERT SQuAD weights in Google's TF checkpoint naming, and the PyTorch (transformers) naming.

The canonical form used by every conversion is a dict of float32 numpy arrays keyed by the
variable names of Google's ``run_squad.py`` checkpoints (MLPerf's ``model.ckpt-5474``)::

    bert/embeddings/word_embeddings              [vocab, hidden]
    bert/embeddings/{token_type,position}_embeddings
    bert/embeddings/LayerNorm/{gamma,beta}       [hidden]
    bert/encoder/layer_N/attention/self/{query,key,value}/{kernel,bias}
    bert/encoder/layer_N/attention/output/dense/{kernel,bias}
    bert/encoder/layer_N/attention/output/LayerNorm/{gamma,beta}
    bert/encoder/layer_N/intermediate/dense/{kernel,bias}
    bert/encoder/layer_N/output/dense/{kernel,bias}
    bert/encoder/layer_N/output/LayerNorm/{gamma,beta}
    bert/pooler/dense/{kernel,bias}              (in every BertModel checkpoint; unused by QA)
    cls/squad/output_weights [2, hidden], cls/squad/output_bias [2]

TF dense kernels are ``[in, out]``; PyTorch ``Linear.weight`` is ``[out, in]``, so kernels
are transposed. ``cls/squad/output_weights`` is already ``[2, hidden]`` (run_squad multiplies
with ``transpose_b=True``) and maps to ``qa_outputs.weight`` unchanged. PyTorch names are
those of transformers' ``BertForQuestionAnswering`` (2.x, which made MLPerf's
``model.pytorch``, and 5.x alike).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np

from backends import formats
from models.export_onnx import ModelExportError

GELUS = ("erf", "tanh")
# transformers' activation names for Google's two GELUs (exact erf, and the tanh formula
# that Google's and NVIDIA's TF modeling.py use).
HF_ACT_FOR_GELU = {"erf": "gelu", "tanh": "gelu_new"}
GELU_FOR_HF_ACT = {"gelu": "erf", "gelu_new": "tanh", "gelu_pytorch_tanh": "tanh"}

_LAYER_PARTS = (
    "attention/self/query", "attention/self/key", "attention/self/value",
    "attention/output/dense", "intermediate/dense", "output/dense",
)
_LAYER_NORMS = ("attention/output/LayerNorm", "output/LayerNorm")


class ModelConversionError(ModelExportError):
    """A model could not be read, converted or validated; the message names file and fix."""


@dataclasses.dataclass(frozen=True)
class BertShape:
    """Sizes read from the weights (counts); ``heads`` comes from a config or the caller."""

    layers: int
    hidden: int
    heads: int
    intermediate: int
    vocab_size: int
    max_positions: int
    type_vocab_size: int


def expected_google_names(layers: int, pooler: bool = False) -> list[str]:
    """Every variable name a BERT SQuAD checkpoint with ``layers`` layers must hold."""
    names = [f"bert/embeddings/{e}_embeddings" for e in ("word", "token_type", "position")]
    names += ["bert/embeddings/LayerNorm/gamma", "bert/embeddings/LayerNorm/beta"]
    for n in range(layers):
        prefix = f"bert/encoder/layer_{n}/"
        names += [prefix + p + s for p in _LAYER_PARTS for s in ("/kernel", "/bias")]
        names += [prefix + p + s for p in _LAYER_NORMS for s in ("/gamma", "/beta")]
    if pooler:
        names += ["bert/pooler/dense/kernel", "bert/pooler/dense/bias"]
    return names + ["cls/squad/output_weights", "cls/squad/output_bias"]


def count_layers(names: object) -> int:
    """Number of encoder layers: one more than the highest ``layer_N`` / ``layer.N`` index."""
    found = [int(m.group(1)) for n in names if (m := re.search(r"layer[_.](\d+)[/.]", str(n)))]
    return max(found) + 1 if found else 0


def bert_shape(weights: dict[str, np.ndarray], heads: int) -> BertShape:
    """Sizes of the model in ``weights`` (Google names); raise naming any missing variable."""
    layers = count_layers(weights)
    missing = [n for n in expected_google_names(layers) if n not in weights]
    if layers == 0 or missing:
        more = f" (+{len(missing) - 6} more)" if len(missing) > 6 else ""
        shown = ", ".join(missing[:6]) + more
        raise ModelConversionError(
            "not a BERT SQuAD model: "
            + (f"missing {shown}" if missing else "no bert/encoder/layer_N variables")
            + f". Found {len(weights)} tensors, e.g. {', '.join(sorted(weights)[:4]) or 'none'}."
        )
    vocab, hidden = weights["bert/embeddings/word_embeddings"].shape
    if heads <= 0 or hidden % heads:
        raise ModelConversionError(f"{heads} attention heads do not divide hidden size {hidden}")
    return BertShape(
        layers=layers,
        hidden=int(hidden),
        heads=int(heads),
        intermediate=int(weights["bert/encoder/layer_0/intermediate/dense/bias"].shape[0]),
        vocab_size=int(vocab),
        max_positions=int(weights["bert/embeddings/position_embeddings"].shape[0]),
        type_vocab_size=int(weights["bert/embeddings/token_type_embeddings"].shape[0]),
    )


def is_model_variable(name: str) -> bool:
    """True for BERT/SQuAD weights; False for optimizer slots, step counters, loss scales."""
    if not name.startswith(("bert/", "cls/squad/")):
        return False
    return not re.search(r"(adam_[mv]|Adam(_\d+)?|LAMB\w*|Momentum|global_step)$", name)


# ---- Google <-> PyTorch names -------------------------------------------------------------


def google_to_torch_name(name: str) -> str:
    """``bert/encoder/layer_3/output/dense/kernel`` -> ``bert.encoder.layer.3.output.dense.weight``

    (kernels and LayerNorm gammas become ``weight``, betas ``bias``).
    """
    if name == "cls/squad/output_weights":
        return "qa_outputs.weight"
    if name == "cls/squad/output_bias":
        return "qa_outputs.bias"
    parts = re.sub(r"layer_(\d+)", r"layer.\1", name).split("/")
    last = {"kernel": "weight", "gamma": "weight", "beta": "bias"}.get(parts[-1], parts[-1])
    parts[-1] = last
    if last.endswith("_embeddings"):
        parts.append("weight")
    return ".".join(parts)


def google_to_state_dict(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """PyTorch state dict arrays (``[out, in]`` weights) from Google-named arrays."""
    return {
        google_to_torch_name(name): np.ascontiguousarray(a.T if name.endswith("/kernel") else a)
        for name, a in weights.items()
    }


def state_dict_to_google(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Google-named arrays from a ``BertForQuestionAnswering`` state dict (numpy values).

    Accepts both transformers naming generations (``LayerNorm.weight`` or ``.gamma``) and
    ignores buffers (``position_ids``). Raises listing the keys it cannot place.
    """
    torch_to_google: dict[str, str] = {}
    layers = count_layers(state)
    for name in expected_google_names(layers, pooler=True):
        torch_to_google[google_to_torch_name(name)] = name
    out: dict[str, np.ndarray] = {}
    unknown = []
    for key, value in state.items():
        key = re.sub(r"^(module\.|model\.)", "", key)
        key = re.sub(r"\.gamma$", ".weight", re.sub(r"\.beta$", ".bias", key))
        if key.endswith(("position_ids", "token_type_ids")):
            continue  # buffers, not weights
        name = torch_to_google.get(key)
        if name is None:
            unknown.append(key)
            continue
        array = np.asarray(value, dtype=np.float32)
        out[name] = np.ascontiguousarray(array.T if name.endswith("/kernel") else array)
    if unknown:
        raise ModelConversionError(
            f"state dict keys that are not BertForQuestionAnswering weights: "
            f"{', '.join(unknown[:6])}{' ...' if len(unknown) > 6 else ''}"
        )
    return out


def read_state_dict(path: Path) -> dict[str, np.ndarray]:
    """Float32 arrays of a state dict file or of a Hugging Face directory's weights, read
    by the PyTorch backend's reader (never running code)."""
    from backends.pytorch_state_dict import read_state_dict as read_tensors

    if path.is_dir():
        found = [path / n for n in ("model.safetensors", "pytorch_model.bin")
                 if (path / n).is_file()]
        if not found:
            raise ModelConversionError(f"{path} has no model.safetensors or pytorch_model.bin")
        path = found[0]
    return {k: v.detach().float().numpy() for k, v in read_tensors(path).items()}


def config_beside(path: Path) -> dict:
    """The config next to/inside ``path`` (see :func:`backends.formats.config_beside`)."""
    return formats.config_beside(path)[0]


def resolve_heads(heads: int | None, hidden: int, config: dict) -> tuple[int, str]:
    """Attention heads and where the number came from (for messages)."""
    if heads:
        return heads, "--heads"
    if config.get("num_attention_heads"):
        return int(config["num_attention_heads"]), "config"
    size = formats.BERT_HEAD_SIZE
    return max(1, hidden // size), f"guessed as hidden/{size}"
