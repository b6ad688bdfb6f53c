"""Benchmark: samples/s of every installed backend, fp32 and int8, on the demo model, one run.

Each (backend, model) participant predicts the same fixed features one at a time (batch 1,
padded to 384 tokens), after one warm-up call. Participants take turns for ``--rounds``
rounds and each one's median is reported, so clock drift over the run (15-25% on the
reference machine) hits all of them alike. Ratios are against ONNX Runtime fp32 measured in
the same run. No LoadGen: this is the backend's own speed (see bench_offline.py for that).

Usage: ``python benchmarks/bench_backends.py [--features 32] [--rounds 3]
[--backends onnxruntime,pytorch] [--models NAME,NAME-int8-dynamic]``
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import numpy as np

from backends import BackendError, BackendSettings, available_backends, get_backend_class
from common.errors import HarnessError
from harness.agreement import NOT_BY_DEFAULT, run_backend
from models.catalog import DEFAULT_MODEL, resolve_model
from squad.data import DataConfig, prepare_data
from squad.features import ARRAY_NAMES, FeatureSet

DEFAULT_MODELS = (DEFAULT_MODEL, f"{DEFAULT_MODEL}-int8-dynamic", f"{DEFAULT_MODEL}-int8-static")
HELD_OUT_FEATURES = 2841  # the demo model's held-out questions (first 2804) span these


def fixed_features(count: int) -> FeatureSet:
    """``count`` features spread evenly over the demo model's held-out features."""
    features = prepare_data(DataConfig(), progress=False).features
    rows = np.linspace(0, min(HELD_OUT_FEATURES, len(features)) - 1, count).round().astype(int)
    return dataclasses.replace(
        features, **{name: getattr(features, name)[rows] for name in ARRAY_NAMES}
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--features", type=int, default=32, help="features per round")
    parser.add_argument("--rounds", type=int, default=3, help="turns per participant")
    parser.add_argument("--backends", default=None,
                        help="comma-separated (default: every registered backend but null)")
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated")
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads, 0 = default")
    args = parser.parse_args()
    backends = args.backends.split(",") if args.backends else [
        name for name in available_backends() if name not in NOT_BY_DEFAULT
    ]
    settings = BackendSettings(intra_op_threads=args.threads, device="cpu")
    features = fixed_features(args.features)

    loaded, skipped = [], []
    for model_name in args.models.split(","):
        for backend_name in backends:
            label = f"{backend_name} / {model_name}"
            try:
                model = resolve_model(model_name, backend_name)
                backend = get_backend_class(backend_name)(settings)
                backend.load(model.path)
            except (BackendError, HarnessError) as exc:
                skipped.append(f"{label}: {str(exc).splitlines()[0]}")
                continue
            loaded.append((label, backend_name, model.precision, backend))

    rates: dict[str, list[float]] = {label: [] for label, *_ in loaded}
    started = time.perf_counter()
    for _ in range(args.rounds):
        for label, _name, _precision, backend in loaded:
            rates[label].append(run_backend(backend, features, batch_size=1)[2])
    for *_, backend in loaded:
        backend.close()

    baseline = next((statistics.median(rates[label]) for label, name, precision, _ in loaded
                     if name == "onnxruntime" and precision == "fp32"), None)
    print(f"\n## Backends on {args.features} features, batch 1, 384 tokens, "
          f"median of {args.rounds} rounds ({time.perf_counter() - started:.0f} s)")
    print("| backend / model | precision | samples/s | ms/sample | vs onnxruntime fp32 |")
    print("|---|---|---|---|---|")
    for label, _name, precision, _ in loaded:
        rate = statistics.median(rates[label])
        ratio = f"{rate / baseline:.2f}x" if baseline else "-"
        print(f"| {label} | {precision} | {rate:.2f} | {1000 / rate:.1f} | {ratio} |")
    for note in skipped:
        print(f"skipped {note}")


if __name__ == "__main__":
    main()
