"""Sweeps end to end: each point its own run (null backend, first questions of the dev set),
the table, plots and report, resuming, retrying, Ctrl-C, the peak search, a modelled sweep.

Each sweep is the real command line in a subprocess (the points are runs of their own, in
processes of their own). Nothing here depends on how fast the machine is: rates and delays
are far from any limit, and assertions are about what is written, not how fast.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.sweep.engine import SweepOptions, run_sweep
from harness.sweep.spec import Axis, ModelledSettings, ReportSettings, load_sweep

REPO = Path(__file__).resolve().parents[1]
BOUND_S = 300  # a sweep of a few one-second runs that has not ended after this is hung
PNG = b"\x89PNG\r\n\x1a\n"
SWEEP = """
[sweep]
name = "{name}"

[base]
scenario = "Server"
backend = "null"
short = true
max_examples = 20
min_duration_ms = 500
min_query_count = 1
backend_options = {{ delay_ms = 1 }}

[points]
target_qps = [40, 80]
batch_size = [1, 2]
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, squad_dir: Path) -> Path:
    """A folder with a user.conf and the dev set's features cached once."""
    root = tmp_path_factory.mktemp("sweeps")
    shutil.copy(REPO / "user.conf", root / "user.conf")
    done = subprocess.run([sys.executable, "-m", "harness", "data", "--mirror", str(squad_dir),
                           "--no-download"], cwd=root, capture_output=True, text=True,
                          timeout=BOUND_S)
    assert done.returncode == 0, done.stderr
    return root


def data_flags(root: Path) -> list[str]:
    return ["--mirror", str(root / "datasets" / "squad"), "--no-download"]


def sweep(root: Path, path: Path, *extra: str, flags: list[str] | None = None,
          ) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness", "sweep", str(path), "--no-progress",
         "--results-dir", str(root / "sweeps-out"),
         *(data_flags(root) if flags is None else flags), *extra],
        cwd=root, capture_output=True, text=True, timeout=BOUND_S)


def write_sweep(root: Path, name: str, text: str = SWEEP) -> Path:
    path = root / f"{name}.toml"
    path.write_text(text.format(name=name), encoding="utf-8")
    return path


def rows_of(folder: Path) -> list[dict[str, str]]:
    with (folder / "sweep.csv").open(newline="", encoding="utf-8") as table:
        return list(csv.DictReader(table))


@pytest.fixture(scope="module")
def finished(workspace: Path) -> Path:
    """One small sweep, run once: four points and the distribution run."""
    done = sweep(workspace, write_sweep(workspace, "grid"))
    assert done.returncode == 0, done.stderr + done.stdout
    assert "report: " in done.stdout
    return workspace / "sweeps-out" / "grid"


def test_each_point_is_its_own_run_in_its_own_folder(finished: Path) -> None:
    rows = rows_of(finished)
    assert [(r["target_qps"], r["batch_size"]) for r in rows] == [
        ("40", "1"), ("40", "2"), ("80", "1"), ("80", "2")]
    folders = {r["run_dir"] for r in rows}
    assert len(folders) == 4
    for row in rows:
        run = finished / row["run_dir"]
        assert (run / "result.json").is_file() and (run / "mlperf_log_detail.txt").is_file()
        assert row["status"] == "done"
        conf = (run / "user.conf").read_text()
        assert f"bert.Server.target_qps = {row['target_qps']}" in conf
        settings = json.loads((run / "settings.json").read_text())
        assert settings["config"]["batch_size"] == int(row["batch_size"])


def test_the_table_has_every_figure_of_every_point(finished: Path) -> None:
    rows = rows_of(finished)
    for column in ("point", "label", "status", "scenario", "backend", "samples_per_second",
                   "scheduled_qps", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "max_ms", "valid",
                   "reason", "early_stopping_met", "early_stopping", "query_count", "run_dir"):
        assert column in rows[0], column
    for row in rows:
        assert float(row["samples_per_second"]) > 0
        assert float(row["p50_ms"]) <= float(row["p90_ms"]) <= float(row["p99_ms"]) \
            <= float(row["max_ms"])
        assert row["valid"] in ("true", "false")
        assert row["early_stopping"]  # LoadGen's own words
    summary = json.loads((finished / "sweep.json").read_text())
    assert len(summary["points"]) == 4
    assert summary["host"]["cores"] and summary["command"][:4] == ["python", "-m", "harness",
                                                                   "sweep"]
    assert summary["axes"] == {"target_qps": [40, 80], "batch_size": [1, 2]}


def test_the_plots_and_one_self_contained_report(finished: Path) -> None:
    summary = json.loads((finished / "sweep.json").read_text())
    plots = summary["plots"]
    assert "plots/latency.png" in plots and "plots/distribution.png" in plots
    for plot in plots:
        assert (finished / plot).read_bytes().startswith(PNG)
    page = (finished / "report.html").read_text(encoding="utf-8")
    assert page.count('src="data:image/png;base64,') == len(plots)
    assert "http://" not in page and "https://" not in page  # nothing fetched from anywhere
    assert page.count('src="') == len(plots)
    assert "python -m harness sweep" in page and summary["host"]["cpu"] in page
    assert page.count("<tr") == 1 + 4  # the heading and a row a point
    assert summary["distribution"]["samples"] > 0  # per-sample latencies from the trace


