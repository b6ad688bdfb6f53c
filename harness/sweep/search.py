"""The Server peak search of a sweep: each group's probes as runs, within the budget.

:class:`ServerSearch` is the part of a sweep (:mod:`harness.sweep.engine`) that chooses
the probes: the first from the warm-up (a run with no target QPS sizes itself) unless
``[peak] start`` is given, then bracketing and bisection (:func:`harness.sweep.peak.search_peak`)
while each next probe fits ``[peak] budget_minutes`` (:mod:`harness.sweep.budget`), or
LoadGen's own FindPeakPerformance in one run.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from harness.loadgen.sizing import FASTER
from harness.sweep.budget import Budget
from harness.sweep.launch import PointRun
from harness.sweep.peak import (
    PeakResult,
    Probe,
    SearchStopped,
    loadgen_probes,
    planned_probes,
    search_peak,
)
from harness.sweep.plan import Point, make_point, number_text
from harness.sweep.progress import Progress
from harness.sweep.record import recorded, recorded_value
from harness.sweep.spec import SweepSpec
from harness.sweep.table import point_row

DEFAULT_START_QPS = 10.0


class ServerSearch:
    """The peak searches of a sweep (mixed into the sweep, whose attributes these are)."""

    spec: SweepSpec
    folder: Path
    conf_text: str
    columns: list[str]
    runs: list[tuple[PointRun, dict[str, Any]]]
    peaks: list[PeakResult]
    groups: list[Point]
    progress: Progress | None
    budget: Budget | None

    def run(self, point: Point, traced: bool = False,
            extra: dict[str, Any] | None = None) -> PointRun:
        raise NotImplementedError  # the sweep's

    def server_peak(self, groups: list[Point], method: str) -> None:
        for index, group in enumerate(groups):
            self.groups.append(group)
            if method == "loadgen":
                start = float(self.spec.peak.start or group.settings.get("target_qps")
                              or DEFAULT_START_QPS)
                self.loadgen_peak(group, start, index)
            else:
                self.bisect_peak(group, index)
            left = len(groups) - index - 1
            self.progress.settle(  # type: ignore[union-attr]
                left * (1 if method == "loadgen" else self.planned_probes()) + 1)

    def planned_probes(self) -> int:
        """Probes a search is expected to take (the progress bar's total)."""
        return planned_probes(self.spec.peak, float(self.spec.peak.start or DEFAULT_START_QPS))

    def sized_probe(self, group: Point, index: int,
                    extras: list[dict[str, Any]]) -> tuple[PointRun, float | None, str]:
        """The first probe when ``[peak] start`` is not given: the group's run with no
        target QPS, which sizes itself from its warm-up (harness.loadgen.sizing: Server's
        queueing model, never above half the measured samples/s);
        its rate, and a note saying where it came from."""
        unsized = dataclasses.replace(self.spec, base={
            k: v for k, v in self.spec.base.items() if k != "target_qps"})
        point = make_point(unsized, dict(group.values), self.conf_text)
        extra: dict[str, Any] = {"probe": 1, "group": index}
        extras.append(extra)
        done = self.run(point, extra=extra)
        if done.status != "done" or done.run_dir is None:
            raise _ProbeFailed(None, "not run" if done.status == "pending"
                               else done.error or "failed")
        rate = recorded(done.run_dir, "settings.warmup.sized.value") \
            or point_row(done, self.columns, self.folder).get("loadgen_target_qps")
        measured = recorded(done.run_dir, "settings.warmup.sized.measured_samples_per_s")
        extra["sized_qps"] = rate
        if rate is None:
            return done, None, "the first probe recorded no target QPS"
        note = (f"started at {number_text(rate)} QPS, sized from its warm-up "
                f"({measured:.3g} samples/s measured)" if measured
                else f"started at the {number_text(rate)} QPS its first run was given")
        return done, float(rate), note

    def bisect_peak(self, group: Point, index: int) -> None:
        """Bracket and bisect the target QPS of one group, a run a probe, within the
        search's time budget (``[peak] budget_minutes``)."""
        settings = self.spec.peak
        extras: list[dict[str, Any]] = []
        starved: list[float] = []  # INVALID with no query over the bound
        notes: list[str] = []
        budget = self.budget
        assert budget is not None
        recalled: dict[float, PointRun] = {}
        hopeless: list[str] = []  # why no rate can pass (this few queries, this busy)

        def judge(done: PointRun, qps: float) -> bool:
            if done.status == "pending":  # --report-only: the search ends where it stopped
                raise _ProbeFailed(qps, "not run")
            if done.status != "done":
                raise _ProbeFailed(qps, done.error or "failed")
            row = point_row(done, self.columns, self.folder)
            if not done.resumed and done.seconds is not None:
                budget.learn(done.point.settings, qps, done.seconds, row.get("valid") is True)
            if row.get("valid") is False and row.get("overlatency_count") == 0:
                # no lower rate can pass either: too few queries, not too slow a system
                starved.append(qps)
                hopeless.append(f"{number_text(qps)} QPS was INVALID with no query over the "
                                "bound, so no rate can pass with this few queries")
            busy = _too_busy(done, row)
            if busy is not None:
                hopeless.append(busy)
            return row.get("valid") is True

        def verdict(qps: float) -> bool:
            if qps in recalled:  # the sized first probe, already run
                return judge(recalled.pop(qps), qps)
            point = make_point(self.spec, {**group.values, "target_qps": qps}, self.conf_text)
            extra = {"probe": len(extras) + 1, "group": index}
            extras.append(extra)
            done = self.run(point, extra=extra)
            self.progress.grow(  # type: ignore[union-attr]
                max(1, self.planned_probes() - len(extras)))
            return judge(done, qps)

        def fits(qps: float) -> str | None:
            if hopeless:
                return f"{number_text(qps)} QPS: {hopeless[-1]}"
            return budget.why_not(group.settings, qps)

        try:
            start = settings.start
            # a later group's first probe must fit what the earlier groups left (a sized
            # one's rate is not known before it runs: the last group's start stands in)
            last = self.peaks[-1].probes[0].qps if self.peaks and self.peaks[-1].probes \
                else 1e9
            why = budget.why_not(group.settings, start or last) if index else None
            if why is not None:
                raise _OverBudget("not searched: its first probe would not fit what is left "
                                  f"of the budget (at {why})")
            if start is None:
                done, start, note = self.sized_probe(group, index, extras)
                notes.append(note)
                if start is None:
                    raise _ProbeFailed(None, note)
                recalled[start] = done
            result = search_peak(verdict, settings, float(start), fits)
        except (_ProbeFailed, _OverBudget) as exc:
            result = PeakResult(None, None, (), settings.tolerance, str(exc))
        for extra, probe in zip(extras, result.probes, strict=False):
            extra["phase"] = probe.phase
        notes += [result.note] if result.note else []
        if starved:
            notes.append("INVALID with no query over the bound at "
                         f"{', '.join(number_text(q) for q in starved)} QPS: too few queries "
                         "for LoadGen's early stopping (raise [base] min_query_count)")
        self.peaks.append(dataclasses.replace(result, note="; ".join(notes),
                                              group=_group(group)))

    def loadgen_peak(self, group: Point, start: float, index: int) -> None:
        values = {**group.values, "target_qps": start}
        point = make_point(self.spec, values, self.conf_text, find_peak_mode=True)
        minutes = self.spec.peak.max_minutes
        point = dataclasses.replace(point, settings={**point.settings, "max_run_minutes": minutes})
        done = self.run(point, extra={"probe": "loadgen", "phase": "loadgen", "group": index})
        if done.status != "done" or done.run_dir is None:
            self.peaks.append(PeakResult(
                None, None, (), 0.1, f"LoadGen's FindPeakPerformance run failed: {done.error}",
                _group(group)))
            return
        result = loadgen_probes(done.run_dir / "mlperf_log_detail.txt")
        if result.probes:  # the run's figures are its last probe's
            self.runs[-1][1]["last_qps"] = result.probes[-1].qps
        self.peaks.append(dataclasses.replace(result, group=_group(group)))

    def settle_interrupted(self) -> None:
        """A peak search cut short by Ctrl-C: its bracket so far, from the probes that
        finished (so that the report shows them)."""
        if len(self.peaks) >= len(self.groups):
            return
        index = len(self.peaks)
        done = [(extra.get("sized_qps") or run.point.settings.get("target_qps"),
                 point_row(run, self.columns, self.folder).get("valid"))
                for run, extra in self.runs
                if extra.get("group") == index and run.status == "done"]
        probes = tuple(Probe(float(qps), bool(valid), "interrupted")
                       for qps, valid in done if qps is not None and valid is not None)
        valid = [p.qps for p in probes if p.valid]
        low = max(valid) if valid else None
        above = [p.qps for p in probes if not p.valid and (low is None or p.qps > low)]
        self.peaks.append(PeakResult(low, min(above) if above else None, probes,
                                     self.spec.peak.tolerance, "interrupted",
                                     _group(self.groups[index])))


class _OverBudget(Exception):
    """No time is left for a search (the message says so)."""


class _ProbeFailed(SearchStopped):
    def __init__(self, qps: float | None, error: str) -> None:
        at = f"at {number_text(qps)} QPS " if qps is not None else ""
        super().__init__(f"the probe {at}" + (error if error.startswith("not run")
                                              else f"failed: {error}"))
        self.qps = qps
        self.error = error


def _too_busy(done: PointRun, row: dict[str, Any]) -> str | None:
    """Why no rate can be VALID, when an INVALID probe's own warm-up took longer a sample
    than the latency bound allows (a query cannot be faster than one sample's call)."""
    if row.get("valid") is not False or done.run_dir is None or not row.get("latency_bound_ms"):
        return None
    per_sample = recorded(done.run_dir, "settings.warmup.s_per_sample")
    if per_sample is not None and per_sample * 1e3 > row["latency_bound_ms"]:
        return (f"the warm-up took {per_sample * 1e3:.0f} ms a sample, above the "
                f"{number_text(row['latency_bound_ms'])} ms bound: no rate can be VALID while "
                "the machine is this busy (see uptime; run again when it is quieter)")
    server = recorded_value(done.run_dir, "settings.warmup.sized.server")
    if isinstance(server, dict) and server.get("feasible") is False:
        # the sized run found no rate likely VALID down to a test of minutes, and was not
        return (f"the sized first probe ({number_text(server.get('rate') or 0)} QPS) was "
                "INVALID, as its warm-up's queueing model expected: its longest samples took "
                f"{server.get('slowest_ms', 0):.0f} ms of the "
                f"{number_text(row['latency_bound_ms'])} ms bound; next: {FASTER}")
    return None


def _group(group: Point) -> str:
    return group.label if group.values else ""
