"""A test sized to the machine it runs on, and the next step after one that was not.

LoadGen must be told what to expect: Offline issues ``target_qps`` x the minimum duration
samples (a faster system ends too soon: INVALID), Server issues queries at ``target_qps``
(more than the system serves: INVALID), SingleStream and MultiStream generate queries for
twice the minimum duration at ``target_latency`` (a faster system runs out of them). A
figure written for a quiet machine is wrong on a busy one, so when neither the command line
nor the user's user.conf (nor a self-timed device) states the expectation, the run takes it
from its own warm-up, with a margin on the side that keeps the test VALID:

* Offline: twice the measured rate (errs high: the test lasts at least its minimum, even
  when the one timed warm-up call was slow);
* Server: half the measured rate (queries must not queue past the latency bound);
* SingleStream, MultiStream: half the measured latency of a query (errs low: LoadGen
  generates enough queries).

After a test, :func:`next_step` turns an INVALID verdict into one ``next:`` line saying
which setting to change, to what, computed from what was measured.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from harness.loadgen.scenarios import EXPECTATION_BOUNDS, TABLE

# Offline errs high, the others low (see the module doc); caps keep LoadGen's pre-generated
# queries in memory bounds on a backend that answers at once (the null backend).
MARGIN = {"Offline": 2.0, "Server": 0.5, "SingleStream": 0.5, "MultiStream": 0.5}
MAX_SIZED_QPS = {"Offline": 1_000_000.0, "Server": 200.0}
MIN_SIZED_LATENCY_MS = 0.05
LOADGEN_MODEL = "bert"
# The harness's own cost per backend call (queues, logits assembly, LoadGen's completion):
# the null backend, which computes nothing, reaches ~160-190k samples/s at batch 8 on a
# quiet 2-core VM, ~45 us a call, of which ~25 us is the harness. Added to a warm-up's call
# time, so that a backend that answers at once is not expected to run faster than the
# harness can carry it (erring high: Offline's test then lasts longer, never too short).
ADAPTER_CALL_S = 25e-6


def effective_s_per_sample(s_per_call: float, batch: int) -> float:
    """Seconds per sample through the whole harness, from a warm-up's backend call."""
    return (s_per_call + ADAPTER_CALL_S) / max(1, batch)


@dataclasses.dataclass(frozen=True)
class Sizing:
    """The expectation a run took from its warm-up (recorded in settings.json)."""

    key: str  # target_qps or target_latency
    value: float  # samples/s or ms
    measured_samples_per_s: float
    margin: float

    def line(self, scenario: str) -> str:
        return f"{LOADGEN_MODEL}.{scenario}.{self.key} = {self.value:.6g}"

    def to_json(self) -> dict[str, Any]:
        unit = EXPECTATION_BOUNDS[self.key][2]
        return {**dataclasses.asdict(self), "unit": unit, "source": "from warm-up"}


def conf_sets(text: str, scenario: str, key: str) -> bool:
    """Whether a user.conf text sets ``key`` for ``scenario`` (``bert`` or ``*``, the
    scenario or ``*``), on a line LoadGen reads."""
    pattern = re.compile(rf"^\s*(bert|\*)\.({re.escape(scenario)}|\*)\.{re.escape(key)}\s*=",
                         re.MULTILINE)
    return bool(pattern.search(text))


def size_from_warm_up(scenario: str, s_per_sample: float) -> Sizing:
    """The expectation of ``scenario`` from a warm-up's seconds per sample."""
    entry = TABLE[scenario]
    rate = 1.0 / max(s_per_sample, 1e-9)
    margin = MARGIN[scenario]
    if entry.expectation == "target_qps":
        value = min(rate * margin, MAX_SIZED_QPS[scenario])
    else:
        query_ms = s_per_sample * entry.default_batch * 1e3
        value = max(query_ms * margin, MIN_SIZED_LATENCY_MS)
    low, high, _ = EXPECTATION_BOUNDS[entry.expectation]
    value = min(max(value, low + 1e-6), high)
    return Sizing(entry.expectation, float(f"{value:.4g}"), rate, margin)


def next_step(result: Any, scenario: str, expectation: float | None) -> str | None:
    """One line for an INVALID (or failing) test: which setting to change, to what. ``result``
    is the test's LoadGenResult; ``expectation``: the target QPS or latency (ms) it had."""
    if result.valid is not False and not result.errors:
        return None
    entry = TABLE[scenario]
    measured = result.samples_per_second
    if entry.scheduled:
        served = result.raw.get("result_completed_samples_per_sec") or measured
        if served:
            target = float(f"{max(float(served) * 0.7, 0.001):.3g}")
            return (f"--target-qps {target:g} (the system served {float(served):.3g} samples/s "
                    f"against {expectation or 0:g} asked; 70% of it leaves room for the "
                    "latency bound), or find the highest VALID rate with a sweep: make sweep "
                    "SWEEP=sweeps/server-ort.toml ARGS=--find-peak")
        return "--target-qps lower, or make sweep SWEEP=sweeps/server-ort.toml ARGS=--find-peak"
    if entry.expectation == "target_qps":
        if measured:
            suggestion = float(f"{measured * MARGIN[scenario]:.3g}")
            return (f"--target-qps {suggestion:g} (the test ended too soon at {measured:.3g} "
                    "samples/s; Offline errs high)")
        return "--target-qps higher (the test ended too soon)"
    latency_ns = result.query_latencies_ns.get("50.00") or result.latencies_ns.get("50.00")
    if latency_ns:
        query_ms = latency_ns / 1e6
        suggestion = float(f"{max(query_ms * 0.5, MIN_SIZED_LATENCY_MS):.3g}")
        return (f"--target-latency-ms {suggestion:g} (half the measured latency of a query: "
                "LoadGen then generates enough queries)")
    return "--target-latency-ms lower"
