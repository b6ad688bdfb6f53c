"""Read a BERT QA state dict safely and build the model it describes (MLPerf ``model.pytorch``).

MLPerf's file is ``BertForQuestionAnswering.state_dict()`` as written by transformers 2.x,
with no config beside it, so the config is read off the tensor shapes: the real 24x1024
BERT-Large and few-layer stand-ins with the real hidden sizes load through the same path.
Files are read with ``torch.load(weights_only=True)`` (or as safetensors): a model file must
never be able to run code. Old key spellings are mapped to transformers 5's; any other
missing or left-over weight is an error, never a silent random init. :func:`read_state_dict`
is the project's one state-dict reader (the converters use it too) and needs only torch;
transformers is imported when a model is built.
"""

from __future__ import annotations

import contextlib
import pickle
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from backends.base import BackendError
from backends.formats import BERT_HEAD_SIZE, HF_CONFIG, config_beside
from backends.model_safety import torch_refusal, without_unsafe_advice

if TYPE_CHECKING:
    from transformers import BertConfig, BertForQuestionAnswering

# Keys old files have that transformers 5's QA model does not need: transformers 2.x wrote
# the pooler (QA models no longer build one), 3.x-4.30 saved the position_ids buffer, some
# 4.x files the token_type_ids buffer (both are rebuilt at construction). The ``bert.``
# prefix is optional because from_pretrained reports keys without it.
HARMLESS_EXTRA_KEYS = re.compile(
    r"^(bert\.)?(pooler\.dense\.(weight|bias)|embeddings\.(position_ids|token_type_ids))$"
)
LAYER_KEY = re.compile(r"^bert\.encoder\.layer\.(\d+)\.")
SHOWN_KEYS = 5  # how many offending keys an error message lists


def some_keys(keys: set[str] | list[str]) -> str:
    """The first few keys, sorted, and how many more there are."""
    ordered = sorted(keys)
    more = f" (+{len(ordered) - SHOWN_KEYS} more)" if len(ordered) > SHOWN_KEYS else ""
    return ", ".join(ordered[:SHOWN_KEYS]) + more


def modern_key(key: str) -> str:
    """pytorch-pretrained-bert and TF conversions named LayerNorm parameters gamma/beta."""
    return re.sub(r"LayerNorm\.(gamma|beta)$",
                  lambda m: "LayerNorm." + {"gamma": "weight", "beta": "bias"}[m.group(1)], key)


