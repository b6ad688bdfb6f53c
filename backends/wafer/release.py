"""Execution modes by modelzoo release, as the modelzoo defines them.

``1.6`` (modelzoo R1.6.0): the mode is fixed per config -- layer pipelined for the BERT
family (fine-tuning heads included), Linformer, RoBERTa, T5, Transformer, GPT-2, FC-MNIST
and UNet; weight streaming for GPT-3, GPT-J and the ``_ws`` configs. ``1.9`` (R1.9.1 on):
pipelined mode is deprecated and every model streams. Either way a pipelined run uses one
system (R1.7.1 release notes: multi-replica pipelined is training-only, on one CS-2).
``auto``: not a release -- pipelined when the weights fit under the parameter limit.
"""

from __future__ import annotations

from backends.wafer.shapes import ZOO_TABLE

RELEASES = ("auto", "1.6", "1.9")
STREAMING_PREFIXES = ("gpt3-", "gptj-")  # R1.6.0: these configs are all ``_ws``


def release_mode(name: str, release: str) -> tuple[str | None, str]:
    """The mode ``release`` runs the named architecture in, and why; ``None`` when the
    release does not fix it (``auto``, or a model that is not a modelzoo config)."""
    if release == "1.9":
        return "streaming", "release 1.9: every model streams (pipelined deprecated from R1.9.1)"
    if release == "1.6" and name in ZOO_TABLE:
        if name.endswith("-ws") or name.startswith(STREAMING_PREFIXES):
            return "streaming", f"release 1.6: {name} is a weight-streaming (_ws) config"
        return "pipelined", f"release 1.6: {name} is a layer-pipelined config"
    return None, ""
