"""A stand-in for the MLCommons BERT reference SUT, as the baseline of ``bench_throughput``.

It runs the way ``language/bert/onnxruntime_SUT.py`` does: ONNX Runtime with default
session options, every feature padded to 384 tokens and run alone (batch 1), one Python
thread started per sample while a busy-wait keeps the number of live threads under the core
count, each response copied into an ``array.array`` and completed on its own. LoadGen runs
Offline in accuracy mode over the first N questions, so the same run gives F1 and samples/s
(first issue to last completion, measured here).

Usage (one LoadGen test per process): ``python benchmarks/reference_loop.py MODEL.onnx
OUTDIR --max-examples N``; writes ``OUTDIR/mlperf_log_accuracy.json`` and
``OUTDIR/reference.json`` ({"samples_per_s", "features"}).
"""

from __future__ import annotations

import argparse
import array
import json
import os
import threading
import time
from pathlib import Path

import mlperf_loadgen as lg
import numpy as np
import onnxruntime as ort

from backends import tensor_names
from squad.data import DataConfig, prepare_data


class ReferenceStyleSUT:
    """Thread per sample, padded batch 1, default ONNX Runtime session (see module doc)."""

    def __init__(self, model: Path, features) -> None:
        self.session = ort.InferenceSession(str(model), ort.SessionOptions(),
                                            providers=["CPUExecutionProvider"])
        names = tensor_names.match_inputs(i.name for i in self.session.get_inputs())
        self.inputs = names or tensor_names.INPUTS["mlperf"]
        self.features = features
        self.first_issue: float | None = None
        self.last_completion = 0.0
        self.lock = threading.Lock()

    def issue_queries(self, samples) -> None:
        self.first_issue = self.first_issue or time.monotonic()
        limit = os.cpu_count() or 1
        for sample in samples:
            while threading.active_count() >= limit:
                pass  # the reference's busy-wait on the thread count
            threading.Thread(target=self.process, args=(sample.index, sample.id)).start()

    def process(self, index: int, sample_id: int) -> None:
        arrays = (self.features.input_ids, self.features.input_mask, self.features.segment_ids)
        feeds = {name: np.asarray(a[index]).astype(np.int64)[np.newaxis, :]
                 for name, a in zip(self.inputs, arrays, strict=True)}
        scores = self.session.run([o.name for o in self.session.get_outputs()], feeds)
        output = np.stack(scores, axis=-1)[0]
        response_array = array.array("B", output.tobytes())
        address, count = response_array.buffer_info()
        lg.QuerySamplesComplete([lg.QuerySampleResponse(sample_id, address, count)])
        with self.lock:
            self.last_completion = time.monotonic()

    def flush_queries(self) -> None:
        """Nothing is held back."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--max-examples", type=int, default=2804)
    args = parser.parse_args()
    features = prepare_data(DataConfig(max_examples=args.max_examples), progress=False).features
    sut = ReferenceStyleSUT(args.model, features)
    settings = lg.TestSettings()
    settings.scenario = lg.TestScenario.Offline
    settings.mode = lg.TestMode.AccuracyOnly
    log = lg.LogSettings()
    args.outdir.mkdir(parents=True, exist_ok=True)
    log.log_output.outdir = str(args.outdir)
    log.log_output.copy_summary_to_stdout = False
    log.enable_trace = False
    sut_handle = lg.ConstructSUT(sut.issue_queries, sut.flush_queries)
    qsl_handle = lg.ConstructQSL(len(features), len(features), lambda _: None, lambda _: None)
    lg.StartTestWithLogSettings(sut_handle, qsl_handle, settings, log)
    lg.DestroyQSL(qsl_handle)
    lg.DestroySUT(sut_handle)
    active = sut.last_completion - (sut.first_issue or sut.last_completion)
    (args.outdir / "reference.json").write_text(json.dumps(
        {"samples_per_s": len(features) / max(active, 1e-9), "features": len(features)}))


if __name__ == "__main__":
    main()
