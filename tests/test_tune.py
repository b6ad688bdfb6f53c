"""``tune``: candidates and their skips, the ratio pairing, successive halving within a
budget, Ctrl-C, the front, bad input as one line, and tuned.toml through ``--settings``.

The race is driven by a fake runner and clock (no timing is asserted); the gate and the
command run the null backend on a few real questions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from harness.cli import build_parser, main
from harness.config import RunConfig, config_from_args
from harness.tune import cli as tune_cli
from harness.tune.candidates import BF16_FLAGS, VNNI_FLAGS, Candidate, build_candidates
from harness.tune.report import Row, pareto_front, tuned_toml
from harness.tune.speed import MIN_REPEATS, Measurement, Race, median_ratio, ratios
from harness.tune.tuned import sweep_base

ROOT = Path(__file__).resolve().parents[1]
MODEL = "minilm-l6-squad-demo"
ALL_FLAGS = frozenset({"avx512f", *BF16_FLAGS[:1], *VNNI_FLAGS[:1]})


def _everything_installed(_: str) -> None:
    return None


# ---- candidates ---------------------------------------------------------------------------


def test_candidates_skip_what_the_cpu_or_the_libraries_lack() -> None:
    plain, skipped = build_candidates(MODEL, 8, frozenset({"avx2"}), _everything_installed)
    assert not any("int8" in c.model for c in plain)
    assert not any(c.option_dict.get("precision") == "bf16" for c in plain)
    reasons = " ".join(s.reason for s in skipped)
    assert "VNNI" in reasons and "BF16" in reasons

    def no_torch(name: str) -> str | None:
        return "needs torch" if name == "pytorch" else None

    rich, skipped = build_candidates(MODEL, 8, ALL_FLAGS, no_torch)
    assert {c.model for c in rich} >= {MODEL, f"{MODEL}-int8-dynamic", f"{MODEL}-int8-static"}
    assert not any(c.backend == "pytorch" for c in rich)
    assert [s.reason for s in skipped if s.what == "backend pytorch"] == ["needs torch"]
    assert rich[0].baseline and rich[0].options == () and rich[0].batch_size == 8
    assert len({c.label for c in rich}) == len(rich)  # every label names one candidate


def test_speed_options_share_the_arithmetic_and_precision_does_not() -> None:
    cands, _ = build_candidates(MODEL, 8, ALL_FLAGS, _everything_installed)
    by_numerics: dict[tuple, list[Candidate]] = {}
    for c in cands:
        by_numerics.setdefault(c.numerics, []).append(c)
    static = by_numerics[("onnxruntime", f"{MODEL}-int8-static", "none")]
    assert len({c.batch_size for c in static}) > 1  # fixed scales: the batch changes nothing
    # dynamic int8 scales each batch as a whole: batch size and bucket are its arithmetic
    dynamic = by_numerics[("onnxruntime", f"{MODEL}-int8-dynamic", "none", "b8 s1")]
    assert any(c.backend == "ray" for c in dynamic)  # Ray's actors run the same arithmetic
    assert {c.batch_size for c in dynamic} == {8}
    assert any(c.batch_size == 32 and c.batch_dependent for c in cands)
    torch = [c for c in cands if c.backend == "pytorch"]
    assert len(torch) > 1 and {c.numerics for c in torch} == {("pytorch", MODEL, "bf16")}
    plain, _ = build_candidates(MODEL, 8, frozenset({"avx512_vnni"}), _everything_installed)
    assert {c.numerics for c in plain if c.backend == "pytorch"} == {("pytorch", MODEL, "fp32")}


# ---- the ratio pairing and the race ------------------------------------------------------


def _m(label: str, rate: float | None, baseline: bool = False) -> Measurement:
    return Measurement(label, baseline, 1, rate, 10.0)


def test_each_run_is_divided_by_the_default_runs_beside_it() -> None:
    runs = [_m("base", 10.0, True), _m("a", 30.0), _m("b", 5.0), _m("base", 20.0, True),
            _m("a", 40.0), _m("base", None, True), _m("c", 8.0)]
    got = ratios(runs)
    assert got["a"] == [30.0 / 15.0, 40.0 / 20.0]  # a failed default run is not a neighbour
    assert got["b"] == [5.0 / 15.0]
    assert got["c"] == [8.0 / 20.0]
    assert median_ratio(runs, "a") == pytest.approx(2.0)
    assert median_ratio(runs, "nobody") is None


class FakeRuns:
    """Rates by label; each run takes ``seconds`` of a fake clock; optionally a Ctrl-C."""

    def __init__(self, rates: dict[str, float], seconds: float = 30.0,
                 interrupt_at: int | None = None) -> None:
        self.rates, self.seconds, self.interrupt_at = rates, seconds, interrupt_at
        self.now = 0.0
        self.calls: list[str] = []

    def clock(self) -> float:
        return self.now

    def __call__(self, candidate: Candidate, folder: Path) -> Measurement:
        if self.interrupt_at is not None and len(self.calls) == self.interrupt_at:
            raise KeyboardInterrupt
        self.calls.append(candidate.label)
        self.now += self.seconds
        return Measurement(candidate.label, candidate.baseline, 0,
                           self.rates[candidate.model], self.seconds)


def _race(runs: FakeRuns, deadline: float, n: int = 5) -> Race:
    base = Candidate("onnxruntime", "fp32", 8, baseline=True)
    cands = [Candidate("onnxruntime", f"m{i}", 8) for i in range(n)]
    return Race(base, cands, runs, Path("/nonexistent"), deadline, clock=runs.clock,
                report=lambda _: None)


def test_successive_halving_keeps_the_fastest_and_repeats_it() -> None:
    runs = FakeRuns({"fp32": 10.0, **{f"m{i}": 10.0 + 5 * i for i in range(5)}})
    race = _race(runs, deadline=1e9)
    race.run()
    assert not race.stopped
    winner = "onnxruntime:m4 b8 s1"
    assert median_ratio(race.measurements, winner) == pytest.approx(3.0)
    assert len(ratios(race.measurements)[winner]) >= MIN_REPEATS
    assert set(race.eliminated) == {f"onnxruntime:m{i} b8 s1" for i in range(4)}
    # never two candidate runs in a row without a default run between every second one
    streak = 0
    for label in runs.calls:
        streak = 0 if label.startswith("onnxruntime:fp32") else streak + 1
        assert streak <= 2


def test_the_race_starts_no_run_the_budget_cannot_hold() -> None:
    runs = FakeRuns({"fp32": 10.0, **{f"m{i}": 11.0 for i in range(5)}}, seconds=30.0)
    race = _race(runs, deadline=100.0)
    race.run()
    assert "budget spent" in race.stopped
    assert runs.now <= 100.0 and len(runs.calls) == 3


def test_ctrl_c_keeps_the_runs_made() -> None:
    runs = FakeRuns({"fp32": 10.0, **{f"m{i}": 20.0 for i in range(5)}}, interrupt_at=4)
    race = _race(runs, deadline=1e9)
    with pytest.raises(KeyboardInterrupt):
        race.run()
    assert [m.label for m in race.measurements] == runs.calls and len(runs.calls) == 4


def test_the_front_drops_what_is_beaten_on_both() -> None:
    rows = [Row("fast", 65.0, "raced", 3.0, 30.0), Row("good", 66.5, "raced", 1.0, 10.0),
            Row("worse", 64.0, "raced", 2.0, 20.0), Row("bad", 60.0, "below target"),
            Row("both", 66.0, "raced", 2.5, 25.0)]
    assert [r.label for r in pareto_front(rows)] == ["fast", "both", "good"]


# ---- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize("flags", [["--budget-minutes", v] for v in
                                   ("nan", "inf", "0", "-1", "1e300", "word")]
                         + [["--target", "bert-98"], ["--target", "120%"],
                            ["--model", "no-such-model"]])
def test_bad_input_is_one_line(flags: list[str], capsys: pytest.CaptureFixture) -> None:
    assert main(["tune", *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --"), err
    assert flags[1] in err[0]


# ---- the command, end to end (null backend, fake runs) -----------------------------------


@pytest.fixture
def null_tune(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """``tune`` over null-backend candidates: the gate runs them on 5 real questions; each
    run is faked (the default 10 samples/s, the candidate with batch 16 25 samples/s)."""
    def candidates(model, batch, flags, backends=(), derived=True):
        return [Candidate("null", model, batch, baseline=True),
                Candidate("null", model, 16, 16, 0, (("delay_ms", 0.0),)),
                Candidate("null", model, 4, 1, 0, (("delay_ms", 0.0),))], []

    state = {"calls": 0, "interrupt_at": None}

    def fake_run(self, candidate: Candidate, folder: Path, target_qps=None) -> Measurement:
        if state["calls"] == state["interrupt_at"]:
            raise KeyboardInterrupt
        state["calls"] += 1
        rate = 10.0 if candidate.baseline else 25.0 if candidate.batch_size == 16 else 12.0
        return Measurement(candidate.label, candidate.baseline, 0, rate, 1.0, None, None, True)

    monkeypatch.setattr(tune_cli, "build_candidates", candidates)
    monkeypatch.setattr(tune_cli.ChildRunner, "__call__", fake_run)
    return state


def _tune(squad_dir: Path, tmp_path: Path, *extra: str) -> int:
    return main(["tune", "--budget-minutes", "5", "--max-examples", "5", "--mirror",
                 str(squad_dir), "--results-dir", str(tmp_path / "results"),
                 "--data-dir", str(tmp_path / "data"), "--cache-dir", str(tmp_path / "cache"),
                 *extra])


def test_tune_writes_the_winner_and_its_settings(null_tune, squad_dir: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    assert _tune(squad_dir, tmp_path, "--target", "99%") == 0
    out = capsys.readouterr().out
    folder = tmp_path / "results" / "tune" / MODEL / "Offline"
    result = json.loads((folder / "tune.json").read_text())
    assert result["winner"]["label"] == f"null:{MODEL} b16 s16 delay_ms=0.0"
    assert result["winner"]["ratio"] == pytest.approx(2.5)
    assert "Pareto front" in out and "x2.50 the fp32 default" in out
    assert (folder / "front.png").stat().st_size > 0 and "<table" in \
        (folder / "report.html").read_text()
    cache = json.loads((tmp_path / "results" / "tune" / "gate-cache.json").read_text())
    assert all(key.endswith("|5") for key in cache)  # scored on the 5 questions asked for
    # a second tune scores nothing again
    assert _tune(squad_dir, tmp_path) == 0
    assert "cached" in capsys.readouterr().out

    tuned = folder / "tuned.toml"
    args = build_parser().parse_args(["run", "--settings", str(tuned)])
    config = config_from_args(args, RunConfig)
    assert (config.backend, config.model, config.batch_size, config.seq_bucket) == \
        ("null", MODEL, 16, 16)
    assert config.backend_settings.options == {"delay_ms": 0.0}
    assert sweep_base(tuned)["batch_size"] == 16


def test_ctrl_c_during_the_race_exits_130_and_keeps_the_runs(
        null_tune, squad_dir: Path, tmp_path: Path) -> None:
    null_tune["interrupt_at"] = 2
    assert _tune(squad_dir, tmp_path) == 130
    result = json.loads((tmp_path / "results" / "tune" / MODEL / "Offline" / "tune.json")
                        .read_text())
    assert result["interrupted"] and len(result["measurements"]) == 2


def test_a_tuned_file_runs(squad_dir: Path, tmp_path: Path) -> None:
    """tuned.toml's text, as tune writes it, drives a real short run of the null backend."""
    settings = Candidate("null", MODEL, 4, 32, 1, (("delay_ms", 1.0),)).settings("Offline")
    tuned = tmp_path / "tuned.toml"
    tuned.write_text(tuned_toml(settings, ["made by a test"]))
    assert tomllib.loads(tuned.read_text())["backend_options"] == {"delay_ms": 1.0}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "harness", "run", "--settings", str(tuned),
                           "--short", "--no-progress", "--mirror", str(squad_dir),
                           "--results-dir", str(tmp_path / "res")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    recorded = json.loads(next((tmp_path / "res").glob("**/run_1/settings.json")).read_text())
    text = json.dumps(recorded)
    assert '"batch_size": 4' in text and '"seq_bucket": 32' in text


