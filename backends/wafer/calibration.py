"""Published anchors: two calibrate the efficiencies, the others check the model.

Every throughput figure of WAFER_FACTS.md (ALCF user guides, Cerebras) is an :class:`Anchor`:
the workload as a named architecture, the spec, release and overrides it ran on, the mode,
and the published value. Two anchors are calibrations (:data:`CALIBRATIONS`): BERT-Large
MSL128 training on one CS-2 sets ``pipelined_efficiency`` (R1.7.1, pipelined, 7,023
samples/s) and ``streaming_efficiency`` (R2.0.3, weight streaming, ~4,040 samples/s).
:func:`anchor_table` models every anchor with the presets as they are, as a band (low /
expected / high), and gives the ratio modelled (expected) / published; a check is *met*
when the band overlaps the published figure or range widened by :data:`TOLERANCE`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from backends.wafer.plan import plan
from backends.wafer.planned import BANDS, Plan, PlanOptions
from backends.wafer.shapes import named
from backends.wafer.spec import load_spec

TOLERANCE = 1.5  # a check is met within this factor of its published figure or range
CALIBRATIONS = {"pipelined": "bert-large-msl128-train-cs2-r171-pt",
                "streaming": "bert-large-msl128-train-cs2-r203-ws"}


@dataclasses.dataclass(frozen=True)
class Anchor:
    name: str
    workload: str
    system: str
    published: tuple[float, float]  # (low, high); equal for a single figure
    unit: str  # "samples/s" or "tokens/s" (one stream: 1 / latency)
    source: str
    arch: str
    spec: str
    mode: str = "auto"
    training: bool = False
    release: str = "1.6"
    wafers: int = 1
    loop_s: float = 0.0  # > 0: the published rate is over a loop this short, start-up inside
    overrides: tuple[tuple[str, Any], ...] = ()
    note: str = ""

    @property
    def value(self) -> float:
        low, high = self.published
        return (low + high) / 2

    @property
    def role(self) -> str:
        return "calibration" if self.name in CALIBRATIONS.values() else "check"

    def _plan(self, band: str, overrides: dict[str, Any] | None = None) -> Plan:
        spec = load_spec(self.spec, {**dict(self.overrides), **(overrides or {})})
        return plan(named(self.arch), spec, PlanOptions(
            mode=self.mode, training=self.training, release=self.release, band=band,
            wafers=self.wafers))

    def figure(self, result: Plan) -> float:
        """The anchor's unit from a plan; over a short loop, the weights sent at its start
        (start-up that falls inside the loop) take their share of it."""
        if self.unit == "tokens/s":
            return 1.0 / result.latency_s
        if self.loop_s:
            load = result.spec.startup_s(result.weight_bytes)["weight_load"]
            return result.throughput * max(0.0, self.loop_s - load) / self.loop_s
        return result.throughput

    def model(self, overrides: dict[str, Any] | None = None) -> tuple[float, Plan]:
        """The modelled (expected) figure and its plan, with the presets' figures."""
        result = self._plan("expected", overrides)
        return self.figure(result), result

    def band(self) -> dict[str, float]:
        """The modelled figure at each end of the band (low, expected, high)."""
        return {end: self.figure(self._plan(end)) for end in BANDS}

    def met(self, band: dict[str, float]) -> bool:
        """Whether the band overlaps the published figure (range) widened by TOLERANCE."""
        low, high = self.published
        return band["high"] >= low / TOLERANCE and band["low"] <= high * TOLERANCE


