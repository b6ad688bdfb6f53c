"""The peak search on synthetic latency curves, and LoadGen's own search read from its log."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest

from harness.sweep.budget import DEFAULT_OVERHEAD_S, Budget, probe_loadgen_s
from harness.sweep.launch import PointRun
from harness.sweep.peak import (
    SearchStopped,
    best_point,
    loadgen_probes,
    planned_probes,
    search_peak,
)
from harness.sweep.plan import make_point
from harness.sweep.search import _too_busy
from harness.sweep.spec import PeakSettings, SweepSpec

BOUND_MS = 130.0


class Queue:
    """A synthetic server: p99 = base / (1 - qps / capacity), the M/M/1 shape, VALID while
    within the bound; its true peak is capacity x (1 - base / bound)."""

    def __init__(self, capacity: float, base_ms: float = 20.0) -> None:
        self.capacity = capacity
        self.base_ms = base_ms
        self.asked: list[float] = []

    @property
    def peak(self) -> float:
        return self.capacity * (1 - self.base_ms / BOUND_MS)

    def p99(self, qps: float) -> float:
        return math.inf if qps >= self.capacity else self.base_ms / (1 - qps / self.capacity)

    def __call__(self, qps: float) -> bool:
        self.asked.append(qps)
        return self.p99(qps) <= BOUND_MS


@pytest.mark.parametrize("capacity", [12.0, 47.0, 80.0, 333.0])
@pytest.mark.parametrize("start", [5.0, 30.0, 400.0])
@pytest.mark.parametrize("growth", [1.5, 2.0])
def test_bracketing_then_bisection_ends_within_the_tolerance(capacity: float, start: float,
                                                             growth: float) -> None:
    system = Queue(capacity)
    settings = PeakSettings(start=start, growth=growth, tolerance=1.0, max_probes=40)
    result = search_peak(system, settings, start)
    assert result.converged, result.text()
    assert system.p99(result.peak) <= BOUND_MS < system.p99(result.ceiling)  # VALID, INVALID
    assert result.peak <= system.peak < result.ceiling
    assert result.ceiling - result.peak <= 1.0
    # every probe is kept, in order, once per rate, with its verdict
    assert [p.qps for p in result.probes] == system.asked
    assert len(set(system.asked)) == len(system.asked)
    assert [p.valid for p in result.probes] == [system.p99(q) <= BOUND_MS for q in system.asked]
    assert result.probes[0].phase == "start" and result.probes[0].qps == start
    assert "VALID" in result.text() and "within" in result.text()


def test_a_search_costs_about_what_bisection_should() -> None:
    system = Queue(50.0)
    settings = PeakSettings(start=30, growth=1.5, tolerance=2.0, max_probes=20)
    result = search_peak(system, settings, 30.0)
    # 30 V, 45 I, then bisect a 15 QPS bracket to 2 QPS: 3 more
    assert len(result.probes) == 5
    assert planned_probes(settings, 30.0) >= len(result.probes) - 1


def test_the_rates_are_rounded_to_a_tenth_of_the_tolerance() -> None:
    result = search_peak(Queue(47.3), PeakSettings(tolerance=0.5, max_probes=40), 10.0)
    assert all(round(p.qps, 2) == p.qps for p in result.probes)


def test_no_valid_rate_says_so() -> None:
    result = search_peak(lambda qps: False, PeakSettings(min_qps=1.0, max_probes=40), 10.0)
    assert result.peak is None and result.ceiling is not None and result.ceiling < 2.0
    assert "every rate down to" in result.text()


def test_a_search_stops_at_max_probes_and_says_so() -> None:
    result = search_peak(Queue(1000.0), PeakSettings(max_probes=3, tolerance=0.1), 10.0)
    assert len(result.probes) == 3 and not result.converged
    assert "max_probes" in result.note


def test_a_noisy_verdict_still_ends_with_a_valid_rate_below_an_invalid_one() -> None:
    flips = iter([True, True, False, False, True, False, True, True, False] * 3)
    result = search_peak(lambda qps: next(flips), PeakSettings(tolerance=1, max_probes=30), 20.0)
    valid = {p.qps for p in result.probes if p.valid}
    invalid = {p.qps for p in result.probes if not p.valid}
    assert result.peak in valid and result.ceiling in invalid and result.peak < result.ceiling


def _log_line(key: str, value: object) -> str:
    return ":::MLLOG " + json.dumps({"key": key, "value": value, "time_ms": 0.0,
                                     "metadata": {"is_error": key.startswith("error")}})


def test_loadgen_peak_mode_probes_are_read_from_its_messages(tmp_path: Path) -> None:
    # the messages LoadGen 6 logs (order as observed with the null backend)
    messages = [
        "Starting FindPeakPerformance mode",
        "FindPeakPerformance: Check validity of the base settings field: 20.000000",
        "FindBoundaries: Checking fields [20.000000, 40.000000)",
        "FindBoundaries: Checking fields [40.000000, 80.000000)",
        "FindPeakPerformance: Found boundaries: [40.000000, 80.000000)",
        "FindPeakPerformanceBinarySearch: Testing the mid value of bounds "
        "[40.000000, 80.000000): 60.000000",
        "FindPeakPerformanceBinarySearch: Testing the mid value of bounds "
        "[40.000000, 60.000000): 50.000000",
        "FindPeakPerformanceBinarySearch: Testing the mid value of bounds "
        "[50.000000, 60.000000): 55.000000",
        "FindPeakPerformance: Found peak performance field: 50.000000",
    ]
    log = tmp_path / "mlperf_log_detail.txt"
    log.write_text("\n".join(_log_line("generic_message", m) for m in messages) + "\n")
    result = loadgen_probes(log)
    assert [(p.qps, p.valid, p.phase) for p in result.probes] == [
        (20, True, "start"), (40, True, "bracket"), (80, False, "bracket"),
        (60, False, "bisect"), (50, True, "bisect"), (55, False, "bisect")]
    assert result.peak == 50 and result.ceiling == 55
    assert "FindPeakPerformance" in result.note


def test_loadgen_peak_mode_whose_start_fails(tmp_path: Path) -> None:
    log = tmp_path / "mlperf_log_detail.txt"
    log.write_text("\n".join([
        _log_line("generic_message",
                  "FindPeakPerformance: Check validity of the base settings field: 90.000000"),
        _log_line("error_runtime", "FindPeakPerformance: Initial lower bound does not satisfy "
                                   "performance constraints, msg: Reduce target QPS"),
    ]) + "\n")
    result = loadgen_probes(log)
    assert result.peak is None and [(p.qps, p.valid) for p in result.probes] == [(90, False)]
    assert "start rate failed" in result.text()


def test_the_best_offline_point_prefers_valid_runs() -> None:
    rows = [{"label": "a", "samples_per_second": 90.0, "valid": True},
            {"label": "b", "samples_per_second": 120.0, "valid": False},
            {"label": "c", "samples_per_second": 100.0, "valid": True},
            {"label": "d", "samples_per_second": None, "valid": None}]
    assert best_point(rows)["label"] == "c"
    assert best_point([rows[1]])["label"] == "b"
    assert best_point([rows[3]]) is None


def test_a_search_stops_before_a_probe_past_its_budget_with_the_best_valid_rate() -> None:
    system = Queue(50.0)
    asked_to_fit: list[float] = []

    def fits(qps: float) -> str | None:  # the fourth probe would not fit
        asked_to_fit.append(qps)
        return "no time" if len(asked_to_fit) >= 3 else None

    result = search_peak(system, PeakSettings(growth=1.5, tolerance=0.1, max_probes=40),
                         30.0, fits)
    assert len(result.probes) == 3 and len(system.asked) == 3  # the refused probe never ran
    assert result.peak == max(p.qps for p in result.probes if p.valid)
    assert "no time" in result.note and not result.converged
    assert asked_to_fit[0] == result.probes[1].qps  # the first probe is not asked


def test_a_verdict_can_stop_the_search_and_keep_the_bracket() -> None:
    def verdict(qps: float) -> bool:
        if qps < 30:
            raise SearchStopped("the probe was not run")
        return qps <= 25

    result = search_peak(verdict, PeakSettings(growth=2.0, tolerance=1.0), 40.0)
    assert result.peak is None and result.ceiling == 40.0
    assert result.note == "the probe was not run"
    result = search_peak(lambda qps: _stop() if 26 < qps < 50 else qps <= 25,
                         PeakSettings(growth=2.0, tolerance=1.0), 25.0)
    assert result.peak == 25.0 and result.ceiling == 50.0 and "stop" in result.note


def _stop() -> bool:
    raise SearchStopped("stop")


def test_the_start_is_tried_as_given() -> None:
    result = search_peak(Queue(80.0), PeakSettings(tolerance=2.0), 31.234)
    assert result.probes[0].qps == 31.234
    assert all(round(p.qps, 1) == p.qps for p in result.probes[1:])


def test_a_probe_costs_its_queries_at_its_rate_plus_what_the_process_costs() -> None:
    short = {"short": True}
    assert probe_loadgen_s(short, 6.0) == pytest.approx(459 / 6.0)  # the early-stopping floor
    assert probe_loadgen_s(short, 100.0) == 10.0  # the short minimum duration
    assert probe_loadgen_s({"short": True, "min_query_count": 1000,
                            "min_duration_ms": 500}, 40.0) == 25.0
    assert probe_loadgen_s({}, 1000.0) == 600.0  # a full run: 10 minutes at least
    budget = Budget(2.0, time.monotonic())
    assert budget.overhead_s == DEFAULT_OVERHEAD_S
    budget.learn(short, 50.0, 30.0, full=True)  # 10 s of LoadGen: 20 s around it
    budget.learn(short, 50.0, 5.0, full=False)  # ended early: says nothing of the cost
    assert budget.overhead_s == 20.0
    assert budget.why_not(short, 50.0) is None  # 30 s of 120
    why = budget.why_not(short, 4.0)  # 20 + 114.75 s
    assert why is not None and "135 s" in why and "2-minute budget" in why


def test_a_probe_whose_warm_up_is_slower_than_the_bound_ends_the_search(tmp_path: Path) -> None:
    run = tmp_path / "run_1"
    run.mkdir()
    (run / "settings.json").write_text(json.dumps({"warmup": {"s_per_sample": 0.207}}))
    point = make_point(SweepSpec(tmp_path / "s.toml", "s", "", {}, ()), {}, "")
    done = PointRun(point, tmp_path, "done", run)
    row = {"valid": False, "latency_bound_ms": 130.0}
    why = _too_busy(done, row)
    assert why is not None and "207 ms a sample, above the 130 ms bound" in why
    assert _too_busy(done, {**row, "valid": True}) is None  # it passed: the search goes on
    (run / "settings.json").write_text(json.dumps({"warmup": {"s_per_sample": 0.05}}))
    assert _too_busy(done, row) is None  # slow enough to fail, fast enough to pass lower


def test_a_sized_probe_its_model_called_unlikely_ends_the_search(tmp_path: Path) -> None:
    """The first probe sized itself, its queueing model expected no VALID rate down to a
    test of minutes, and LoadGen agreed: lower rates would only take longer."""
    run = tmp_path / "run_1"
    run.mkdir()
    server = {"rate": 3.06, "feasible": False, "slowest_ms": 111.4, "bound_ms": 130.0}
    (run / "settings.json").write_text(json.dumps(
        {"warmup": {"s_per_sample": 0.04, "sized": {"value": 3.06, "server": server}}}))
    point = make_point(SweepSpec(tmp_path / "s.toml", "s", "", {}, ()), {}, "")
    done = PointRun(point, tmp_path, "done", run)
    row = {"valid": False, "latency_bound_ms": 130.0}
    why = _too_busy(done, row)
    assert why is not None and "3.06 QPS" in why and "111 ms of the 130 ms bound" in why
    assert "make tune SCENARIO=Server" in why
    assert _too_busy(done, {**row, "valid": True}) is None  # VALID after all: search on
    server["feasible"] = True
    (run / "settings.json").write_text(json.dumps(
        {"warmup": {"s_per_sample": 0.04, "sized": {"value": 3.06, "server": server}}}))
    assert _too_busy(done, row) is None  # a model that expected VALID: lower rates are tried
