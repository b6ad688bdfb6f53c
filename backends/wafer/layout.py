"""Where a plan's work goes: a pipelined layout (cores per stage, replicas) or a streaming
batch, their stage rows, throughput, latency and bounds; resident decode streams.

:func:`backends.wafer.plan.plan` chooses the mode and calls these; the model they implement
is described there and in docs/wafer.md.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from backends.base import BackendError
from backends.wafer.planned import Plan, StagePlan
from backends.wafer.shapes import Architecture, LayerCost, layer_costs
from backends.wafer.spec import WaferSpec


def resident_streams(arch: Architecture, spec: WaferSpec, vb: float) -> Architecture:
    """A decode pipeline holds one stream per stage, each with its KV cache; when their
    caches do not all fit beside the weights, as many streams as do (at least one)."""
    stages = arch.layers + 2
    need = sum(c.params * vb + c.act_bytes
               for c in layer_costs(dataclasses.replace(arch, decode_streams=1)))
    cache = 2.0 * arch.decode_context * arch.kv_width * vb * arch.layers
    room = spec.cores * spec.sram_bytes_per_core * 0.99 - need  # 1%: rounding to cores
    return dataclasses.replace(arch, decode_streams=int(min(stages, max(1, room // cache + 1))))


def input_bound(result: Plan, rate: float) -> float:
    """``rate`` capped by the host input workers; says so in ``bound`` when they bind."""
    workers = result.spec.input_samples_per_s * result.spec.systems
    if workers < rate:
        result.bound = (f"host input workers ({result.spec.host_workers} x "
                        f"{result.spec.worker_samples_per_s:,.0f} samples/s per system)")
        return workers
    return rate


def pipelined_layout(costs: list[LayerCost], flops: np.ndarray, param_bytes: float,
               spec: WaferSpec, f: float, low_latency: bool = False):
    """Cores per stage of one replica and the replica count, or why one does not fit;
    ``f``: achieved FLOP/s of a core. The last item: one replica's cores on the whole
    wafer (the low-latency layout)."""
    per_core = spec.sram_bytes_per_core
    need = np.array([c.params * param_bytes + c.act_bytes for c in costs])
    minimum = np.maximum(1, np.ceil(need / per_core))
    split = np.ceil(np.array([max(c.params, 1.0) for c in costs]) / spec.min_params_per_core)
    cap = np.where(flops > 0, np.maximum(minimum, split), minimum)
    total = spec.cores
    note = (f"{need.sum() / 1e9:.2f} GB of SRAM for weights and activations, "
            f"{total * per_core / 1e9:.2f} GB usable")
    if minimum.sum() > total:
        return False, note, None
    if not costs:  # nothing on the wafer but host I/O
        return True, note, (minimum, need, 1, minimum, cap, minimum)
    busy = flops > 0

    def allocate(replicas: int) -> np.ndarray:
        """Water-filling: the smallest slowest-stage time this replica's cores allow."""
        budget = total // replicas
        if not busy.any():
            return minimum

        def cores_at(t: float) -> np.ndarray:
            return np.clip(np.ceil(flops / (f * t)), minimum, cap)

        lo = flops.sum() / (f * budget) * 0.5
        hi = float((flops[busy] / (f * minimum[busy])).max()) * 2.0
        while hi / lo > 1 + 1e-9:
            mid = math.sqrt(lo * hi)
            if cores_at(mid).sum() <= budget:
                hi = mid
            else:
                lo = mid
        return cores_at(hi)

    # As many whole replicas as fit at the split limit, or one more (each then a little
    # short of it): whichever gives the higher throughput.
    best = None
    whole = allocate(1)
    fewest = max(1, int(total // cap.sum()))
    for replicas in (1,) if low_latency else (fewest, fewest + 1):
        if replicas * minimum.sum() > total:
            continue
        cores = allocate(replicas)
        slowest = float((flops / (f * cores)).max()) if busy.any() else 1.0
        if best is None or replicas / slowest > best[0] * (1 + 1e-9):
            best = (replicas / slowest, replicas, cores)
    _, replicas, cores = best
    return True, note, (cores, need, replicas, minimum, cap, whole)


def finish_pipelined(result: Plan, costs: list[LayerCost], pipe, lengths: np.ndarray) -> None:
    spec, seq = result.spec, result.seq
    cores, need, replicas, minimum, cap, whole = pipe
    result.replicas, result._cores = 1, whole  # the low-latency layout: one replica
    result.low_latency_s = float(result.stage_times(seq).sum()) + result.delay_s
    result.replicas, result._cores = replicas, cores
    times = result.stage_times(seq)
    stages = []
    for i, c in enumerate(costs):
        flops = result._flops[seq][i]
        compute = flops / (cores[i] * result.core_flops)
        fabric = result._out_bytes[seq][i] / spec.fabric_bytes_per_s
        limit = "compute" if compute >= fabric else "fabric"
        if flops == 0:
            limit = "memory"
        elif cores[i] >= cap[i] > minimum[i]:
            limit += " (split limit)"
        elif cores[i] <= minimum[i]:
            limit += " (SRAM minimum)"
        stages.append(StagePlan(c.name, float(flops), c.params, float(cores[i]),
                                float(times[i + 1]), float(need[i] / cores[i]), limit))
    result.stages = stages
    hops = cores.sum() / spec.grid_y * spec.hop_s  # the columns a sample crosses
    result.delay_s += hops
    result.low_latency_s += whole.sum() / spec.grid_y * spec.hop_s
    result.io_s = float(times[0])
    per_sample = result.stage_times(lengths)  # [samples, 1 + stages]
    mean = per_sample.mean(axis=0)
    slowest = int(np.argmax(mean))
    result.bound = ("host I/O" if slowest == 0 else
                    f"slowest stage {stages[slowest - 1].name}: {stages[slowest - 1].limit}")
    result.throughput = input_bound(result, replicas * spec.systems / float(mean[slowest]))
    fill = per_sample.sum(axis=1) + result.delay_s
    result.latency_s = float(np.percentile(fill, 50))
    result.latency_p90_s = float(np.percentile(fill, 90))
    # rows streamed: the slowest stage in full, every other stage one row's share
    rows = per_sample.max(axis=1) + (per_sample.sum(axis=1) - per_sample.max(axis=1)) / seq
    result.latency_alt_s = float(np.percentile(rows + result.delay_s, 50))


def finish_streaming(result: Plan, costs: list[LayerCost], lengths: np.ndarray,
                      vb: float) -> None:
    spec, seq = result.spec, result.seq
    stream = result._stream_s
    per_sample = result._flops[seq] / result.wafer_flops
    busy = per_sample > 0
    sram = spec.cores * spec.sram_bytes_per_core
    weights = np.array([c.params * vb for c in costs])
    acts = max(c.act_bytes for c in costs)
    room = sram - 2 * weights.max()  # a layer's weights double-buffered while it streams
    most = int(room // acts) if acts > 0 else 1 << 20
    if most < 1:
        raise BackendError(f"{result.arch.name} cannot run on {spec.name} in either mode: one "
                           f"sample's activations ({acts / 1e9:.2f} GB) and a layer's weights "
                           f"do not fit in {sram / 1e9:.2f} GB of usable SRAM")
    amortise = int(np.ceil((stream[busy] / per_sample[busy]).max())) if busy.any() else 1
    batch = result.options.stream_batch or max(1, min(amortise, most))
    result.stream_batch = batch
    total = result.batch_time(np.full(batch, seq))
    rows = []
    for i, c in enumerate(costs):
        compute = batch * per_sample[i]
        t = max(stream[i], compute)
        rows.append(StagePlan(c.name, float(result._flops[seq][i]), c.params,
                              t / total if total else 0.0, t,
                              (2 * weights[i] + batch * c.act_bytes) / spec.cores,
                              "stream" if stream[i] > compute else "compute"))
    result.stages = rows
    result.io_s = float(np.mean(result.io_time(lengths)))
    full = total
    if len(lengths) > 1:  # skip_padding: a batch of the mean work
        flops = result._flops[lengths].mean(axis=0) * batch
        total = float(np.maximum(stream, flops / result.wafer_flops).sum())
    compute_rate = batch / total * spec.systems
    io_rate = 1.0 / result.io_s
    streamed = sum(1 for r in rows if r.limit == "stream")
    result.bound = ("host I/O" if io_rate < compute_rate else
                    f"batch of {batch}: {streamed} of {len(rows)} layers stream-bound")
    result.throughput = input_bound(result, min(compute_rate, io_rate))
    alone = {int(s): result.batch_time(np.array([s])) for s in np.unique(lengths)}
    fill = np.array([alone[int(s)] for s in lengths]) + result.io_time(lengths) + result.delay_s
    result.latency_s = float(np.percentile(fill, 50))
    result.latency_p90_s = float(np.percentile(fill, 90))
    result.latency_alt_s = full + batch * result.io_s / spec.systems + result.delay_s
