"""Published anchors: one calibrates the compute efficiency, the others check the model.

Every throughput figure of WAFER_FACTS.md (ALCF user guides, Cerebras) is an :class:`Anchor`:
the workload as a named architecture, the spec and overrides it ran on, the mode, and the
published value. :func:`calibrate` finds the efficiency that makes the calibration anchor
(BERT-Large MSL128 training on one CS-2, 7,023 samples/s, ALCF, R1.8.0 PyTorch) come out
exactly; the presets carry that value. :func:`anchor_table` models every anchor with the
presets as they are and gives published, modelled and their ratio.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from backends.wafer.plan import PlanOptions, plan
from backends.wafer.shapes import named
from backends.wafer.spec import load_spec


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
    overrides: tuple[tuple[str, Any], ...] = ()
    role: str = "check"
    note: str = ""

    @property
    def value(self) -> float:
        low, high = self.published
        return (low + high) / 2

    def model(self, efficiency: float | None = None) -> tuple[float, Any]:
        """The modelled figure and its plan (with the presets' efficiency by default)."""
        overrides = dict(self.overrides)
        if efficiency is not None:
            overrides["compute_efficiency"] = efficiency
        spec = load_spec(self.spec, overrides)
        result = plan(named(self.arch), spec, PlanOptions(mode=self.mode,
                                                          training=self.training))
        figure = 1.0 / result.latency_s if self.unit == "tokens/s" else result.throughput
        return figure, result


ANCHORS: tuple[Anchor, ...] = (
    Anchor("bert-large-msl128-train-cs2-r18-pt", "BERT-Large MSL128 training, batch 1024",
           "1 CS-2, R1.8.0 PyTorch, pipelined", (7023, 7023), "samples/s",
           "ALCF user guide (2023)", "bert-large-msl128", "wse2", "pipelined", True,
           role="calibration"),
    Anchor("bert-large-msl128-train-cs2-r18-tf", "BERT-Large MSL128 training, batch 1024",
           "1 CS-2, R1.8.0 TensorFlow, pipelined", (6400, 6400), "samples/s",
           "ALCF user guide (2023)", "bert-large-msl128", "wse2", "pipelined", True,
           note="same machine and workload as the calibration anchor, other framework"),
    Anchor("bert-large-msl128-train-cs2-r203", "BERT-Large MSL128 training, batch 1024",
           "1 CS-2, R2.0.3 PyTorch", (4040, 4040), "samples/s", "ALCF user guide",
           "bert-large-msl128", "wse2", "pipelined", True,
           note="a later software release, 42% slower: the model has no software term"),
    Anchor("bert-large-msl128-eval-cs3", "BERT-Large MSL128 eval (forward only)",
           "1 CS-3, R2.10, weight streaming", (6700, 7500), "samples/s",
           "ALCF user guide (2025)", "bert-large-msl128", "wse3", "streaming",
           note="modelled at the amortising batch; the WSE-3's 8 fp16 lanes per core are "
                "third-party and its clock undisclosed"),
    Anchor("gptj-6b-train-2cs2-r18", "GPT-J 6B training, 2048 tokens",
           "2 CS-2, R1.8, weight streaming", (27.5, 27.5), "samples/s", "ALCF",
           "gptj-6b", "wse2", "streaming", True, overrides=(("systems", 2),)),
    Anchor("gptj-6b-train-2cs2-r203", "GPT-J 6B training, 2048 tokens",
           "2 CS-2, R2.0.3, weight streaming", (43.7, 43.7), "samples/s", "ALCF",
           "gptj-6b", "wse2", "streaming", True, overrides=(("systems", 2),)),
    Anchor("fc-mnist-train-cs2", "FC-MNIST training, batch 256", "1 CS-2, R1.5, pipelined",
           (479_000, 479_000), "samples/s", "ALCF", "fc-mnist", "wse2", "pipelined", True,
           note="the published run is bound by the host's input pipeline, which the model "
                "does not have; the model is bound by host I/O bandwidth"),
    Anchor("llama-3.1-8b-decode-cs3", "Llama 3.1 8B inference, one stream",
           "1 CS-3, weights resident", (1800, 1800), "tokens/s", "Cerebras blog (2024)",
           "llama-3.1-8b", "wse3", "pipelined",
           note="one decode step as a pipelined sample (forced: auto streams >1B); tokens/s "
                "= 1 / latency, which the 0.4 ms host round trip dominates"),
    Anchor("llama-3.1-70b-decode-4cs3", "Llama 3.1 70B inference, one stream",
           "4 CS-3, weights resident", (450, 450), "tokens/s", "Cerebras blog (2024)",
           "llama-3.1-70b", "wse3", "pipelined",
           overrides=(("grid_y", 4 * 1172), ("sram_usable_fraction", 1.0)),
           note="4 wafers as one pipeline (grid_y x 4, fabric hops between wafers free); "
                "fits only with all SRAM usable (sram_usable_fraction=1)"),
)


def calibration_anchor() -> Anchor:
    return next(a for a in ANCHORS if a.role == "calibration")


def calibrate(anchor: Anchor | None = None) -> float:
    """The compute efficiency at which ``anchor`` is modelled exactly (compute-bound
    throughput is proportional to it; two rounds absorb any rounding of core counts)."""
    anchor = anchor or calibration_anchor()
    efficiency = 0.25
    for _ in range(3):
        figure, _ = anchor.model(efficiency)
        efficiency *= anchor.value / figure
    return efficiency


def anchor_table() -> list[dict[str, Any]]:
    """Every anchor: published, modelled (presets as they are), ratio modelled/published."""
    rows = []
    for anchor in ANCHORS:
        figure, result = anchor.model()
        rows.append({
            "anchor": anchor.name, "workload": anchor.workload, "system": anchor.system,
            "published": anchor.published, "unit": anchor.unit, "modelled": figure,
            "ratio": figure / anchor.value, "role": anchor.role, "mode": result.mode,
            "bound": result.bound, "source": anchor.source, "note": anchor.note,
        })
    return rows


def anchor_text() -> str:
    lines = [f"{'anchor':36s} {'published':>13s} {'modelled':>11s} {'ratio':>6s}  role"]
    for row in anchor_table():
        low, high = row["published"]
        pub = f"{low:,.0f}" if low == high else f"{low:,.0f}-{high:,.0f}"
        if low < 100:
            pub = f"{low:,.1f}"
        lines.append(f"{row['anchor']:36s} {pub:>13s} {row['modelled']:11,.1f} "
                     f"{row['ratio']:6.2f}  {row['role']} ({row['unit']}, {row['mode']})")
    return "\n".join(lines) + "\n"
