"""``results/index.html`` (harness.report): every run of a real results tree listed, settings
read tolerantly, rebuilt by every run and never failing one."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from common.errors import HarnessWarning
from harness.report.index import index_root, rebuild_index, write_index
from harness.report.runs import find_runs, read_run

PROJECT = Path(__file__).resolve().parents[1]


def by_status(runs) -> dict[str, list]:
    found: dict[str, list] = {}
    for run in runs:
        found.setdefault(run.status, []).append(run)
    return found


def test_every_run_of_the_tree_is_found(null_results: Path) -> None:
    runs = find_runs(null_results)
    status = by_status(runs)
    assert len(runs) == 6
    assert len(status["result"]) == 4 and len(status["history"]) == 1
    assert len(status["failed"]) == 1 and status["failed"][0].metric is None
    assert {r.scenario for r in runs} == {"Offline", "Server", "SingleStream"}
    assert {r.backend for r in runs} == {"null", "wafer"}
    accuracy = next(r for r in runs if r.mode == "accuracy")
    assert accuracy.f1 is not None and accuracy.metric is None
    server = next(r for r in runs if r.scenario == "Server")
    # Server's figure is LoadGen's scheduled samples/s, as in the published table
    summary = (server.path / "mlperf_log_summary.txt").read_text()
    assert f"Scheduled samples per second : {server.metric:.2f}" in summary
    assert server.short is True and server.rules == "loadgen" and server.valid is not None
    assert [r.timestamp for r in runs] == sorted((r.timestamp for r in runs), reverse=True)


def test_settings_read_tolerantly(null_results: Path, tmp_path: Path) -> None:
    source = next(r for r in find_runs(null_results) if r.scenario == "Server").path
    run = tmp_path / "results" / "box" / "m" / "Server" / "performance" / "run_1"
    shutil.copytree(source, run)
    # a settings layer that renamed and dropped keys, or no settings at all, reads as blanks
    (run / "settings.json").write_text(json.dumps({"config": {"Scenario": "Server"},
                                                   "model": "a-path", "backend": 3}))
    record = read_run(run, tmp_path / "results")
    assert (record.model, record.backend, record.rules, record.short) == ("a-path", "3", "",
                                                                         None)
    assert record.system == "box" and record.scenario == "Server" and record.metric
    (run / "settings.json").write_text("{not json")
    (run / "mlperf_log_summary.txt").unlink()
    record = read_run(run, tmp_path / "results")
    assert record.model == "" and record.metric is not None  # from result.json
    assert "a-path" not in write_index(tmp_path / "results")[0].read_text()


def test_the_page_lists_every_run_with_links_that_resolve(null_results: Path,
                                                          tmp_path: Path) -> None:
    root = tmp_path / "results"
    shutil.copytree(null_results, root)
    point = root / "sweeps" / "s1" / "points" / "p1"
    source = next(r for r in find_runs(root) if r.scenario == "Server").path
    shutil.copytree(source, point / "box" / "m" / "Server" / "performance" / "run_1")
    (root / "sweeps" / "s1" / "report.html").write_text("<html></html>")
    path, count = write_index(root)
    page = path.read_text()
    assert count == 7 and page.count("<tr data-scenario=") == 7
    assert "sweep s1" in page and 'href="sweeps/s1/report.html"' in page
    for run in find_runs(root):
        rel = run.path.relative_to(root).as_posix()
        assert f'href="{rel}/"' in page
        assert run.path.is_dir()
    runs = find_runs(root)
    assert page.count(">FAILED</span>") == 1
    assert page.count(">VALID</span>") == sum(r.valid is True and r.status != "failed"
                                              for r in runs)
    assert page.count(">INVALID</span>") == sum(r.valid is False and r.status != "failed"
                                                for r in runs)
    assert "Among the 61 published v1.0 bert-99 Offline results" in page
    assert "not comparable as is" in page
    assert "<script src" not in page and "http://" not in page.replace(
        "http://www.w3.org", "")  # self-contained: nothing fetched


def test_runs_rebuild_the_page_of_their_tree(null_results: Path) -> None:
    page = (null_results / "index.html").read_text()
    assert page.count("<tr data-scenario=") == 5  # the failed run came after the last rebuild
    assert index_root(null_results / "sweeps") == null_results


def test_a_sweep_point_rebuilds_the_page_of_its_tree(tmp_path: Path) -> None:
    for sweeps in (tmp_path / "results" / "sweeps", tmp_path / "elsewhere"):
        (sweeps / "s1" / "points").mkdir(parents=True)
        (sweeps / "s1" / "sweep.toml").write_text("name = 's1'\n")
        point = sweeps / "s1" / "points" / "p3"
        expected = tmp_path / "results" if sweeps.name == "sweeps" else sweeps
        assert index_root(point) == expected
        assert rebuild_index(point) == expected / "index.html"
        assert not (point / "index.html").exists()


def test_a_page_that_cannot_be_written_is_a_warning(tmp_path: Path) -> None:
    blocked = tmp_path / "results"
    blocked.mkdir()
    (blocked / "index.html").mkdir()  # a folder where the page goes
    with pytest.warns(HarnessWarning, match="index.html not rewritten"):
        assert rebuild_index(blocked) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert rebuild_index(tmp_path / "empty") is not None  # an empty tree is fine


def test_report_command(null_results: Path, tmp_path: Path) -> None:
    root = tmp_path / "r"
    shutil.copytree(null_results, root)
    done = subprocess.run([sys.executable, "-m", "harness", "report", "--results-dir",
                           str(root)], cwd=PROJECT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{root / 'index.html'}: 6 runs"