R171 = "ALCF user guide, example-programs history (R1.7.1)"
ANCHORS: tuple[Anchor, ...] = (
    Anchor("bert-large-msl128-train-cs2-r171-pt", "BERT-Large MSL128 training, batch 1024",
           "1 CS-2, R1.7.1 PyTorch, pipelined", (7023, 7023), "samples/s", R171,
           "bert-large-msl128", "wse2", "pipelined", True,
           note="calibrates pipelined_efficiency; step rates swing 6,373-8,587 (the band)"),
    Anchor("bert-large-msl128-train-cs2-r171-tf", "BERT-Large MSL128 training, batch 1024",
           "1 CS-2, R1.7.1 TensorFlow, pipelined", (6400, 6400), "samples/s",
           "ALCF user guide (2023)", "bert-large-msl128", "wse2", "pipelined", True,
           note="same machine and workload as calibration 1, other framework"),
    Anchor("bert-large-msl128-train-cs2-r203-ws", "BERT-Large MSL128 training, batch 1024",
           "1 CS-2, R2.0.3 PyTorch, weight streaming", (4040, 4040), "samples/s",
           "ALCF user guide history (R2.0.3)", "bert-large-msl128", "wse2", "auto", True,
           release="1.9", note="calibrates streaming_efficiency"),
    Anchor("bert-large-msl128-eval-cs3", "BERT-Large MSL128 eval (forward only)",
           "1 CS-3, R2.10, weight streaming", (6700, 7500), "samples/s",
           "ALCF user guide (2025)", "bert-large-msl128", "wse3", "auto", release="1.9",
           loop_s=8.0,
           note="at the amortising batch; the WSE-3's fp16 lanes (8, third-party) and clock "
                "(undisclosed) set its band; an ~8 s eval loop: the weights sent at its "
                "start count, programming precedes it"),
    Anchor("gptj-6b-train-2cs2-r171", "GPT-J 6B training, 2048 tokens",
           "2 CS-2, R1.7.1, weight streaming", (27.5, 27.5), "samples/s", R171,
           "gptj-6b", "wse2", "auto", True, overrides=(("systems", 2),)),
    Anchor("gptj-6b-train-2cs2-r203", "GPT-J 6B training, 2048 tokens",
           "2 CS-2, R2.0.3, weight streaming", (43.7, 43.7), "samples/s",
           "ALCF user guide history (R2.0.3)", "gptj-6b", "wse2", "auto", True,
           release="1.9", overrides=(("systems", 2),),
           note="1.6x the R1.7.1 run on the same systems: software the model does not have"),
    Anchor("fc-mnist-train-cs2", "FC-MNIST training, batch 256", "1 CS-2, R1.5, pipelined",
           (479_000, 479_000), "samples/s", "ALCF", "fc-mnist", "wse2", "pipelined", True,
           note="bound by the host input workers, whose rate is an assumption (no published "
                "figure): this check tests that assumption, not the wafer"),
    Anchor("llama-3.1-8b-decode-cs3", "Llama 3.1 8B inference, one stream",
           "1 CS-3, weights resident", (1800, 1800), "tokens/s", "Cerebras blog (2024)",
           "llama-3.1-8b", "wse3", "pipelined", release="auto",
           note="one decode step as a pipelined sample, the KV cache of one stream per stage "
                "in flight; tokens/s = 1 / latency, which the borrowed 0.2 ms per host "
                "transfer dominates"),
    Anchor("llama-3.1-70b-decode-4cs3", "Llama 3.1 70B inference, one stream",
           "4 CS-3, weights resident", (450, 450), "tokens/s", "Cerebras blog (2024)",
           "llama-3.1-70b", "wse3", "pipelined", release="auto",
           wafers=4, overrides=(("sram_usable_fraction", 1.0),),
           note="4 wafers as one pipeline, a host transfer out of and into each next wafer; "
                "fits only with all SRAM usable; later quoted at ~2,100 tokens/s"),
)


def anchor(name: str) -> Anchor:
    return next(a for a in ANCHORS if a.name == name)


def calibrate() -> dict[str, float]:
    """The efficiency of each mode at which its calibration anchor is modelled exactly
    (compute-bound throughput is proportional to it; rounds absorb core-count rounding).
    Pipelined first: the streaming anchor does not depend on it."""
    fitted: dict[str, float] = {}
    for mode, name in CALIBRATIONS.items():
        field = f"{mode}_efficiency"
        a = anchor(name)
        value = 0.2
        for _ in range(4):
            figure, _ = a.model({**fitted, field: value})
            value = min(1.0, value * a.value / figure)
        fitted[field] = value
    return fitted


def anchor_table() -> list[dict[str, Any]]:
    """Every anchor: published, modelled band, ratio expected/published, role, met."""
    rows = []
    for a in ANCHORS:
        figure, result = a.model()
        band = a.band()
        rows.append({
            "anchor": a.name, "workload": a.workload, "system": a.system,
            "published": a.published, "unit": a.unit, "modelled": figure, "band": band,
            "ratio": figure / a.value, "role": a.role, "met": a.met(band),
            "mode": result.mode, "release": a.release, "bound": result.bound,
            "source": a.source, "note": a.note,
        })
    return rows


def anchor_text() -> str:
    lines = [f"MODELLED figures (the presets as they are) against published ones; a check "
             f"is met when its band overlaps the published figure within {TOLERANCE}x",
             f"{'anchor':36s} {'published':>13s} {'low':>10s} {'expected':>10s} "
             f"{'high':>10s} {'ratio':>6s}  role"]
    for row in anchor_table():
        low, high = row["published"]
        digits = 1 if low < 100 else 0
        pub = f"{low:,.{digits}f}" if low == high else f"{low:,.0f}-{high:,.0f}"
        b = row["band"]
        role = row["role"] if row["role"] == "calibration" else \
            f"check, {'met' if row['met'] else 'NOT met'}"
        lines.append(f"{row['anchor']:36s} {pub:>13s} {b['low']:10,.1f} {b['expected']:10,.1f} "
                     f"{b['high']:10,.1f} {row['ratio']:6.2f}  {role} ({row['unit']}, "
                     f"{row['mode']}, release {row['release']}; {row['bound']})")
    return "\n".join(lines) + "\n"
