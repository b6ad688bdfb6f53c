"""The Server peak search inside a sweep, with a stand-in for ``python -m harness run``: a
script that answers like a run (its folder, result.json, settings.json, exit 0 VALID or 3
INVALID) at once, from a capacity it is given. What is tested is which runs the search
starts and where it stops: from the warm-up's rate, within the budget, every group."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

from harness.sweep.engine import SweepOptions, run_sweep
from harness.sweep.spec import Axis, PeakSettings, SweepSpec

STAND_IN = '''#!{python}
"""Answers like ``python -m harness run``: VALID up to {capacity} QPS."""
import json, sys
from pathlib import Path
args = sys.argv[3:]
flag = lambda name: args[args.index(name) + 1] if name in args else None
sized = flag("--target-qps") is None
qps = {measured} / 2 if sized else float(flag("--target-qps"))
run = Path(flag("--results-dir")) / "sys" / "model" / "Server" / "performance" / "run_1"
run.mkdir(parents=True)
valid = qps <= {capacity}
(run / "result.json").write_text(json.dumps({{
    "scenario": "Server", "mode": "performance", "valid": valid, "samples_per_second": qps,
    "latencies_ns": {{"50.00": 2e7, "99.00": 1e8 if valid else 9e8}}, "query_count": 500,
    "invalid_reasons": [] if valid else ["Reduce target QPS to improve latency"]}}))
warmup = {{"s_per_sample": 1 / {measured}}}
if sized:
    warmup["sized"] = {{"value": qps, "measured_samples_per_s": {measured}}}
(run / "settings.json").write_text(json.dumps({{"warmup": warmup}}))
(run / "mlperf_log_detail.txt").write_text(":::MLLOG " + json.dumps({{
    "key": "effective_target_latency_ns", "value": 130000000, "time_ms": 0,
    "metadata": {{}}}}) + "\\n")
sys.exit(0 if valid else 3)
'''


def stand_in(tmp_path: Path, capacity: float, measured: float) -> str:
    path = tmp_path / "fake-python"
    path.write_text(STAND_IN.format(python=sys.executable, capacity=capacity,
                                    measured=measured))
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def spec(tmp_path: Path, peak: PeakSettings, queries: int, groups: int = 1) -> SweepSpec:
    axes = (Axis("batch_size", tuple(range(1, groups + 1))),) if groups > 1 else ()
    return SweepSpec(tmp_path / "s.toml", "s", "", {"scenario": "Server", "backend": "null",
                                                    "short": True, "min_duration_ms": 0,
                                                    "min_query_count": queries}, axes,
                     peak=peak)


def search(tmp_path: Path, peak: PeakSettings, queries: int = 1, groups: int = 1,
           capacity: float = 50.0, measured: float = 80.0, distribution: bool = False):
    options = SweepOptions(find_peak=True, results_dir=tmp_path / "out", progress=False,
                           distribution=distribution,
                           python=stand_in(tmp_path, capacity, measured))
    return run_sweep(spec(tmp_path, peak, queries, groups), options)


def test_the_search_starts_from_half_the_warm_up_and_finds_the_peak(tmp_path: Path) -> None:
    outcome = search(tmp_path, PeakSettings(growth=1.5, tolerance=1.0))
    peak = outcome.peaks[0]
    assert [p.qps for p in peak.probes][:2] == [40.0, 60.0]  # 80 measured: 40, then x 1.5
    assert peak.peak is not None and peak.peak <= 50.0 < peak.ceiling
    assert peak.ceiling - peak.peak <= 1.0
    assert "sized from its warm-up (80 samples/s measured)" in peak.note
    assert outcome.rows[0]["target_qps"] == 40.0 and outcome.rows[0]["phase"] == "start"
    assert outcome.failed == 0  # INVALID probes (exit 3) are finished runs


def test_the_budget_stops_the_search_and_leaves_later_groups_unsearched(
        tmp_path: Path) -> None:
    # 100000 queries: a probe at 60 QPS would last 28 minutes; the budget is 1 minute
    outcome = search(tmp_path, PeakSettings(growth=1.5, tolerance=1.0, budget_minutes=1.0),
                     queries=100_000, groups=2)
    first, second = outcome.peaks
    assert [p.qps for p in first.probes] == [40.0] and first.peak == 40.0
    assert "stopped before a probe at 60 QPS" in first.note and "1-minute budget" in first.note
    assert second.probes == () and "not searched" in second.note
    assert len(outcome.rows) == 1
    summary = json.loads((outcome.folder / "sweep.json").read_text())
    assert summary["peaks"][0]["peak_qps"] == 40.0


def test_a_machine_too_busy_for_the_bound_ends_the_search(tmp_path: Path) -> None:
    # 5 samples/s measured: 200 ms a sample, above the 130 ms bound: no lower rate can pass
    outcome = search(tmp_path, PeakSettings(growth=2.0, tolerance=0.5), capacity=1.0,
                     measured=5.0, distribution=True)
    peak = outcome.peaks[0]
    assert [p.qps for p in peak.probes] == [2.5] and peak.peak is None
    assert "stopped before a probe at 1.25 QPS: the warm-up took 200 ms a sample, above " \
        "the 130 ms bound" in peak.note
    assert outcome.rows[0]["latency_bound_ms"] == 130.0
    # no peak: the best point is repeated for the distribution plot at the rate it ran at,
    # not sized again from a new warm-up
    traced = next((outcome.folder / "points").glob("*-trace"))
    command = json.loads((traced / "point.json").read_text())["command"]
    assert command[command.index("--target-qps") + 1] == "2.5"
