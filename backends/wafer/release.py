"""Execution modes by modelzoo release, as the modelzoo defines them.

``1.6`` (modelzoo R1.6.0): the mode is fixed per config -- layer pipelined for the BERT
family (fine-tuning heads included), Linformer, RoBERTa, T5, Transformer, GPT-2, FC-MNIST
and UNet; weight streaming for GPT-3, GPT-J and the ``_ws`` configs. ``1.9`` (R1.9.1 on):
pipelined mode is deprecated and every model streams. Either way a pipelined run uses one
system (R1.7.1 release notes: multi-replica pipelined is training-only, on one CS-2).
``auto``: not a release -- pipelined when the weights fit under the parameter limit.
"""

from __future__ import annotations

from backends.base import BackendError
from backends.wafer.planned import RELEASES as RELEASES  # re-exported: callers import it here
from backends.wafer.planned import PlanOptions
from backends.wafer.shapes import ZOO_TABLE, Architecture
from backends.wafer.spec import WaferSpec

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


def choose_mode(arch: Architecture, spec: WaferSpec, options: PlanOptions, fits: bool,
                fit_note: str) -> tuple[str, str]:
    """The mode ``arch`` runs in on ``spec`` -- by release, by size, or forced -- and why;
    ``fits``: whether one replica fits in SRAM layer pipelined (``fit_note``: how)."""
    params = arch.param_count()
    limit = spec.pipeline_param_limit
    by_release, why = release_mode(arch.name, options.release)
    one_system = (f"a pipelined run uses one system (modelzoo R1.7.1 release notes), not "
                  f"{spec.systems}")
    if options.mode == "auto" and by_release == "streaming":
        mode, reason = "streaming", why
    elif options.mode == "auto" and by_release == "pipelined":
        if not fits or spec.systems > 1:
            raise BackendError(f"{arch.name} is a layer-pipelined config in release "
                               f"{options.release} but "
                               + (one_system if fits else f"does not fit on {spec.name}: "
                                  f"{fit_note}"))
        mode, reason = "pipelined", f"{why}; {fit_note}"
    elif options.mode == "auto" and spec.systems > 1 and options.release != "auto":
        mode, reason = "streaming", f"release {options.release}: {one_system}"
    elif options.mode == "auto":
        if params > limit:
            mode, reason = "streaming", (f"{params / 1e9:.2f}B parameters exceed the ~"
                                         f"{limit / 1e9:g}B layer-pipelined limit (published)")
        elif not fits:
            mode, reason = "streaming", f"does not fit in SRAM layer pipelined: {fit_note}"
        else:
            mode, reason = "pipelined", (f"{params / 1e6:,.1f}M parameters (limit "
                                         f"{limit / 1e9:g}B) and {fit_note}")
    elif options.mode == "pipelined":
        if not fits:
            raise BackendError(f"{arch.name} cannot run layer pipelined on {spec.name}: "
                               f"{fit_note}; use mode=auto or mode=streaming")
        if spec.systems > 1 and options.release != "auto":
            raise BackendError(f"release {options.release}: {one_system}; use "
                               "mode=streaming")
        mode, reason = "pipelined", f"forced (mode=pipelined); {fit_note}"
    else:
        mode, reason = "streaming", "forced (mode=streaming)"
    if mode == "pipelined" and spec.systems > 1:
        reason += (f"; HYPOTHETICAL: {spec.systems} systems pipelined data parallel, which "
                   "no modelzoo release runs (one system; --release 1.6 or 1.9 refuses it)")
    return mode, reason