def test_sweep_takes_a_settings_file_under_its_base(tmp_path: Path) -> None:
    from harness.tune.tuned import with_settings

    tuned = tmp_path / "tuned.toml"
    tuned.write_text('batch_size = 16\nthreads = 2\nbackend_options = { instances = 2 }\n')
    assert with_settings({"threads": 1}, tuned) == {"batch_size": 16, "threads": 1,
                                                     "backend_options": {"instances": 2}}
    tuned.write_text("batch_sise = 16\n")
    with pytest.raises(Exception, match="did you mean batch_size"):
        with_settings({}, tuned)


def test_server_peaks_of_the_winner_and_the_default(tmp_path: Path) -> None:
    """Each search brackets and bisects on LoadGen's verdicts; no probe past the deadline."""
    from harness.tune.server import peak_qps

    limits = {"fp32": 10.0, "fast": 25.0}
    sized = {"fp32": 6.0, "fast": None}  # what a run given no target sizes itself to
    clock = [0.0]
    asked: list[float | None] = []

    def runner(candidate: Candidate, folder: Path, target_qps: float | None) -> Measurement:
        clock[0] += 50.0
        asked.append(target_qps)
        qps = target_qps or sized[candidate.model]
        if qps is None:  # a run that recorded no size
            return Measurement(candidate.label, candidate.baseline, 0, None, 50.0,
                               error="failed")
        folder.mkdir(parents=True)
        (folder / "settings.json").write_text(json.dumps(
            {"warmup": {"sized": {"value": qps}}} if target_qps is None else {}))
        return Measurement(candidate.label, candidate.baseline, 0, qps, 50.0,
                           run_dir=str(folder), valid=qps <= limits[candidate.model])

    base = Candidate("onnxruntime", "fp32", 1, baseline=True)
    fast = Candidate("onnxruntime", "fast", 8)
    out = peak_qps(base, fast, runner, tmp_path, 1e9, {"baseline": 7.0, "winner": 17.5},
                   clock=lambda: clock[0])
    assert 9.0 <= out["baseline"]["peak_qps"] <= 10.0
    assert 22.5 <= out["winner"]["peak_qps"] <= 25.0
    assert out["ratio"] == pytest.approx(out["winner"]["peak_qps"] / out["baseline"]["peak_qps"])
    # each search's first run sizes itself; the default's started at its sized 6 QPS (not
    # probed again), the winner's, which recorded no size, at the 17.5 given
    assert asked[0] is None and 6.0 not in asked
    assert asked.count(None) == 2 and 17.5 in asked
    assert out["baseline"]["probes"][0]["qps"] == 6.0
    clock[0] = 0.0
    cut = peak_qps(base, fast, runner, tmp_path / "cut", 120.0,
                   {"baseline": 7.0, "winner": 17.5}, clock=lambda: clock[0])
    assert cut["winner"] is None and "cut short by the budget" in cut["text"]


