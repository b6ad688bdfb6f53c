"""Benchmark: what ``python -m harness tune`` finds, as a ratio to the fp32 default.

Runs ``tune`` (Offline, bert-99: 99% of the model's own fp32 F1 on the gate's questions)
on the demo model, or with ``--standin bert-large`` on a randomly initialised model with
BERT-Large's shapes (built once by ``bench_throughput.build_standin``: its F1 means
nothing, so every arithmetic passes the gate; its ratio is that of the real model's
shapes), and records the winner, its ratio to the fp32 default measured in the same tune,
the front and the machine's load in ``results/bench/tune[-bert-large-standin].json``.

Usage: ``python benchmarks/bench_tune.py [--budget-minutes 30] [--standin bert-large]
[--max-examples N]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common.files import write_json_atomic

REPO = Path(__file__).resolve().parents[1]
MODEL = "minilm-l6-squad-demo"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-minutes", default="30")
    parser.add_argument("--standin", choices=("bert-large",), default=None)
    parser.add_argument("--max-examples", default=None,
                        help="the gate's questions (default: tune's, 2804 for the demo model)")
    args = parser.parse_args()
    if args.standin:
        from bench_throughput import build_standin  # this folder is the script's own

        model = str(build_standin(args.standin))
    else:
        model = MODEL
    results = REPO / "results"
    command = [sys.executable, "-m", "harness", "tune", "--model", model,
               "--budget-minutes", str(args.budget_minutes), "--results-dir", str(results)]
    if args.max_examples:
        command += ["--max-examples", str(args.max_examples)]
    load_before = os.getloadavg()
    started = time.monotonic()
    done = subprocess.run(command, cwd=REPO)
    wall = time.monotonic() - started
    tune = results / "tune" / Path(model).name / "Offline" / "tune.json"
    outcome = json.loads(tune.read_text()) if tune.is_file() else {}
    winner = outcome.get("winner") or {}
    record = {"model": model, "command": command, "exit_code": done.returncode,
              "wall_s": round(wall, 1), "load_before": load_before,
              "load_after": os.getloadavg(), "cpus": os.cpu_count(),
              "winner": winner.get("label"), "ratio": winner.get("ratio"),
              "f1": winner.get("f1"), "samples_per_second": winner.get("samples_per_second"),
              "front": outcome.get("front"), "target_f1": outcome.get("target_f1")}
    stem = "tune" + (f"-{args.standin}-standin" if args.standin else "")
    write_json_atomic(results / "bench" / f"{stem}.json", record)
    ratio = f"x{record['ratio']:.2f}" if record["ratio"] else "no ratio"
    print(f"tuned: {record['winner']}: {ratio} the fp32 default, F1 {record['f1']} "
          f"(load {load_before[0]:.1f} before, {record['load_after'][0]:.1f} after, "
          f"{record['cpus']} CPUs); {results / 'bench' / (stem + '.json')}")
    sys.exit(done.returncode)


if __name__ == "__main__":
    main()
