"""Planning without LoadGen: ``plan``, ``plan --zoo``, ``spec``, ``anchors``, ``calibrate``.

``python -m backends.wafer plan --model bert-large --spec wse2`` prints per stage the cores
(or wafer share), time and SRAM used, the mode and why, and the throughput and latency;
``--zoo`` summarises every modelzoo R1.6.0 family on each spec. The harness exposes the
same as ``python -m harness wafer ...``, where ``--model`` may also be a catalog name and
``--skip-padding`` plans at the SQuAD features' real lengths (:func:`run`'s ``resolve``
and ``lengths`` hooks).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from backends.base import BackendError
from backends.wafer.calibration import CALIBRATIONS, anchor, anchor_table, anchor_text, calibrate
from backends.wafer.plan import plan
from backends.wafer.planned import MODES, RELEASES, PlanOptions
from backends.wafer.report import plan_text
from backends.wafer.shapes import ZOO, ZOO_TABLE, Architecture, from_model
from backends.wafer.spec import DEFAULT_SPEC, FIELDS, PRECISIONS, PRESETS, load_spec


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The ``plan``, ``spec``, ``anchors`` and ``calibrate`` subcommands, on ``parser``;
    returns the ``plan`` parser (the harness adds its model-store and data options)."""
    sub = parser.add_subparsers(dest="wafer_command", required=True)
    p = sub.add_parser("plan", help="plan a model on a wafer spec (no LoadGen)",
                       description="Per stage cores, time and SRAM; the mode and why; "
                       "throughput and latency. --zoo: every modelzoo family on each spec.")
    p.add_argument("--model", default=None,
                   help=f"a named architecture ({', '.join(sorted(ZOO))}) or a model file "
                   "or directory (ONNX graph, Hugging Face config)")
    p.add_argument("--spec", action="append", default=None,
                   help=f"preset ({', '.join(PRESETS)}) or TOML file; repeatable with --zoo "
                   f"(default: {DEFAULT_SPEC}; --zoo: every preset)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help=f"override a spec field ({', '.join(FIELDS)})")
    p.add_argument("--mode", choices=MODES, default="auto")
    p.add_argument("--release", choices=RELEASES, default="auto",
                   help="modelzoo release whose modes apply: 1.6 (per config: pipelined BERT, "
                   "RoBERTa, T5...; GPT-3/GPT-J/_ws stream), 1.9 (everything streams); auto: "
                   "pipelined when the weights fit (default)")
    p.add_argument("--low-latency", action="store_true",
                   help="pipelined: one replica on the whole wafer (fastest single sample)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp16")
    p.add_argument("--seq", type=int, default=None,
                   help="padded token count (default: the model's; 384 for SQuAD models)")
    p.add_argument("--skip-padding", action="store_true",
                   help="time each SQuAD feature at its real token count")
    p.add_argument("--stream-batch", type=int, default=None,
                   help="weight-streaming batch (default: the one that amortises the stream)")
    p.add_argument("--training", action="store_true",
                   help="training step (3x forward FLOPs; the calibration anchors)")
    p.add_argument("--zoo", action="store_true",
                   help="summary for every modelzoo R1.6.0 family on each spec")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    s = sub.add_parser("spec", help="print a spec with every figure's provenance")
    s.add_argument("spec", nargs="*", default=list(PRESETS))
    s.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    sub.add_parser("anchors", help="published anchors against the modelled band (the docs' "
                   "table)")
    sub.add_parser("calibrate", help="the efficiencies that reproduce the two calibration "
                   "anchors")
    return p


def run(args: argparse.Namespace, resolve: Callable[[str], Path] | None = None,
        lengths: Callable[[], Sequence[int]] | None = None) -> int:
    """Run a parsed ``wafer`` command; ``resolve`` turns a catalog name into a model path,
    ``lengths`` gives the real token counts of the SQuAD features (``--skip-padding``)."""
    command = args.wafer_command
    if command == "spec":
        for name in args.spec:
            print("\n".join(load_spec(name, _overrides(args.set)).table()))
        return 0
    if command == "anchors":
        print(anchor_text(), end="")
        return 0
    if command == "calibrate":
        fitted = calibrate()
        for mode, name in CALIBRATIONS.items():
            a = anchor(name)
            print(f"{mode}_efficiency = {fitted[f'{mode}_efficiency']:.5f} reproduces "
                  f"{a.workload} on {a.system}: {a.value:,.0f} {a.unit} ({a.source})")
        return 0
    overrides = _overrides(args.set)
    specs = args.spec or (list(PRESETS) if args.zoo else [DEFAULT_SPEC])
    if args.zoo:
        print(zoo_text([load_spec(s, overrides) for s in specs], args.precision,
                       args.release), end="")
        return 0
    if args.model is None:
        raise BackendError("wafer plan: give --model (a named architecture or a model) or "
                           "--zoo")
    arch = _architecture(args.model, resolve)
    real = None
    if args.skip_padding:
        if lengths is None:
            raise BackendError("--skip-padding plans at the SQuAD features' real lengths: "
                               "run it as `python -m harness wafer plan`")
        real = tuple(int(n) for n in lengths())
    options = PlanOptions(args.mode, args.precision, args.seq, args.skip_padding, real,
                          args.stream_batch, args.training, args.release,
                          low_latency=args.low_latency)
    for name in specs:
        result = plan(arch, load_spec(name, overrides), options)
        print(json.dumps(result.to_json(), indent=2) if args.json else plan_text(result))
    return 0


def _architecture(model: str, resolve: Callable[[str], Path] | None) -> Architecture:
    if model in ZOO:
        return ZOO[model]
    if Path(model).exists():
        return from_model(Path(model))
    if resolve is not None:
        return from_model(resolve(model))
    raise BackendError(f"{model!r} is neither a named architecture ({', '.join(sorted(ZOO))}) "
                       "nor a model file")


def _overrides(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise BackendError(f"--set {pair!r}: expected FIELD=VALUE")
        out[key.strip()] = value.strip()
    return out


# what a zoo figure is bound by that no published figure supports
UNSUPPORTED = {"host input workers": "bound by the assumed host input rate (no published "
                                     "figure)"}


def zoo_rows(specs, precision: str = "fp16", release: str = "auto") -> list[dict]:
    """Every modelzoo family on each spec: fits pipelined?, mode chosen, samples/s, band,
    J/sample, and a flag when the figure is bound by a term with no published support."""
    rows = []
    for spec in specs:
        for name in ZOO_TABLE:
            arch = ZOO[name]
            try:
                result = plan(arch, spec, PlanOptions(precision=precision, release=release))
                flag = next((why for key, why in UNSUPPORTED.items()
                             if result.bound.startswith(key)), "")
                row = {"spec": spec.name, "model": name, "params": arch.param_count(),
                       "tokens": result.seq, "fits_pipelined": result.fits_pipelined,
                       "mode": result.mode, "samples_per_s": result.throughput,
                       "band": result.band, "joules_per_sample": result.joules_per_sample(),
                       "latency_ms": result.latency_s * 1e3, "why": result.reason,
                       "flag": flag}
            except BackendError as exc:
                row = {"spec": spec.name, "model": name, "params": arch.param_count(),
                       "tokens": arch.seq, "fits_pipelined": False, "mode": "none",
                       "samples_per_s": 0.0, "band": {}, "joules_per_sample": float("nan"),
                       "latency_ms": float("nan"), "why": str(exc), "flag": str(exc)}
            rows.append(row)
    return rows


def zoo_text(specs, precision: str = "fp16", release: str = "auto") -> str:
    lines = [f"MODELLED forward (inference) samples/s at each family's published size and "
             f"length, {precision}; release {release}; band = low-high of the compute rate; "
             "* = bound by a term with no published support"]
    current = None
    for row in zoo_rows(specs, precision, release):
        if row["spec"] != current:
            current = row["spec"]
            lines.append(f"\n{current}: {'model':18s} {'params':>9s} {'tokens':>6s} "
                         f"{'fits pipelined':>14s} {'mode':>9s} {'samples/s':>12s} "
                         f"{'band':>21s} {'J/sample':>9s} {'latency ms':>10s}")
        params = row["params"]
        size = f"{params / 1e9:.2f}B" if params >= 1e9 else (
            f"{params / 1e6:.1f}M" if params >= 1e6 else f"{params / 1e3:.0f}k")
        band = row["band"]
        span = f"{band['low']:,.0f}-{band['high']:,.0f}" if band else "-"
        lines.append(f"{'':{len(current) + 1}s} {row['model']:18s} {size:>9s} "
                     f"{row['tokens']:6d} {'yes' if row['fits_pipelined'] else 'no':>14s} "
                     f"{row['mode']:>9s} {row['samples_per_s']:12,.1f} {span:>21s} "
                     f"{row['joules_per_sample']:9.3g} {row['latency_ms']:10.3f}"
                     + (" *" if row["flag"] else ""))
    flagged = sorted({row["flag"] for row in zoo_rows(specs, precision, release)
                      if row["flag"]})
    lines.extend(f"* {why}" for why in flagged)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backends.wafer",
                                     description="Plan models on a simulated wafer-scale "
                                     "engine (see docs/wafer.md).")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except BackendError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


__all__ = ["add_arguments", "anchor_table", "main", "run", "zoo_rows", "zoo_text"]