def test_a_second_invocation_skips_finished_points(workspace: Path, finished: Path) -> None:
    before = {p: (p / "point.json").read_text() for p in (finished / "points").iterdir()}
    stamps = {r["run_dir"]: (finished / r["run_dir"] / "result.json").stat().st_mtime_ns
              for r in rows_of(finished)}
    done = sweep(workspace, workspace / "grid.toml")
    assert done.returncode == 0, done.stderr
    assert "4 of 4 done before" in done.stdout
    assert {p: (p / "point.json").read_text() for p in (finished / "points").iterdir()} == before
    for run_dir, stamp in stamps.items():
        assert (finished / run_dir / "result.json").stat().st_mtime_ns == stamp


def test_failed_points_are_retried_on_the_next_invocation(workspace: Path, tmp_path: Path) -> None:
    path = write_sweep(workspace, "retry", SWEEP.replace("[40, 80]", "[40]"))
    empty = tmp_path / "no-data"
    empty.mkdir()
    failed = sweep(workspace, path, flags=["--data-dir", str(empty), "--mirror", str(empty),
                                           "--no-download"])
    assert failed.returncode == 1, failed.stderr
    assert "did not finish; run the same command again" in failed.stderr
    rows = rows_of(workspace / "sweeps-out" / "retry")
    assert [r["status"] for r in rows] == ["failed", "failed"]
    assert all("dev-v1.1.json" in r["error"] for r in rows)
    done = sweep(workspace, path)
    assert done.returncode == 0, done.stderr
    rows = rows_of(workspace / "sweeps-out" / "retry")
    assert [r["status"] for r in rows] == ["done", "done"]
    for row in rows:
        info = json.loads((workspace / "sweeps-out/retry/points" / row["point"] /
                           "point.json").read_text())
        assert info["attempts"] == 2 and info["status"] == "done"


def test_rerun_measures_finished_points_again_and_keeps_the_earlier_runs(
        workspace: Path) -> None:
    path = write_sweep(workspace, "again", SWEEP.replace("batch_size = [1, 2]", "batch_size = [1]"))
    first = sweep(workspace, path, "--no-distribution")
    assert first.returncode == 0, first.stderr
    again = sweep(workspace, path, "--no-distribution", "--rerun")
    assert again.returncode == 0, again.stderr
    assert "done before" not in again.stdout
    for row in rows_of(workspace / "sweeps-out" / "again"):
        run = workspace / "sweeps-out" / "again" / row["run_dir"]
        assert (run / "result.json").is_file()
        assert len(list((run.parent.parent / "history").glob("performance-run_1-replaced-*"))) == 1


