"""Sweep files: what a good one means, and a bad one is one clear line (no LoadGen here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from common.errors import ConfigError
from harness.sweep.formula import evaluate
from harness.sweep.plan import base_conf_text, expand, make_point
from harness.sweep.spec import load_sweep

REPO = Path(__file__).resolve().parents[1]
GOOD = """
[sweep]
name = "demo"
description = "a test"

[base]
scenario = "Server"
backend = "null"
short = true
max_examples = 20
user_conf = "base.conf"
backend_options = { delay_ms = 2 }
conf = { max_async_queries = 0 }

[points]
target_qps = { from = 10, to = 30, step = 10 }
batch_size = { from = 1, to = 8, times = 2 }
backend_options = { "spec.clock_ghz" = [0.5, 1.1] }

[peak]
start = 20
tolerance = 1.5

[report]
distribution = { target_qps = 20, batch_size = 1 }
modelled = { figure = "p50_ms", formula = "delay_ms * 2" }
"""


def write(folder: Path, text: str, name: str = "sweep.toml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture()
def good(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "# base\nbert.Server.target_qps = 5\n*.Server.min_duration = 100\n",
          "base.conf")
    return write(tmp_path, GOOD)


def test_a_sweep_file_names_its_base_and_points(good: Path) -> None:
    spec = load_sweep(good)
    assert spec.name == "demo" and spec.description == "a test"
    assert spec.base["scenario"] == "Server" and spec.base["backend_options"] == {"delay_ms": 2}
    assert [(a.name, a.values) for a in spec.axes] == [
        ("target_qps", (10, 20, 30)), ("batch_size", (1, 2, 4, 8)),
        ("backend_options.spec.clock_ghz", (0.5, 1.1))]
    assert spec.peak.start == 20 and spec.peak.tolerance == 1.5 and spec.peak.method == "bisect"
    assert spec.report.modelled is not None and spec.report.modelled.figure == "p50_ms"
    points = expand(spec, base_conf_text(spec))
    assert len(points) == 3 * 4 * 2
    assert points[0].values == {"target_qps": 10, "batch_size": 1,
                                "backend_options.spec.clock_ghz": 0.5}
    assert evaluate(spec.report.modelled.formula, points[0].numbers()) == 4.0


def test_a_point_is_its_own_run_with_its_own_user_conf(good: Path, tmp_path: Path) -> None:
    spec = load_sweep(good)
    point = expand(spec, base_conf_text(spec))[5]  # target_qps 10, batch 4, clock 1.1
    args = point.run_args(tmp_path / "p", tmp_path / "p/user.conf", ["--no-download"])
    assert args[0] == "run"
    flags = " ".join(args)
    for part in ("--scenario Server", "--backend null", "--batch-size 4", "--short",
                 "--target-qps 10",
                 "--max-examples 20", "--backend-option delay_ms=2",
                 "--backend-option spec.clock_ghz=1.1", "--no-progress", "--no-download",
                 f"--results-dir {tmp_path / 'p'}"):
        assert part in flags
    conf = point.user_conf()
    assert "target_qps = 10" not in conf  # on the command line, which wins over the file
    assert "bert.Server.max_async_queries = 0\n" in conf
    # the base file's own target_qps is left in, commented out; the rest kept as it was
    assert "# set by the sweep: bert.Server.target_qps = 5" in conf
    assert "\n*.Server.min_duration = 100\n" in conf


def test_point_ids_are_readable_stable_and_change_with_any_setting(good: Path) -> None:
    spec = load_sweep(good)
    conf = base_conf_text(spec)
    first = expand(spec, conf)
    assert [p.id for p in first] == [p.id for p in expand(spec, conf)]
    assert len({p.id for p in first}) == len(first)
    assert first[0].id.startswith("qps10_bs1_spec.clock_ghz0.5-")
    other = make_point(spec, first[0].values, conf + "bert.Server.min_query_count = 9\n")
    assert other.id != first[0].id  # a changed user.conf is another point


def test_a_point_asks_loadgen_for_its_own_peak_search(good: Path) -> None:
    spec = load_sweep(good)
    point = make_point(spec, {"target_qps": 20}, "", find_peak_mode=True)
    assert "bert.Server.mode = 3" in point.user_conf()


def test_every_shipped_sweep_file_is_valid() -> None:
    files = sorted((REPO / "sweeps").glob("*.toml"))
    assert {f.stem for f in files} >= {"server-ort", "offline-batch-threads", "wafer-clock"}
    for path in files:
        spec = load_sweep(path)
        assert expand(spec, "")  # at least one point


@pytest.mark.parametrize(("text", "fragments"), [
    ("[base\nscenario = 'Server'", ["not valid TOML", "line 1"]),
    ("[base]\nbatch = 4", ["[base]", "unknown key 'batch'", "did you mean batch_size"]),
    ("[points]\nbatch_size = [1, 0]", ["[points] batch_size", "from 1 to 65,536", "got 0"]),
    ("[points]\nbatch_size = [1, 2, 2]", ["[points] batch_size", "listed twice"]),
    ("[points]\ntarget_qps = { from = 10, to = 5, step = 1 }", ["'to' is below 'from'"]),
    ("[points]\ntarget_qps = { from = 10, to = 50 }", ["{from, to, step} or {from, to, times}"]),
    ("[points]\ntarget_qps = 40", ["[points] target_qps", "expected a list"]),
    ("[base]\nscenario = 'Sever'", ["[base] scenario", "one of SingleStream"]),
    ("[base]\nshort = 'yes'", ["[base] short", "true or false"]),
    ("[sweep]\ncombine = 'zip'\n[points]\nthreads = [1, 2]\nbatch_size = [1]",
     ["combine = \"zip\"", "as many values"]),
    ("[peak]\ngrowth = 1", ["[peak] growth", "above 1"]),
    ("[peak]\nmethod = 'binary'", ["[peak] method", "bisect, loadgen"]),
    ("[report]\nmodelled = { formula = 'clock * 2' }", ["modelled.formula", "unknown key 'clock'"]),
    ("[report]\nmodelled = { formula = '__import__(1)' }", ["only numbers, setting names"]),
    ("[report]\nmodelled = { record = 'plan.latency' }", ["modelled.record", "settings."]),
    ("[report]\ndistribution = { batch_size = 4 }", ["[report] distribution",
                                                    "unknown key 'batch_size'"]),
    ("[base]\nconf = { target_qpss = 3 }", ["[base] conf", "did you mean target_qps"]),
    ("[points]\nthreads = { from = 1, to = 100000, step = 1 }", ["at most 1000"]),
    ("[extra]\nx = 1", ["unknown key 'extra'"]),
])
def test_a_bad_sweep_file_is_one_clear_line(tmp_path: Path, text: str,
                                            fragments: list[str]) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_sweep(path)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{path}: ")
    for fragment in fragments:
        assert fragment in message


def test_a_missing_sweep_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="sweep file not found"):
        load_sweep(tmp_path / "nope.toml")


def test_the_command_line_prints_one_error_line_and_exits_2(tmp_path: Path) -> None:
    path = write(tmp_path, "[points]\nbatch_size = [1, 'two']\n")
    (tmp_path / "user.conf").write_text("")
    done = subprocess.run([sys.executable, "-m", "harness", "sweep", str(path)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.count("error: ") == 1
    assert ("[points] batch_size: expected a whole number from 1 to 65,536 (samples), got "
            "'two'") in done.stderr
    assert not (tmp_path / "results").exists()
