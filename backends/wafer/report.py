"""A plan as text: what is modelled, per stage rows, the band, latency, energy, start-up.

Every figure printed is modelled (never measured), and the header says so with the spec,
the release rule and the band.
"""

from __future__ import annotations

import numpy as np

from backends.wafer.planned import Plan


def band_text(band: dict[str, float]) -> str:
    """``low-high (expected E)`` in samples/s."""
    if not band:
        return ""
    return (f"band {band['low']:,.1f}-{band['high']:,.1f} samples/s (expected "
            f"{band['expected']:,.1f})")


def plan_text(p: Plan) -> str:
    """The plan as a table: per stage the cores (or wafer share), time and SRAM used."""
    o, spec = p.options, p.spec
    lines = [f"MODELLED (simulated {spec.name}, release {o.release}): no wafer ran this",
             p.arch.summary(),
             f"spec {spec.name}: {spec.title}, {spec.cores:,} cores x "
             f"{spec.systems} system(s), {o.precision}, "
             + (f"real lengths (mean {np.mean(o.lengths):.1f} of {p.seq} tokens)"
                if o.skip_padding and o.lengths else f"{p.seq} tokens")
             + (f", training ({spec.training_flop_factor:g}x forward FLOPs)"
                if o.training else ""),
             f"mode: {p.mode} -- {p.reason}; efficiency {spec.efficiency(p.mode):.4f} of peak"]
    if p.mode == "pipelined":
        lines.append(f"{'stage':22s} {'cores':>9s} {'us/sample':>10s} "
                     f"{'SRAM KB/core':>12s} {'GFLOP':>9s} {'params':>12s}  limit")
        for s in p.stages:
            lines.append(f"{s.name:22s} {s.cores:9,.0f} {s.time_s * 1e6:10.2f} "
                         f"{s.sram_per_core / 1024:12.2f} {s.flops / 1e9:9.3f} "
                         f"{s.params:12,.0f}  {s.limit}")
        used = sum(s.cores for s in p.stages) * p.replicas
        lines.append(f"{p.replicas} replica(s) per system, {used:,.0f} of "
                     f"{spec.cores:,} cores; host I/O {p.io_s * 1e6:.2f} us/sample per replica")
    else:
        lines.append(f"{'layer':22s} {'wafer %':>9s} {'us/batch':>10s} "
                     f"{'SRAM KB/core':>12s} {'GFLOP':>9s} {'params':>12s}  limit")
        for s in p.stages:
            lines.append(f"{s.name:22s} {s.cores * 100:9.1f} {s.time_s * 1e6:10.2f} "
                         f"{s.sram_per_core / 1024:12.3f} {s.flops / 1e9:9.3f} "
                         f"{s.params:12,.0f}  {s.limit}")
        lines.append(f"batch {p.stream_batch}; host I/O {p.io_s * 1e6:.2f} us/sample")
    lines.append(f"throughput {p.throughput:,.1f} samples/s ({p.bound}); {band_text(p.band)}; "
                 f"{p.joules_per_sample():.4g} J/sample at {spec.system_power_kw:g} kW x "
                 f"{spec.systems}")
    p90 = f" (p90 {p.latency_p90_s * 1e3:.3f} ms)" if o.skip_padding else ""
    overhead = f"host transfer overhead {p.delay_s * 1e3:.3f} ms"
    if p.mode == "pipelined":
        lines.append(f"latency {p.latency_s * 1e3:.3f} ms{p90}, an upper bound (each sample "
                     f"finishes a stage before entering the next); rows streamed between "
                     f"stages: {p.latency_alt_s * 1e3:.3f} ms (a lower bound); of either, "
                     f"{overhead}")
        if p.replicas > 1:
            wins = "wins SingleStream" if p.low_latency_s < p.latency_s else "does not win"
            lines.append(f"low-latency layout (one replica on the whole wafer, "
                         f"low_latency=on): {p.low_latency_s * 1e3:.3f} ms a sample ({wins})")
    else:
        lines.append(f"latency at batch {p.stream_batch}: {p.latency_alt_s * 1e3:.3f} ms; a "
                     f"sample alone (batch 1): {p.latency_s * 1e3:.3f} ms{p90}; of either, "
                     f"{overhead}")
    start = spec.startup_s(p.weight_bytes)
    lines.append(f"start-up, apart from the above: {start['total']:,.0f} s with a cached "
                 f"compile (job {start['job_start']:.0f} s, programming "
                 f"{start['device_programming']:.0f} s, weights {start['weight_load']:.1f} s); "
                 f"+{spec.compile_s:,.0f} s uncached")
    if not p.fits_pipelined:
        lines.append(f"pipelined does not fit: {p.fit_note}")
    return "\n".join(lines) + "\n"
