"""Benchmark: Offline throughput and F1 near the machine's limit, against the MLPerf-style loop.

One run on one machine measures, for the demo model over the first N questions (LoadGen
Offline in accuracy mode, one process per variant, so each row has both samples/s and F1):

* ``reference loop``: padded batch 1, a thread per sample, ONNX Runtime's default session
  (``benchmarks/reference_loop.py``, as the MLCommons reference SUT runs) -- the baseline;
* this harness with all its throughput features off, then each one alone, then its
  defaults, and the runtime options that are not defaults (ORT fusions, int8, PyTorch fp32
  and bf16);
* 1 Ray actor with every core against 2 actors with one core each;

then the machine's fp32 GEMM rate, each variant's useful-FLOP rate (FLOPs at the features'
real token counts / time, as a share of the GEMM rate), and the null-backend ceilings of
the adapter itself (Offline samples/s, Server QPS with its p99). Ratios are against the
reference loop of the same run. Writes ``results/bench/throughput.json`` (``-only`` in the
name for an ``--only`` run, ``-bert-large-standin`` for a stand-in).

``--standin bert-large`` runs the same table on a randomly initialised BERT-Large (24 layers,
hidden 1024: the shapes of the MLPerf model, whose zenodo files cannot be fetched here), built
once into ``models/store/bert-large-standin/``: its F1 means nothing, its samples/s and
useful-FLOP rate are those of the real model's arithmetic.

Usage: ``python benchmarks/bench_throughput.py [--max-examples 2804] [--only NAME ...]
[--standin bert-large]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from common.files import SHARED_DIR, write_json_atomic
from squad.data import DataConfig, prepare_data

REPO = Path(__file__).resolve().parents[1]
MODEL = "minilm-l6-squad-demo"
OFF = ["--seq-bucket", "0", "--batch-size", "1", "--no-sort"]  # the harness, features off
DEFAULTS = "harness defaults (variable length, sorted, batch 8)"
INT8 = "defaults, int8 dynamic model (VNNI)"  # a catalog name: the demo model only
RAY_2 = "Ray, 2 actors x 1 thread"
# name -> harness arguments (after `python -m harness accuracy`)
VARIANTS: dict[str, list[str]] = {
    "harness, features off (padded, batch 1)": OFF,
    "+ variable length only": ["--batch-size", "1", "--no-sort"],
    "+ batch 8 only (padded)": ["--seq-bucket", "0", "--batch-size", "8", "--no-sort"],
    DEFAULTS: [],
    "defaults + ORT transformer fusions": ["--backend-option", "optimizer=transformers"],
    "defaults + 2 ORT instances x 1 thread": ["--backend-option", "instances=2"],
    INT8: ["--model", f"{MODEL}-int8-dynamic"],
    "defaults, PyTorch fp32": ["--backend", "pytorch"],
    "defaults, PyTorch bf16 autocast": ["--backend", "pytorch",
                                        "--backend-option", "precision=bf16"],
    "Ray, 1 actor x 2 threads": ["--backend", "ray", "--backend-option", "actors=1",
                                 "--backend-option", "threads_per_actor=2"],
    RAY_2: ["--backend", "ray", "--backend-option", "actors=2",
            "--backend-option", "threads_per_actor=1"],
}
REFERENCE = "reference loop (padded, batch 1, thread per sample)"


GEMM_SIZE = 2048
_GEMM_CODE = """
import os, sys, time
import numpy as np
n = {n}
a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
if sys.argv[1] == "numpy":
    run = lambda: a @ a
elif sys.argv[1] == "torch":
    import torch
    t = torch.from_numpy(a)
    run = lambda: t @ t
