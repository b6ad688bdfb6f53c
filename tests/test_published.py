"""The published MLPerf BERT table (built from the real v1.0/v1.1 results repositories), the
``published`` command and ``compare --published`` with its picture."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from harness.published import build, table
from harness.published.compare import caveats, gather_runs, place

PROJECT = Path(__file__).resolve().parents[1]
MIRRORS = {"v1.0": Path("/work/.mirror/mlcommons+inference_results_v1.0/repo"),
           "v1.1": Path("/work/.mirror/mlcommons+inference_results_v1.1/repo")}


def harness(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=PROJECT,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def rows() -> list[table.Published]:
    return table.load()


def one(rows: list[table.Published], **fields: str) -> table.Published:
    found = [r for r in rows if all(getattr(r, k) == v for k, v in fields.items())]
    assert len(found) == 1, found
    return found[0]


def test_counts_match_the_official_checker_per_round_benchmark_scenario(rows) -> None:
    counted = Counter((r.round, r.benchmark, r.scenario) for r in rows)
    # v1.0: the numbers the issue quotes from the checker's summary (closed only)
    assert counted[("v1.0", "bert-99", "Offline")] == 61
    assert counted[("v1.0", "bert-99", "Server")] == 42
    assert counted[("v1.0", "bert-99", "SingleStream")] == 19
    assert counted[("v1.0", "bert-99.9", "Offline")] == counted[("v1.0", "bert-99.9",
                                                                 "Server")] == 38
    assert sum(n for k, n in counted.items() if k[0] == "v1.0") == 198
    assert len({r.submitter for r in rows if r.round == "v1.0"}) == 9
    # v1.1: 268 closed + 4 open (Dell); no MultiStream for BERT in either round
    assert sum(n for k, n in counted.items() if k[0] == "v1.1") == 272
    assert sum(r.division == "open" for r in rows) == 4
    assert not any(r.scenario == "MultiStream" for r in rows)


def test_rows_checked_by_hand_against_the_repositories(rows) -> None:
    # closed/NVIDIA/results/DGX-A100_A100-SXM-80GBx8_TRT/bert-99/Offline: summary
    # "Samples per second: 28347.4", accuracy.txt f1 90.38087866142499
    dgx = one(rows, round="v1.0", system="DGX-A100_A100-SXM-80GBx8_TRT", benchmark="bert-99",
              scenario="Offline")
    assert (dgx.metric, dgx.unit, dgx.f1, dgx.accelerators) == (28347.4, "samples/s", 90.381, 8)
    assert dgx.family == "NVIDIA A100" and dgx.per_unit == pytest.approx(28347.4 / 8)
    # Server: "Scheduled samples per second : 26748.65" (what the checker reads)
    dell = one(rows, round="v1.0", system="DSS8440_A100-PCIE-40GBx10_TRT", benchmark="bert-99",
               scenario="Server")
    assert dell.metric == 26748.65 and dell.submitter == "DellEMC"
    # SingleStream: "90th percentile latency (ns) : 31091144" -> ms, lower is better
    xavier = one(rows, round="v1.0", system="AGX_Xavier_TRT", benchmark="bert-99",
                 scenario="SingleStream")
    assert (xavier.metric, xavier.unit, xavier.per_unit) == (31.091144, "ms", None)
    # a lower-case scenario folder (closed/Intel/.../bert-99/offline) counts as Offline
    intel = one(rows, round="v1.0", system="1-node-2S-ICX-MXNet-INT8", scenario="Offline")
    assert intel.cpu_only and intel.family == "CPU" and intel.host_cores == 80
    # power: mean of spl.txt's watts between power_begin 04:13:28.217 and power_end
    # 04:24:39.520 (672 samples; awk on the file gives 2289.98)
    maxq = one(rows, round="v1.0", system="A100-PCIex8_TRT_MaxQ", benchmark="bert-99",
               scenario="Offline")
    assert (maxq.power, maxq.power_unit) == (2289.98, "W")


@pytest.mark.skipif(not all(p.is_dir() for p in MIRRORS.values()),
                    reason="local copies of mlcommons/inference_results_v1.0 and v1.1 not found")
def test_the_committed_table_is_what_the_script_builds_from_the_repositories() -> None:
    text, _, commits = build.build(MIRRORS)
    assert text == table.TABLE_PATH.read_text(encoding="utf-8")
    assert commits["v1.0"] in (PROJECT / "harness/published/SOURCE.md").read_text()


@pytest.mark.skipif(not MIRRORS["v1.0"].is_dir(), reason="inference_results_v1.0 not found")
def test_build_reads_a_plain_folder_extracted_from_the_repository(tmp_path: Path) -> None:
    part = "closed/NVIDIA"
    archive = subprocess.run(["git", "-C", str(MIRRORS["v1.0"]), "archive", "HEAD",
                              f"{part}/systems", f"{part}/results/AGX_Xavier_TRT"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tmp_path)], input=archive, check=True)
    _, built, _ = build.build({"v1.0": tmp_path})
    assert sorted((r["scenario"], r["metric"]) for r in built) == [
        ("Offline", "91.7021"), ("SingleStream", "31.091144")]


def test_published_command_lists_and_filters() -> None:
    done = harness("published", "--benchmark", "bert-99", "--scenario", "Offline",
                   "--round", "v1.0")
    assert done.returncode == 0, done.stderr
    assert "v1.0 bert-99 Offline: 61 results (samples/s, higher is better)" in done.stdout
    assert "DGX-A100_A100-SXM-80GBx8_TRT /" in done.stdout
    t4 = harness("published", "--accelerator", "t4", "--csv")
    lines = t4.stdout.splitlines()
    assert t4.returncode == 0 and len(lines) > 1
    assert all(",NVIDIA T4" in line or "Tesla T4" in line for line in lines[1:])
    none = harness("published", "--accelerator", "no-such-chip")
    assert none.returncode == 2
    assert none.stderr.strip() == "error: no published result matches these filters"


def test_placement_ranks_and_neighbours(rows, null_results: Path) -> None:
    runs = gather_runs([null_results])
    server = next(r for r in runs if r.scenario == "Server")
    placed = place(server, table.select(rows, round="v1.0", benchmark="bert-99"))
    assert len(placed.rows) == 42 and placed.total == 43
    better = [r for r in placed.rows if r.metric > server.metric]
    assert placed.rank == len(better) + 1
    if placed.above is not None:
        assert placed.above.metric == min(r.metric for r in better)
    notes = " ".join(caveats(server))
    for word in ("null backend", "not MLPerf's BERT-Large", "demo model", "short run",
                 "rules loadgen", "precision fp32"):
        assert word in notes
    # SingleStream: lower is better, so a faster latency ranks higher
    single = next(r for r in runs if r.scenario == "SingleStream")
    placed = place(single, table.select(rows, round="v1.0", benchmark="bert-99"))
    assert placed.rank == 1 + sum(r.metric < single.metric for r in placed.rows)
    assert "wafer backend" in " ".join(placed.caveats)


@pytest.mark.slow
def test_compare_published_prints_the_placement_and_draws_it(null_results: Path,
                                                              tmp_path: Path) -> None:
    from matplotlib.image import imread

    plan = tmp_path / "wse2-bert-large.json"
    plan.write_text('{"samples_per_s": 6997.4, "latency_p90_ms": 3.86, "precision": "fp16"}')
    png = tmp_path / "published.png"
    done = harness("compare", "--published", "v1.0", str(null_results), "--plot", str(png),
                   "--wafer-plan", str(plan))
    assert done.returncode == 0, done.stderr
    assert "Offline 61, Server 42, SingleStream 19" in done.stdout
    assert "rank " in done.stdout and "NOT COMPARABLE AS IS" in done.stdout
    assert "wafer plan wse2-bert-large" in done.stdout
    assert f"picture: {png}" in done.stdout
    image = imread(png)[..., :3]
    assert image.shape[1] > 1000
    # not blank: many distinct colours, and the accelerator colours are there
    assert len(np.unique(image.reshape(-1, 3).round(2), axis=0)) > 50
    red, green, blue = image[..., 0], image[..., 1], image[..., 2]
    a100 = (green - red > 0.15) & (green - blue > 0.4)  # A100's green, blended or not
    assert a100.sum() > 500
    bad = harness("compare", "--published", "v1.0", str(tmp_path / "missing"))
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") \
        and len(bad.stderr.splitlines()) == 1
    two = harness("compare", str(null_results))
    assert two.returncode == 2 and "compare takes two runs" in two.stderr


def test_a_damaged_table_or_plan_is_one_error(tmp_path: Path) -> None:
    from common.errors import ConfigError
    from harness.published.compare import load_wafer_plan

    damaged = tmp_path / "bert_results.csv"
    damaged.write_text(table.TABLE_PATH.read_text().replace(",28347.4,", ",n/a,", 1))
    with pytest.raises(ConfigError, match="not the published table"):
        table.load(damaged)
    with pytest.raises(ConfigError, match="cannot read the published table"):
        table.load(tmp_path / "missing.csv")
    plan = tmp_path / "plan.json"
    plan.write_text('[{"samples_per_s": 1}]')
    with pytest.raises(ConfigError, match="not the JSON of `wafer plan --json`"):
        load_wafer_plan(plan)
    with pytest.raises(ConfigError, match="unknown round"):
        table.select([], round="v0.7")
