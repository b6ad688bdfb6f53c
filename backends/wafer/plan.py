"""The performance model: layer pipelined or weight streaming, by release, size or force.

**Layer pipelined.** Each stage (a layer) gets its own region of cores and keeps its weights
in SRAM; samples stream through, one per stage at a time. A stage needs at least the cores
whose usable SRAM holds its weights and one sample's activations; beyond that, cores go to
stages in proportion to their work (water-filling: the slowest stage is made as fast as the
cores allow), and a stage is not split finer than ``min_params_per_core`` weights per core.
A model that needs fewer cores than the wafer at that granularity is replicated. A stage
takes ``max(FLOPs / (cores x peak x pipelined_efficiency), activations out / fabric
bandwidth across a region boundary)``; host I/O is one more stage. Throughput = replicas /
the slowest stage, capped by the line rate and the host input workers; latency = the host
transfer overhead each way + the pipeline fill (an upper bound; rows streamed between
stages give the lower bound) + the hops across the replica.

**Weight streaming.** Weights stream in from MemoryX one layer at a time, each layer using
the whole wafer: a layer takes ``max(weight bytes / stream bandwidth + SwarmX levels x
transfer overhead, batch FLOPs / (peak x streaming_efficiency))``, a batch the sum over
layers. The default batch is the smallest that makes every layer compute-bound, capped by
the activations SRAM holds. Throughput = systems x batch / batch time (or a host bound);
latency of a sample alone and of one in a full batch.

Each plan carries a **band**: the same mode at the compute rate x ``band_low`` and x
``band_high``. Training counts ``training_flop_factor`` x the forward FLOPs, 16 bytes of
SRAM per parameter and streams gradients back. Mode choice: :mod:`backends.wafer.release`.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from backends.wafer.layout import (
    finish_pipelined,
    finish_streaming,
    pipelined_layout,
    resident_streams,
)
from backends.wafer.planned import BANDS, Plan, PlanOptions, band_factor
from backends.wafer.planned import MODES as MODES  # re-exported: callers import it from here
from backends.wafer.release import choose_mode
from backends.wafer.shapes import Architecture, layer_costs
from backends.wafer.spec import BYTES_PER_VALUE, WaferSpec

TRAINING_BYTES_PER_PARAM = 16.0  # fp16 weight and gradient, fp32 master, two fp32 moments


def plan(arch: Architecture, spec: WaferSpec, options: PlanOptions = PlanOptions()) -> Plan:
    """Plan ``arch`` on ``spec``: mode (auto, by release, or forced), stages, throughput,
    latency; with the band (the same mode at the low and high compute rates)."""
    result = _plan(arch, spec, options)
    result.band = {"expected": result.throughput}
    if options.band == "expected":
        for end in ("low", "high"):
            other = _plan(arch, spec, dataclasses.replace(options, mode=result.mode,
                                                          band=end))
            result.band[end] = other.throughput
        result.band = {end: result.band[end] for end in BANDS}
    return result


def _plan(arch: Architecture, spec: WaferSpec, options: PlanOptions) -> Plan:
    if options.wafers > 1:  # one pipeline over several wafers: their rows side by side
        spec = spec.with_overrides({"grid_y": spec.grid_y * options.wafers})
    if arch.decode_context and not arch.decode_streams and options.mode != "streaming":
        arch = resident_streams(arch, spec, BYTES_PER_VALUE[options.precision])
    seq = int(options.seq or arch.seq)
    if arch.family not in ("transformer", "generic") or arch.decode_context:
        seq = int(arch.seq)  # no token axis to pad or skip
    vb = BYTES_PER_VALUE[options.precision]
    costs = layer_costs(arch, seq, vb)
    n = len(costs)
    result = Plan(arch, spec, options, seq=seq,
                  _flops=np.full((seq + 1, n), np.nan), _out_bytes=np.full((seq + 1, n), np.nan),
                  _io_bytes=np.full(seq + 1, np.nan))
    result._fill(seq)
    lengths = np.asarray(options.lengths if options.skip_padding and options.lengths
                         else [seq], np.int64).clip(1, seq)
    param_bytes = TRAINING_BYTES_PER_PARAM if options.training else vb
    pipe_flops = spec.core_flops(options.precision, "pipelined") * band_factor(spec, options.band)
    fits, fit_note, pipe = pipelined_layout(costs, result._flops[seq], param_bytes, spec,
                                      pipe_flops, options.low_latency)
    mode, reason = choose_mode(arch, spec, options, fits, fit_note)
    if arch.decode_context:
        reason += (f"; KV caches of {arch.decode_streams or arch.layers + 2} streams "
                   f"({arch.decode_context} tokens each) resident")
    result.mode, result.reason, result.fits_pipelined, result.fit_note = \
        mode, reason, fits, fit_note
    # per layer: weights in (and gradients out when training) on each system's MemoryX
    # link, plus, across several systems, one SwarmX transfer per tree level each way
    levels = math.ceil(math.log2(spec.systems)) if spec.systems > 1 else 0
    ways = 2 if options.training else 1
    result._stream_s = (np.array([c.params * vb * ways for c in costs]) / spec.stream_bytes_per_s
                        + levels * ways * spec.host_transfer_overhead_us * 1e-6)
    # a transfer in and one out; across wafers, one out of and one into each next wafer
    result.delay_s = 2 * options.wafers * spec.host_transfer_overhead_us * 1e-6
    if mode == "pipelined":
        finish_pipelined(result, costs, pipe, lengths)
    else:
        finish_streaming(result, costs, lengths, vb)
    return result