else:
    import onnxruntime as ort
    from onnx import TensorProto, helper
    io = [helper.make_tensor_value_info(k, TensorProto.FLOAT, [n, n]) for k in "abc"]
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "mm",
                              io[:2], io[2:])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    options = ort.SessionOptions()
    options.intra_op_num_threads = len(os.sched_getaffinity(0))
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    run = lambda: session.run(None, {{"a": a, "b": a}})
run()
best = 0.0
for _ in range(5):
    started = time.perf_counter()
    run()
    best = max(best, 2 * n**3 / (time.perf_counter() - started) / 1e9)
print(best)
"""


def gemm_rate() -> dict[str, float]:
    """fp32 GEMM GFLOP/s on every core, 2048x2048, through numpy, torch and ONNX Runtime.

    Each runs in its own process; numpy without the OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE pins
    some machines set (they hold OpenBLAS to an older kernel: 241 against 452 GFLOP/s on
    the AVX-512 VM this was written on). The machine's rate is the best of the three.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENBLAS_")}
    rates = {}
    for library in ("numpy", "torch", "onnxruntime"):
        done = subprocess.run([sys.executable, "-c", _GEMM_CODE.format(n=GEMM_SIZE), library],
                              capture_output=True, text=True, env=env)
        if done.returncode == 0:
            rates[library] = float(done.stdout.strip())
    return rates


def useful_flops(features, layers: int, hidden: int, intermediate: int) -> float:
    """Mean forward FLOPs per feature at its real token count (projections, attention, FFN
    and the QA head; embeddings and norms are negligible)."""
    lengths = np.asarray(features.input_mask, dtype=bool).sum(axis=1).astype(np.float64)
    per_layer = 2 * lengths * (4 * hidden * hidden + 2 * hidden * intermediate) \
        + 4 * lengths**2 * hidden
    return float(np.mean(layers * per_layer + 2 * lengths * hidden * 2))


# BERT-Large's shapes (MLPerf's model: bert_config.json of the zenodo files)
STANDINS = {"bert-large": {"num_hidden_layers": 24, "hidden_size": 1024,
                           "num_attention_heads": 16, "intermediate_size": 4096}}


def build_standin(name: str) -> Path:
    """A randomly initialised BertForQuestionAnswering with a named model's shapes, saved
    once to models/store/<name>-standin/ (config.json + model.safetensors)."""
    out = REPO / "models" / "store" / f"{name}-standin"
    if (out / "model.safetensors").is_file():
        return out
    import torch
    from transformers import BertConfig, BertForQuestionAnswering

    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, max_position_embeddings=512, type_vocab_size=2,
                        **STANDINS[name])
    print(f"building {out} (random weights, {name} shapes) ...", file=sys.stderr, flush=True)
    BertForQuestionAnswering(config).eval().save_pretrained(out.with_suffix(".partial"))
    out.with_suffix(".partial").rename(out)
    return out


def model_config(model: str) -> dict:
    """config.json of the model benchmarked: a checkpoint folder, or the demo model's."""
    folder = Path(model) if Path(model).is_dir() else SHARED_DIR / "models" / model
    return json.loads((folder / "config.json").read_text())


def run_variant(name: str, extra: list[str], model: str, max_examples: int,
                scratch: Path) -> dict:
    system = f"bench-{abs(hash(name)) % 10**8}"
    command = [sys.executable, "-m", "harness", "accuracy", "--model", model,
               "--max-examples", str(max_examples), "--results-dir", str(scratch),
               "--system", system, "--no-progress", *extra]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
    run = next((scratch / system).rglob("accuracy/result.json")).parent
    result = json.loads((run / "result.json").read_text())
    accuracy = json.loads((run / "accuracy.json").read_text())
    return {"samples_per_s": result["sut_samples_per_s"], "f1": accuracy["scores"]["f1"],
            "exact_match": accuracy["scores"]["exact_match"]}


