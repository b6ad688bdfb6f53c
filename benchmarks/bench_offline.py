"""Benchmark: feature building, and Offline samples/s of the demo model by batch size.

Prints two tables. Ratios compare against a baseline measured in the same run:
* feature building: the harness (Rust ``tokenizers``) against the pure-Python WordPiece
  tokenizer the MLPerf reference uses, on the same questions;
* Offline: LoadGen Offline runs (one process each, short-run setting) at several batch
  sizes, against batch 1.

Usage: ``python benchmarks/bench_offline.py [--batch-sizes 1 2 4 8] [--seconds 10]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from squad.data import DataConfig, prepare_data
from squad.features import build_features

REPO = Path(__file__).resolve().parents[1]


def bench_features(baseline_questions: int) -> None:
    data = prepare_data(DataConfig(), progress=False)
    started = time.perf_counter()
    features = build_features(data.examples, data.vocab_path)
    full_s = time.perf_counter() - started

    subset = data.examples[:baseline_questions]
    started = time.perf_counter()
    build_features(subset, data.vocab_path)
    fast_s = time.perf_counter() - started
    slow_s = _reference_style_tokenization(subset, data.vocab_path)

    print("\n## Feature building (dev-v1.1)")
    print("| what | questions | features | seconds |")
    print("|---|---|---|---|")
    print(f"| harness, whole dev set | {len(data.examples)} | {len(features)} | {full_s:.2f} |")
    print(f"| harness, first {len(subset)} | {len(subset)} | - | {fast_s:.2f} |")
    if slow_s is not None:
        print(f"| pure-Python WordPiece tokenization only, first {len(subset)} | {len(subset)} "
              f"| - | {slow_s:.2f} |")
        print(f"\nspeed-up on the same questions: {slow_s / fast_s:.1f}x "
              "(the baseline counts tokenization alone, so the real gap is larger)")


def _reference_style_tokenization(examples, vocab_path: Path) -> float | None:
    """Tokenize as the reference does: the question, then each paragraph word, per question."""
    try:
        from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy
    except ImportError:
        print("(transformers' pure-Python BertTokenizerLegacy unavailable: no baseline)")
        return None
    tokenizer = BertTokenizerLegacy(str(vocab_path))
    started = time.perf_counter()
    for example in examples:
        tokenizer.tokenize(example.question_text)
        for word in example.doc_tokens:
            tokenizer.tokenize(word)
    return time.perf_counter() - started


def bench_offline(batch_sizes: list[int], seconds: int, model: str, backend: str) -> None:
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        conf = Path(scratch) / "user.conf"
        for batch in batch_sizes:
            conf.write_text(
                "bert.Offline.target_qps = 8\n"
                f"*.Offline.min_duration = {seconds * 1000}\n*.Offline.min_query_count = 1\n"
            )
            command = [
                sys.executable, "-m", "harness", "run", "--scenario", "Offline",
                "--backend", backend, "--model", model, "--batch-size", str(batch),
                "--user-conf", str(conf), "--results-dir", str(Path(scratch) / "results"),
                "--system", f"bench-b{batch}", "--no-progress",
            ]
            subprocess.run(command, cwd=REPO, check=True, capture_output=True, text=True)
            result_file = next((Path(scratch) / "results" / f"bench-b{batch}").rglob("result.json"))
            result = json.loads(result_file.read_text())
            rows.append((batch, result["samples_per_second"], result["latencies_ns"]["50.00"]))
    print(f"\n## Offline, {model} on {backend} (LoadGen, {seconds} s minimum per point)")
    print("| batch | samples/s | ratio vs batch 1 | p50 latency (s) |")
    print("|---|---|---|---|")
    base = rows[0][1]
    for batch, throughput, p50 in rows:
        print(f"| {batch} | {throughput:.2f} | {throughput / base:.2f} | {p50 / 1e9:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--model", default="minilm-l6-squad-demo")
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--baseline-questions", type=int, default=1000)
    parser.add_argument("--skip-features", action="store_true")
    args = parser.parse_args()
    if not args.skip_features:
        bench_features(args.baseline_questions)
    bench_offline(args.batch_sizes, args.seconds, args.model, args.backend)


if __name__ == "__main__":
    main()