def test_ctrl_c_stops_the_running_point_and_keeps_finished_ones(workspace: Path) -> None:
    text = SWEEP.replace("target_qps = [40, 80]\nbatch_size = [1, 2]",
                         "min_duration_ms = [500, 600000]").replace("delay_ms = 1",
                                                                    "delay_ms = 20")
    path = write_sweep(workspace, "stop", text)
    run = subprocess.Popen(
        [sys.executable, "-m", "harness", "sweep", str(path), "--no-progress",
         "--results-dir", str(workspace / "sweeps-out"), *data_flags(workspace)],
        cwd=workspace, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    folder = workspace / "sweeps-out" / "stop"
    ends = time.monotonic() + BOUND_S
    while not list(folder.glob("points/dur600000-*/*/*/Server/performance/.run_1.staging-*/"
                               "mlperf_log_detail.txt")):
        assert time.monotonic() < ends and run.poll() is None, "the long point never started"
        time.sleep(0.2)
    time.sleep(1.0)
    run.send_signal(signal.SIGINT)
    _, stderr = run.communicate(timeout=BOUND_S)
    assert run.returncode == 130, stderr
    assert stderr.count("error: ") == 1 and "Traceback" not in stderr
    assert "finished points are kept" in stderr
    rows = {r["label"]: r for r in rows_of(folder)}
    assert rows["min_duration_ms=500"]["status"] == "done"
    assert (folder / rows["min_duration_ms=500"]["run_dir"] / "result.json").is_file()
    assert rows["min_duration_ms=600000"]["status"] == "interrupted"
    long_point = next(folder.glob("points/dur600000-*"))
    assert list(long_point.glob("*/*/Server/performance/run_1.interrupted-*"))
    assert json.loads((long_point / "point.json").read_text())["status"] == "interrupted"
    # the table, plots and report of what finished are written all the same
    summary = json.loads((folder / "sweep.json").read_text())
    assert summary["interrupted"] is True and summary["headline"].startswith("Interrupted")
    page = (folder / "report.html").read_text(encoding="utf-8")
    assert "Interrupted" in page and "min_duration_ms=500" in page
    assert "plots/latency.png" in summary["plots"]
    assert (folder / "plots" / "latency.png").read_bytes().startswith(PNG)
    # --report-only redraws them from the finished points and runs nothing
    (folder / "report.html").unlink()
    before = sorted(p.name for p in (folder / "points").iterdir())
    again = sweep(workspace, path, "--report-only")
    assert again.returncode == 0, again.stderr
    assert "1 point(s) not finished are left out" in again.stderr
    assert sorted(p.name for p in (folder / "points").iterdir()) == before
    assert "min_duration_ms=500" in (folder / "report.html").read_text(encoding="utf-8")
    assert [r["status"] for r in rows_of(folder)] == ["done", "pending"]


def test_report_only_refuses_a_sweep_that_never_ran(workspace: Path) -> None:
    done = sweep(workspace, write_sweep(workspace, "never"), "--report-only")
    assert done.returncode == 2 and "nothing to report" in done.stderr
    assert "Traceback" not in done.stderr


def test_find_peak_starts_from_the_warm_up_and_keeps_its_budget(workspace: Path) -> None:
    text = SWEEP.replace("min_query_count = 1\n", "min_query_count = 500\n").replace(
        "[points]\ntarget_qps = [40, 80]\nbatch_size = [1, 2]\n", """
[points]
[peak]
tolerance = 10000
budget_minutes = 10
""").replace("delay_ms = 1", "delay_ms = 5")
    done = sweep(workspace, write_sweep(workspace, "sized", text), "--find-peak",
                 "--no-distribution")
    assert done.returncode == 0, done.stderr
    folder = workspace / "sweeps-out" / "sized"
    summary = json.loads((folder / "sweep.json").read_text())
    rows = rows_of(folder)
    first = rows[0]
    settings = json.loads((folder / first["run_dir"] / "settings.json").read_text())
    sized = settings["warmup"]["sized"]
    # the first probe is the run sizing itself: half of what its warm-up measured
    assert float(first["target_qps"]) == sized["value"]
    assert sized["value"] == pytest.approx(sized["measured_samples_per_s"] / 2, rel=0.01)
    assert "sized from its warm-up" in first["label"] and first["phase"] == "start"
    assert "sized from its warm-up (" in summary["peaks"][0]["note"]
    assert summary["peaks"][0]["probes"][0]["qps"] == sized["value"]


@pytest.mark.slow
def test_find_peak_brackets_and_bisects_with_every_probe_kept(workspace: Path) -> None:
    text = SWEEP.replace("min_query_count = 1\n", "min_query_count = 500\n").replace(
        "[points]\ntarget_qps = [40, 80]\nbatch_size = [1, 2]\n", """
[points]
[peak]
start = 100
tolerance = 100
max_probes = 8
""").replace("delay_ms = 1", "delay_ms = 2")
    done = sweep(workspace, write_sweep(workspace, "peak", text), "--find-peak")
    assert done.returncode == 0, done.stderr
    assert "Server peak search" in done.stdout
    folder = workspace / "sweeps-out" / "peak"
    summary = json.loads((folder / "sweep.json").read_text())
    peak = summary["peaks"][0]
    rows = rows_of(folder)
    assert [int(r["probe"]) for r in rows] == list(range(1, len(rows) + 1))
    assert [float(r["target_qps"]) for r in rows] == [p["qps"] for p in peak["probes"]]
    assert len(rows) >= 2 and rows[0]["phase"] == "start"
    if peak["peak_qps"] is not None:  # the peak is a rate whose run was VALID
        at = [r for r in rows if float(r["target_qps"]) == peak["peak_qps"]]
        assert at and at[0]["valid"] == "true"
    assert "plots/peak.png" in summary["plots"] and "plots/latency.png" in summary["plots"]


def test_a_modelled_sweep_plots_modelled_against_measured(workspace: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped wafer sweep, with the null backend's delay standing in for the wafer's
    modelled latency (until a wafer is at hand: same file, same plots)."""
    spec = load_sweep(REPO / "sweeps" / "wafer-clock.toml")
    assert spec.report.modelled is not None and spec.axes[0].name.endswith("clock_ghz")
    stand_in = dataclasses.replace(
        spec, name="wafer-stand-in",
        base={**spec.base, "backend": "null", "backend_options": {}, "max_examples": 20,
              "min_duration_ms": 0, "min_query_count": 64},
        axes=(Axis("backend_options.delay_ms", (2, 5)),),
        report=ReportSettings(distribution="none",
                              modelled=ModelledSettings(figure="p50_ms", formula="delay_ms")))
    monkeypatch.chdir(workspace)
    outcome = run_sweep(stand_in, SweepOptions(results_dir=workspace / "sweeps-out",
                                               extra_args=tuple(data_flags(workspace)),
                                               progress=False))
    assert outcome.failed == 0
    for row in outcome.rows:
        assert row["modelled"] == row["backend_options.delay_ms"]
        assert row["p50_ms"] >= row["modelled"]  # a call sleeps at least its delay
    summary = json.loads((outcome.folder / "sweep.json").read_text())
    assert "plots/modelled.png" in summary["plots"]
    assert (outcome.folder / "plots" / "modelled.png").read_bytes().startswith(PNG)