def run_reference(model_name: str, max_examples: int, scratch: Path) -> dict:
    from models.catalog import resolve_model
    from squad.accuracy import score_accuracy_log
    from squad.features import read_vocab

    model = resolve_model(model_name, "onnxruntime")
    out = scratch / "reference"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "reference_loop.py"),
                    str(model.path), str(out), "--max-examples", str(max_examples)],
                   cwd=REPO, check=True, capture_output=True, text=True)
    data = prepare_data(DataConfig(max_examples=max_examples), progress=False)
    report, _ = score_accuracy_log(out / "mlperf_log_accuracy.json", data.features,
                                   data.examples, read_vocab(data.vocab_path), "fp32")
    timing = json.loads((out / "reference.json").read_text())
    return {"samples_per_s": timing["samples_per_s"], "f1": report.scores.f1,
            "exact_match": report.scores.exact_match}


def null_ceilings(scratch: Path) -> list[dict]:
    """The adapter alone: the null backend answers at once."""
    conf = scratch / "null.conf"
    conf.write_text("bert.Offline.target_qps = 1000000\nbert.Offline.min_duration = 3000\n"
                    "bert.Server.target_qps = 100000\nbert.Server.min_duration = 5000\n")
    points = [("Offline", 1), ("Offline", 64), ("Offline", 1024), ("Server", 64)]
    rows = []
    for scenario, batch in points:
        system = f"null-{scenario.lower()}-{batch}"
        done = subprocess.run([sys.executable, "-m", "harness", "run", "--backend", "null",
                               "--scenario", scenario, "--batch-size", str(batch),
                               "--user-conf", str(conf), "--results-dir", str(scratch),
                               "--system", system, "--no-progress", "--batch-wait-ms", "0",
                               "--max-run-minutes", "30"],
                              cwd=REPO, capture_output=True, text=True)
        found = list((scratch / system).rglob("result.json"))
        if done.returncode != 0 or not found:
            last = done.stderr.strip().splitlines()[-1:] or ["failed"]
            rows.append({"scenario": scenario, "batch": batch, "error": last[0]})
            continue
        result = json.loads(found[0].read_text())
        rows.append({"scenario": scenario, "batch": batch,
                     "samples_per_s": result["samples_per_second"],
                     "valid": result["valid"],
                     "p99_ms": result["latencies_ns"].get("99.00", 0) / 1e6})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=2804,
                        help="first N questions (default: the demo model's held-out 2804)")
    parser.add_argument("--only", nargs="*", default=None, metavar="NAME",
                        help="run only the variants whose name contains one of these words")
    parser.add_argument("--ray-pairs", type=int, default=3, metavar="N",
                        help="then N back-to-back pairs of the defaults and 2 Ray actors, "
                        "the ratio of each pair and their median (0: none; default 3)")
    parser.add_argument("--standin", choices=tuple(STANDINS), default=None,
                        help="a random-weight model with these shapes instead of the demo "
                        "model (no int8 row, no null ceilings)")
    args = parser.parse_args()
    model = str(build_standin(args.standin)) if args.standin else MODEL
    variants = {k: v for k, v in VARIANTS.items() if not (args.standin and k == INT8)}
    data = prepare_data(DataConfig(max_examples=args.max_examples), progress=False)
    config = model_config(model)
    flops = useful_flops(data.features, config["num_hidden_layers"], config["hidden_size"],
                         config["intermediate_size"])
    gemm = gemm_rate()
    peak = max(gemm.values())
    print(f"# Throughput, {Path(model).name}, first {args.max_examples} questions "
          f"({len(data.features)} features, mean {np.mean(data.features.input_mask.sum(1)):.1f} "
          "real tokens)")
    print("machine fp32 GEMM: " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in gemm.items()))
    print(f"useful work: {flops / 1e9:.2f} GFLOP per feature at its real length\n")
    rows: dict[str, dict] = {}
    record = {"max_examples": args.max_examples, "features": len(data.features),
              "gemm_gflops": gemm, "useful_gflop_per_feature": flops / 1e9,
              "variants": rows, "null_ceilings": []}
    # a partial run (--only) never replaces the record of a whole one
    stem = "throughput" + (f"-{args.standin}-standin" if args.standin else "") \
        + ("-only" if args.only else "")
    out = REPO / "results" / "bench" / f"{stem}.json"
    record["model"] = model
    print("| variant | samples/s | vs reference | F1 | EM | useful GFLOP/s | of GEMM |")
    print("|---|---|---|---|---|---|---|", flush=True)
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        wanted = [REFERENCE, *variants]
        if args.only:
            wanted = [n for n in wanted if any(w.lower() in n.lower() for w in args.only)]
        for name in wanted:
            print(f"running: {name} ...", file=sys.stderr, flush=True)
            rows[name] = (run_reference(model, args.max_examples, scratch) if name == REFERENCE
                          else run_variant(name, variants[name], model, args.max_examples,
                                           scratch))
            print(_row(name, rows[name], rows.get(REFERENCE, {}).get("samples_per_s"),
                       flops, peak), flush=True)
            write_json_atomic(out, record)  # what has run so far is never lost
        if args.ray_pairs > 0:
            record["ray_pairs"] = ray_pairs(args.ray_pairs, model, args.max_examples, scratch)
            write_json_atomic(out, record)
        if not args.only and not args.standin:
            record["null_ceilings"] = null_ceilings(scratch)
    if record["null_ceilings"]:
        print("\n## The adapter alone (null backend)")
        print("| scenario | batch | samples/s | VALID | p99 (ms) |")
        print("|---|---|---|---|---|")
        for c in record["null_ceilings"]:
            if "error" in c:
                print(f"| {c['scenario']} | {c['batch']} | failed: {c['error']} | | |")
                continue
            print(f"| {c['scenario']} | {c['batch']} | {c['samples_per_s']:,.0f} | "
                  f"{c['valid']} | {c['p99_ms']:.2f} |")
    write_json_atomic(out, record)


