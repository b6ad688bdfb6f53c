"""The highest completion rate the harness sustains with the wafer backend on this machine.

Below that rate LoadGen measures the modelled machine; above it, Python. The script times
BERT-Large on the WSE-2 preset with the null backend's answers (instant), and multiplies the
modelled machine with ``spec.systems`` (data parallel: the planned samples/s scale exactly,
the latency stays) until LoadGen's measured rate falls below 95% of the plan. Each point is
one ``python -m harness run --short`` in a fresh process, with a user.conf asking for the
planned rate. Offline is swept at each batch size; Server (queries of one sample) over the
query rate, 1,000 x 2^k QPS on 64 modelled systems (so the model itself hardly queues), and
a Server point also needs LoadGen's VALID and a median latency within 5% of the model's own
(the discrete-event model run on Poisson arrivals at that rate; p99 is printed beside it).

    python benchmarks/bench_wafer.py [--batch-sizes 8,64] [--max-systems 192]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from backends.wafer.device import make_device, simulate  # noqa: E402
from backends.wafer.plan import plan  # noqa: E402
from backends.wafer.shapes import named  # noqa: E402
from backends.wafer.spec import load_spec  # noqa: E402

KEEPS_UP = 0.95
FAITHFUL_P50 = 0.05  # Server: LoadGen's median latency within 5% of the model's own
SERVER_SYSTEMS = 64  # Server: a modelled machine far faster than the query rates tried


def run_point(scenario: str, systems: int, batch: int, seconds: float, work: Path,
              max_examples: int, qps: float | None = None) -> dict:
    """One LoadGen run: Offline at the planned rate of ``systems`` systems, Server at
    ``qps``; its measured figures."""
    planned = plan(named("bert-large"), load_spec("wse2", {"systems": systems}))
    rate = planned.throughput if qps is None else qps
    conf = work / f"{scenario}-{systems}-{batch}.conf"
    conf.write_text(f"bert.{scenario}.target_qps = {rate:.1f}\n"
                    f"bert.{scenario}.min_duration = {int(seconds * 1000)}\n", encoding="utf-8")
    results = work / f"results-{scenario}-{systems}-{batch}"
    command = [sys.executable, "-m", "harness", "run", "--backend", "wafer", "--scenario",
               scenario, "--short", "--max-examples", str(max_examples), "--user-conf",
               str(conf), "--results-dir", str(results), "--no-progress", "--batch-size",
               str(batch), "--backend-option", "numerics=null", "--backend-option",
               "arch=bert-large", "--backend-option", f"spec.systems={systems}"]
    started = time.perf_counter()
    cpu_before = os.times()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    cpu_after = os.times()
    wall = time.perf_counter() - started
    if done.returncode != 0:
        return {"scenario": scenario, "systems": systems, "batch": batch, "planned": rate,
                "measured": 0.0, "ratio": 0.0, "valid": False,
                "error": done.stderr.strip().splitlines()[-1:]}
    found = next(results.glob(f"*/*/{scenario}/performance/run_1/result.json"))
    result = json.loads(found.read_text())
    measured = result["samples_per_second"]
    cpu = (cpu_after.children_user + cpu_after.children_system
           - cpu_before.children_user - cpu_before.children_system)
    point = {"scenario": scenario, "systems": systems, "batch": batch, "planned": rate,
             "measured": measured, "ratio": measured / rate, "valid": result["valid"],
             "p50_ms": result["latencies_ns"].get("50.00", 0) / 1e6,
             "p99_ms": result["latencies_ns"].get("99.00", 0) / 1e6,
             "cpu_per_wall": cpu / max(result.get("wall_s", wall), 1e-9)}
    if scenario == "Server":  # the model's own p99 for Poisson queries at this rate
        rng = np.random.default_rng(0)
        arrivals = np.cumsum(rng.exponential(1 / rate, 20000))
        done = simulate(make_device(planned, False), [(t, [384]) for t in arrivals])
        latency = (np.array(done) - arrivals) * 1e3
        point["model_p50_ms"] = float(np.percentile(latency, 50))
        point["model_p99_ms"] = float(np.percentile(latency, 99))
    return point


def keeps_up(point: dict) -> bool:
    if point["scenario"] == "Offline":
        return point["ratio"] >= KEEPS_UP
    return point["ratio"] >= KEEPS_UP and point["valid"] and \
        abs(point["p50_ms"] / point["model_p50_ms"] - 1) <= FAITHFUL_P50


def sweep(scenario: str, batch: int, args, work: Path) -> tuple[list[dict], dict | None]:
    """Offline: double the modelled systems until the harness falls behind, then bisect
    twice between. Server: the same over the query rate, on a machine of SERVER_SYSTEMS."""
    def point_at(level: int) -> dict:
        if scenario == "Server":
            return run_point(scenario, SERVER_SYSTEMS, batch, args.seconds, work,
                             args.max_examples, qps=1000.0 * level)
        return run_point(scenario, level, batch, args.seconds, work, args.max_examples)

    points, best, level, bad = [], None, 1, None
    while level <= args.max_systems:
        point = point_at(level)
        points.append(point)
        print(_row(point), flush=True)
        if not keeps_up(point):
            bad = level
            break
        best, good = point, level
        level *= 2
    for _ in range(2):
        if best is None or bad is None or bad - good <= 1:
            break
        middle = (good + bad) // 2
        point = point_at(middle)
        points.append(point)
        print(_row(point), flush=True)
        if keeps_up(point):
            best, good = point, middle
        else:
            bad = middle
    return points, best


def _row(p: dict) -> str:
    extra = (f"  {p['error']}" if "error" in p else
             (f"  p50 {p['p50_ms']:.2f} ms (model {p['model_p50_ms']:.2f}), p99 "
              f"{p['p99_ms']:.2f} ms (model {p['model_p99_ms']:.2f})" if "model_p99_ms" in p
              else f"  p99 {p['p99_ms']:9.2f} ms")
             + f"  cpu {p['cpu_per_wall']:.2f} cores")
    return (f"{p['scenario']:8s} batch {p['batch']:3d} systems {p['systems']:4d}  target "
            f"{p['planned']:11,.0f}  measured {p['measured']:11,.0f}  ratio {p['ratio']:5.3f}  "
            f"{'VALID' if p['valid'] else 'INVALID':7s}{extra}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", default="8,64",
                        help="Offline batch sizes to sweep (default: %(default)s)")
    parser.add_argument("--no-server", action="store_true", help="skip the Server sweep")
    parser.add_argument("--max-systems", type=int, default=192,
                        help="most modelled systems (SwarmX's published 192 at most; "
                        "default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=2.0,
                        help="LoadGen minimum duration per point (default: %(default)s)")
    parser.add_argument("--max-examples", type=int, default=500,
                        help="questions whose features LoadGen draws from")
    args = parser.parse_args()
    if not 1 <= args.max_systems <= 192:
        parser.error(f"--max-systems {args.max_systems}: from 1 to 192 (SwarmX's published "
                     "most; the spec's systems field allows no more)")
    one = plan(named("bert-large"), load_spec("wse2"))
    print(f"BERT-Large on one WSE-2 (modelled): {one.throughput:,.0f} samples/s, "
          f"{one.latency_s * 1e3:.2f} ms; answers from the null backend; "
          f"{os.cpu_count()} CPUs here")
    summary = []
    with tempfile.TemporaryDirectory(prefix="bench-wafer-") as scratch:
        work = Path(scratch)
        runs = [("Offline", int(b)) for b in args.batch_sizes.split(",") if b]
        if not args.no_server:
            runs.append(("Server", 1))
        for scenario, batch in runs:
            _, best = sweep(scenario, batch, args, work)
            summary.append((scenario, batch, best))
    print("\nhighest completion rate the harness sustains (LoadGen within "
          f"{(1 - KEEPS_UP) * 100:.0f}% of the plan; Server: VALID, p50 within "
          f"{FAITHFUL_P50 * 100:.0f}% of the model's):")
    for scenario, batch, best in summary:
        if best is None:
            print(f"  {scenario:8s} batch {batch:3d}: below one WSE-2's rate")
        else:
            print(f"  {scenario:8s} batch {batch:3d}: {best['measured']:,.0f} samples/s "
                  f"({best['systems']} modelled systems, ratio {best['ratio']:.3f}, "
                  f"p50 {best.get('p50_ms', 0):.2f} ms, p99 {best['p99_ms']:.2f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
