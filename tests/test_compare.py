"""``compare A B``: every figure of two runs, or two sweeps, side by side with the change."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from common.errors import HarnessError, HarnessWarning
from harness.sweep.compare import change, compare, compare_sides


def make_run(root: Path, samples: float, p99_ms: float, valid: bool, backend: str,
             scenario: str = "Server", model: str = "minilm", rules: str = "loadgen") -> Path:
    """A finished run folder as the harness leaves it (the figures compare reads)."""
    run = root / "sys" / "model" / scenario / "performance" / "run_1"
    run.mkdir(parents=True)
    latencies = {"50.00": p99_ms / 3 * 1e6, "90.00": p99_ms / 2 * 1e6, "99.00": p99_ms * 1e6,
                 "mean": p99_ms / 3 * 1e6, "max": p99_ms * 1.5e6, "min": 1e6}
    (run / "result.json").write_text(json.dumps({
        "scenario": scenario, "mode": "performance", "valid": valid,
        "samples_per_second": samples, "latencies_ns": latencies, "query_latencies_ns": {},
        "query_count": 400, "invalid_reasons": [] if valid else ["latency constraint not met"],
        "errors": [], "wall_s": 10.2}))
    (run / "settings.json").write_text(json.dumps({
        "config": {"scenario": scenario, "backend": backend, "batch_size": 1, "model": model,
                   "rules": rules, "results_dir": str(root)},
        "model": {"name": model}, "host": {"cpu": "Test CPU"}}))
    return run


def make_sweep(folder: Path, peak: float, points: list[tuple[int, float, float]]) -> Path:
    folder.mkdir(parents=True)
    (folder / "sweep.json").write_text(json.dumps({
        "sweep": folder.name, "host": {"cpu": "Test CPU"}, "axes": {"target_qps": [10, 20]},
        "find_peak": False,
        "peaks": [{"peak_qps": peak, "probes": [{"qps": peak, "valid": True}]}],
        "best": {"label": "target_qps=20", "samples_per_second": points[-1][1],
                 "p99_ms": points[-1][2], "valid": True},
        "points": [{"label": f"target_qps={q}", "status": "done", "target_qps": q,
                    "samples_per_second": s, "p99_ms": p99, "valid": True} for q, s, p99 in points],
    }))
    return folder


def test_two_runs_every_figure_and_its_change(tmp_path: Path) -> None:
    a = make_run(tmp_path / "a", 40.0, 120.0, True, "onnxruntime")
    b = make_run(tmp_path / "b", 44.0, 150.0, False, "pytorch")
    text = compare(tmp_path / "a", tmp_path / "b", tmp_path)  # folders holding one run each
    assert f"A: {a}" in text and "onnxruntime" in text and "pytorch" in text
    lines = {line.split("  ")[0]: line for line in text.splitlines()}
    assert "+4.00 (+10.0%, better)" in lines["samples/s"]
    assert "+30.00 (+25.0%, worse)" in lines["p99 ms"]
    assert "now INVALID" in lines["verdict"]
    assert "same" in lines["queries"]
    assert "latency constraint not met" in text  # the reason, in full
    assert f"B: {b}" in text


def test_two_sweeps_peak_best_and_matching_points(tmp_path: Path) -> None:
    make_sweep(tmp_path / "before", 41.0, [(10, 10.0, 30.0), (20, 19.5, 60.0)])
    make_sweep(tmp_path / "after", 52.5, [(10, 10.0, 20.0), (20, 20.0, 45.0), (30, 29.0, 90.0)])
    text = compare(tmp_path / "before", tmp_path / "after" / "sweep.json", tmp_path)
    assert "peak QPS" in text and "+11.50 (+28.0%, better)" in text
    assert "point target_qps=10:" in text and "point target_qps=20:" in text
    assert "-10.00 (-33.3%, better)" in text  # p99 of the first point
    assert "(1 points are in one sweep only" in text


def test_changes_read_the_right_way() -> None:
    assert change("samples_per_second", 100.0, 90.0) == "-10.00 (-10.0%, worse)"
    assert change("p50_ms", 10.0, 9.0) == "-1.00 (-10.0%, better)"
    assert change("valid", False, True) == "now VALID"
    assert change("query_count", 5, 5) == "same"
    assert change("reason", None, "x") == "only one side has it"


def test_a_run_and_a_sweep_do_not_compare(tmp_path: Path) -> None:
    make_run(tmp_path / "a", 40.0, 120.0, True, "onnxruntime")
    make_sweep(tmp_path / "s", 41.0, [(10, 10.0, 30.0)])
    with pytest.raises(HarnessError, match="compare two runs or two sweeps"):
        compare(tmp_path / "a", tmp_path / "s", tmp_path)


def test_the_command_line(tmp_path: Path) -> None:
    make_run(tmp_path / "a", 40.0, 120.0, True, "onnxruntime")
    make_run(tmp_path / "b", 50.0, 110.0, True, "onnxruntime")

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "harness", "compare", *args],
                              cwd=tmp_path, capture_output=True, text=True, timeout=120)

    done = cli("a", "b")
    assert done.returncode == 0, done.stderr
    assert "+10.00 (+25.0%, better)" in done.stdout
    missing = cli("a", "nowhere")
    assert missing.returncode == 2 and missing.stderr.count("error: ") == 1
    assert "nowhere: no such run or sweep folder" in missing.stderr
    make_run(tmp_path / "worse", 20.0, 110.0, True, "onnxruntime")
    gate = cli("a", "worse", "--fail-below", "10")
    assert gate.returncode == 1 and "regression:" in gate.stdout, gate.stderr
    assert cli("a", "b", "--fail-below", "10").returncode == 0
    bad = cli("a", "b", "--fail-below", "nan")
    assert bad.returncode == 2 and "expected a percentage from 0 to 100" in bad.stderr
    make_run(tmp_path / "offline", 20.0, 110.0, True, "onnxruntime", scenario="Offline")
    refused = cli("a", "offline")
    assert refused.returncode == 2 and refused.stderr.count("error: ") == 1
    assert "Traceback" not in refused.stderr
    forced = cli("a", "offline", "--force", "--json")
    assert forced.returncode == 0 and "\nwarning: comparing different things" in forced.stderr
    assert json.loads(forced.stdout)["mismatch"] == ["scenario: Server in A, Offline in B"]
    listing = cli("--results-dir", str(tmp_path))
    assert listing.returncode == 0 and "compare takes two runs or two sweeps" in listing.stdout


def test_runs_of_different_scenarios_models_or_rules_are_refused_unless_forced(
        tmp_path: Path) -> None:
    make_run(tmp_path / "a", 40.0, 120.0, True, "onnxruntime")
    make_run(tmp_path / "b", 44.0, 90.0, True, "onnxruntime", scenario="Offline")
    make_run(tmp_path / "c", 44.0, 90.0, True, "onnxruntime", model="bert-large",
             rules="v1.1")
    with pytest.raises(HarnessError, match="scenario: Server in A, Offline in B"):
        compare_sides(tmp_path / "a", tmp_path / "b", tmp_path)
    with pytest.raises(HarnessError) as refused:
        compare_sides(tmp_path / "a", tmp_path / "c", tmp_path)
    assert "model: minilm in A, bert-large in B" in str(refused.value)
    assert "rules: loadgen in A, v1.1 in B" in str(refused.value)
    assert "--force" in str(refused.value)
    with pytest.warns(HarnessWarning, match="scenario: Server in A, Offline in B"):
        forced = compare_sides(tmp_path / "a", tmp_path / "b", tmp_path, force=True)
    assert "+4.00 (+10.0%, better)" in forced.text


def test_every_setting_that_differs_is_shown_and_locations_are_not(tmp_path: Path) -> None:
    make_run(tmp_path / "a", 40.0, 120.0, True, "onnxruntime")
    make_run(tmp_path / "b", 40.0, 120.0, True, "pytorch")
    text = compare(tmp_path / "a", tmp_path / "b", tmp_path)
    lines = text.splitlines()
    at = lines.index("settings that differ:")
    assert lines[at + 2].split() == ["config.backend", "onnxruntime", "pytorch"]
    assert "results_dir" not in text  # each run's own folder: not a setting that differs
    make_run(tmp_path / "c", 40.0, 120.0, True, "onnxruntime")
    assert "settings: the same" in compare(tmp_path / "a", tmp_path / "c", tmp_path)


def test_fail_below_is_a_regression_gate(tmp_path: Path) -> None:
    make_run(tmp_path / "a", 40.0, 120.0, True, "onnxruntime")
    make_run(tmp_path / "slower", 30.0, 120.0, True, "onnxruntime")
    make_run(tmp_path / "near", 38.0, 125.0, True, "onnxruntime")
    make_run(tmp_path / "invalid", 41.0, 150.0, False, "onnxruntime")
    slower = compare_sides(tmp_path / "a", tmp_path / "slower", tmp_path, fail_below_pct=10)
    assert slower.regressed and "regression: samples_per_second 25.0% worse, past the 10% " \
        "allowed" in slower.text
    near = compare_sides(tmp_path / "a", tmp_path / "near", tmp_path, fail_below_pct=10)
    assert not near.regressed and "no regression past 10%" in near.text
    assert compare_sides(tmp_path / "a", tmp_path / "near", tmp_path, fail_below_pct=4).regressed
    invalid = compare_sides(tmp_path / "a", tmp_path / "invalid", tmp_path, fail_below_pct=10)
    assert invalid.regressed and "valid now INVALID" in invalid.text
    # without --fail-below nothing is judged a regression
    assert not compare_sides(tmp_path / "a", tmp_path / "slower", tmp_path).regressed


def test_a_sweep_regresses_when_its_peak_falls(tmp_path: Path) -> None:
    make_sweep(tmp_path / "before", 41.0, [(10, 10.0, 30.0), (20, 19.5, 60.0)])
    make_sweep(tmp_path / "after", 30.0, [(10, 10.0, 20.0), (20, 20.0, 45.0)])
    result = compare_sides(tmp_path / "before", tmp_path / "after", tmp_path, fail_below_pct=5)
    assert result.regressed and "peak QPS 26.8% worse" in result.text
    back = compare_sides(tmp_path / "after", tmp_path / "before", tmp_path, fail_below_pct=5)
    assert not back.regressed


def test_json_for_machines(tmp_path: Path) -> None:
    make_run(tmp_path / "a", 40.0, 120.0, True, "onnxruntime")
    make_run(tmp_path / "b", 30.0, 100.0, True, "pytorch")
    data = json.loads(compare_sides(tmp_path / "a", tmp_path / "b", tmp_path, as_json=True,
                                    fail_below_pct=10).text)
    figures = {f["figure"]: f for f in data["figures"]}
    assert figures["samples_per_second"]["a"] == 40.0 and figures["samples_per_second"]["b"] \
        == 30.0 and figures["samples_per_second"]["change"] == "-10.00 (-25.0%, worse)"
    assert data["settings"] == [{"setting": "config.backend", "a": "onnxruntime",
                                 "b": "pytorch"}]
    assert data["regressed"] is True and data["headline"][0]["change_pct"] == -25.0
    assert data["a"]["kind"] == "run" and data["mismatch"] == []