def ray_pairs(count: int, model: str, max_examples: int, scratch: Path) -> list[dict]:
    """One process (the defaults) against 2 Ray actors, run back to back ``count`` times: a
    ratio from one pair is free of the machine's slower drifts (another tenant, the clock),
    which move a single row by several percent."""
    print(f"\n## 2 Ray actors against one process, {count} pairs run back to back")
    print("| pair | one process (samples/s) | 2 Ray actors (samples/s) | ratio |")
    print("|---|---|---|---|", flush=True)
    pairs = []
    for index in range(count):
        print(f"running: pair {index + 1} of {count} ...", file=sys.stderr, flush=True)
        one = run_variant(DEFAULTS, VARIANTS[DEFAULTS], model, max_examples, scratch)
        ray = run_variant(RAY_2, VARIANTS[RAY_2], model, max_examples, scratch)
        if "error" in one or "error" in ray:
            print(f"| {index + 1} | failed: {one.get('error') or ray.get('error')} | | |")
            continue
        pair = {"one_process": one["samples_per_s"], "ray_2_actors": ray["samples_per_s"],
                "ratio": ray["samples_per_s"] / one["samples_per_s"]}
        pairs.append(pair)
        print(f"| {index + 1} | {pair['one_process']:.2f} | {pair['ray_2_actors']:.2f} | "
              f"{pair['ratio']:.3f} |", flush=True)
    if pairs:
        print(f"median ratio {float(np.median([p['ratio'] for p in pairs])):.3f}", flush=True)
    return pairs


def _row(name: str, row: dict, base: float | None, flops: float, peak: float) -> str:
    if "error" in row:
        return f"| {name} | failed: {row['error']} | | | | | |"
    rate = row["samples_per_s"]
    useful = rate * flops / 1e9
    ratio = f"{rate / base:.2f}x" if base else "-"
    return (f"| {name} | {rate:.2f} | {ratio} | {row['f1']:.2f} | {row['exact_match']:.2f} "
            f"| {useful:.0f} | {useful / peak:.0%} |")


if __name__ == "__main__":
    main()