def check_keys(path: Path, missing: set[str], unexpected: set[str], mismatched: set[str]) -> None:
    """Raise naming a few keys of each kind when the weights do not fit the model."""
    problems = [
        f"{label} {len(keys)} keys: {some_keys(keys)}"
        for label, keys in (("missing", missing), ("unexpected", unexpected),
                            ("shape mismatch in", mismatched)) if keys
    ]
    if problems:
        raise BackendError(
            f"{path} does not fit BertForQuestionAnswering: {'; '.join(problems)}. "
            "Expected the keys of transformers' BertForQuestionAnswering.state_dict()."
        )


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Load ``path`` without running code; return its tensors under today's key names.

    ``.safetensors`` files are read as such; anything else with ``torch.load(weights_only)``.
    """
    try:
        if Path(path).suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            with warnings.catch_warnings():  # it advises torch.jit.load, which runs the program
                warnings.filterwarnings("ignore", message=".*TorchScript archive")
                # "please file an issue": torch's note on pickle protocols, not the user's task
                warnings.filterwarnings("ignore", message=".*Detected pickle protocol")
                state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's message advises loading unsafely or allowlisting: name only what it refused
        if "GLOBAL " in str(exc):
            raise BackendError(
                f"{path} holds objects other than tensors, and loading it would run code "
                f"({torch_refusal(str(exc))}); refused. A model file must be a plain state "
                "dict: save model.state_dict(), not the model or a training checkpoint."
            ) from exc
        raise BackendError(  # garbage, a truncated file, or a pickle torch cannot vouch for
            f"cannot read {path} as a PyTorch state dict ({torch_refusal(str(exc))}): it is "
            "corrupt or truncated, or a pickle that would run code; refused. A model file must "
            "be a plain state dict saved with torch.save(model.state_dict())."
        ) from exc
    except Exception as exc:  # truncated zip, not a torch file at all...
        text = str(exc)
        if "TorchScript archive" in text:
            raise BackendError(
                f"{path} is a TorchScript archive, a program: loading it would run its code; "
                "refused. A model file must be a plain state dict: save model.state_dict()."
            ) from exc
        if "legacy .tar format" in text:
            raise BackendError(
                f"{path} is in PyTorch's legacy tar format, which torch reads only by "
                "unpickling arbitrary objects; refused. Use a state dict saved by torch 1.6 or "
                "later, or .safetensors."
            ) from exc
        first = without_unsafe_advice(text) or type(exc).__name__
        raise BackendError(
            f"cannot read {path} as a PyTorch state dict: {first}. The file may be corrupt "
            "or truncated; fetch it again."
        ) from exc
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        bad = ([f"{k!r}: {type(v).__name__}" for k, v in state.items()
                if not isinstance(v, torch.Tensor)] if isinstance(state, Mapping) else [])
        raise BackendError(
            f"{path} is not a plain state dict (a mapping of names to tensors); it holds "
            f"{type(state).__name__}" + (f" with {some_keys(bad)}" if bad else "")
            + ". Save model.state_dict()."
        )
    return {modern_key(k): v for k, v in state.items()}


def config_from_state_dict(
    state: Mapping[str, torch.Tensor], path: Path, attn_implementation: str
) -> BertConfig:
    """A BERT config read off tensor shapes (sizes in units, layers counted from key names).

    Attention heads and the activation are not in the shapes: they come from a
    ``config.json`` (or, heads only, ``bert_config.json``) beside the file when there is
    one, else BERT's 64-wide heads and exact (erf) GELU, as in MLPerf's bert_config.json.
    """
    from transformers import BertConfig

    beside, beside_file = config_beside(path)

    def shape(key: str) -> tuple[int, ...]:
        if key not in state:
            raise BackendError(
                f"{path} has no {key!r}, so it is not a BertForQuestionAnswering state dict "
                f"(its keys include: {some_keys(list(state))})"
            )
        return tuple(state[key].shape)

    vocab, hidden = shape("bert.embeddings.word_embeddings.weight")
    layer_ids = {int(m.group(1)) for key in state if (m := LAYER_KEY.match(key))}
    if not layer_ids:
        raise BackendError(f"{path} has no bert.encoder.layer.N.* keys: no encoder layers")
    heads = beside.get("num_attention_heads")
    if heads is None and hidden % BERT_HEAD_SIZE:
        raise BackendError(
            f"{path}: hidden size {hidden} is not a multiple of BERT's head size "
            f"{BERT_HEAD_SIZE}, so the number of attention heads cannot be inferred; put a "
            f"{HF_CONFIG} with num_attention_heads beside it"
        )
    heads = int(heads or hidden // BERT_HEAD_SIZE)
    if heads <= 0 or hidden % heads:
        raise BackendError(f"{beside_file}: {heads} attention heads do not divide the hidden "
                           f"size {hidden} of {path}")
    hf_config = beside_file is not None and beside_file.name == HF_CONFIG
    return BertConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        # max+1, not len: a gap in the layer numbers then shows up as missing keys
        num_hidden_layers=max(layer_ids) + 1,
        num_attention_heads=heads,
        intermediate_size=shape("bert.encoder.layer.0.intermediate.dense.weight")[0],
        max_position_embeddings=shape("bert.embeddings.position_embeddings.weight")[0],
        type_vocab_size=shape("bert.embeddings.token_type_embeddings.weight")[0],
        # exact (erf) GELU, as in MLPerf's bert_config.json, unless config.json says otherwise
        hidden_act=str(beside.get("hidden_act", "gelu")) if hf_config else "gelu",
        attn_implementation=attn_implementation,
    )


def _no_init_weights() -> contextlib.AbstractContextManager:
    """Skip random init (~10 s for BERT-Large on 2 cores): every weight is loaded after."""
    try:
        from transformers.initialization import no_init_weights
    except ImportError:  # a transformers without it: still correct, only slower
        return contextlib.nullcontext()
    return no_init_weights()


def model_from_state_dict(path: Path, attn_implementation: str) -> BertForQuestionAnswering:
    """Read ``path`` (see :func:`read_state_dict`) into a fp32 ``BertForQuestionAnswering``."""
    from transformers import BertForQuestionAnswering

    state = read_state_dict(path)
    config = config_from_state_dict(state, path, attn_implementation)
    with _no_init_weights():
        model = BertForQuestionAnswering(config)
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    unexpected = {k for k in set(state) - set(want) if not HARMLESS_EXTRA_KEYS.match(k)}
    state = {k: v.float() for k, v in state.items() if k in want}
    mismatched = {f"{k} {list(v.shape)} vs {list(want[k])}"
                  for k, v in state.items() if tuple(v.shape) != want[k]}
    check_keys(path, set(want) - set(state), unexpected, mismatched)
    model.load_state_dict(state, strict=True)
    return model