def test_help_says_what_tune_does(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["tune", "--help"])
    assert stop.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "--budget-minutes" in out and "bert-99.9" in out and "default: 30" in out


def test_dynamic_int8_is_scored_as_its_loadgen_accuracy_run(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch):
    """Its answers depend on which samples share a call: the gate asks the LoadGen run (of
    its whole settings) and caches that under its label; others never go there."""
    from types import SimpleNamespace

    from harness.tune.gate import AccuracyGate, GateScore

    asked: list[str] = []

    def loadgen_score(c: Candidate) -> GateScore:
        asked.append(c.label)
        return GateScore(65.4, 53.9, 5, 10.0, 1.0)

    data = SimpleNamespace(features=SimpleNamespace(num_examples=5))
    gate = AccuracyGate(data, None, tmp_path, tmp_path / "cache.json",
                        loadgen_score=loadgen_score)
    monkeypatch.setattr(gate, "model_md5", lambda c: "md5")
    dynamic = Candidate("ray", f"{MODEL}-int8-dynamic", 8, 1, 0, (("actors", 2),))
    assert gate.score(dynamic).f1 == 65.4 and asked == [dynamic.label]
    again = AccuracyGate(data, None, tmp_path, tmp_path / "cache.json",
                         loadgen_score=loadgen_score)
    monkeypatch.setattr(again, "model_md5", lambda c: "md5")
    assert again.score(dynamic).cached and asked == [dynamic.label]
    key = next(iter(json.loads((tmp_path / "cache.json").read_text())))
    assert dynamic.label in key and "loadgen" in key
    assert not Candidate("ray", f"{MODEL}-int8-dynamic", 1, 1).batch_dependent  # alone
    static = Candidate("onnxruntime", f"{MODEL}-int8-static", 8)
    assert not static.batch_dependent and not Candidate("onnxruntime", MODEL, 8).batch_dependent
    # one unpadded sample a call is scored so, under its own key (not at the gate's batch)
    from harness.tune.gate import GATE_BATCH, GATE_BUCKET, cache_key, gate_batching

    alone = Candidate("onnxruntime", f"{MODEL}-int8-dynamic", 1, 1, 0, (("instances", 2),))
    assert alone.one_at_a_time and gate_batching(alone) == (1, 1)
    assert gate_batching(static) == (GATE_BATCH, GATE_BUCKET) and not static.one_at_a_time
    assert cache_key(alone, "md5", 5).endswith("|b1 s1|5")
    assert alone.numerics != Candidate("onnxruntime", f"{MODEL}-int8-dynamic", 16, 16).numerics
