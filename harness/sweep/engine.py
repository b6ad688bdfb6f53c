"""A whole sweep: run (or resume) its points, search the peak, write the table, plots, report.

Everything a sweep writes is under ``<results>/sweeps/<name>/``: ``points/<id>/`` per point
(:mod:`harness.sweep.launch`), ``sweep.csv`` and ``sweep.json``, ``plots/*.png`` and
``report.html``. Re-running the same sweep skips finished points and retries failed ones;
Ctrl-C (or SIGTERM) stops the running point as it stops any run, writes the table of what
is finished and leaves every finished point as it was.
"""

from __future__ import annotations

import dataclasses
import math
import platform
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common.errors import ConfigError
from common.files import slug, write_text_atomic
from common.workspace import workspace
from harness.report.index import rebuild_index
from harness.sweep import plots
from harness.sweep.budget import Budget
from harness.sweep.formula import evaluate
from harness.sweep.launch import (
    PointRun,
    SweepInterrupted,
    point_folder,
    run_point,
    status_of,
    sweep_lock,
)
from harness.sweep.peak import (
    PeakResult,
    best_point,
)
from harness.sweep.plan import Point, base_conf_text, expand, make_point, number_text
from harness.sweep.progress import Progress
from harness.sweep.record import recorded, run_settings, sample_latencies
from harness.sweep.report import write_report
from harness.sweep.search import ServerSearch
from harness.sweep.spec import OPTION_PREFIX, SweepSpec
from harness.sweep.stream_plots import stream_plot
from harness.sweep.table import point_row, setting_columns, write_tables
from harness.system import describe_host


@dataclasses.dataclass(frozen=True)
class SweepOptions:
    """How to run a sweep (the file says what to run)."""

    find_peak: bool = False
    peak_method: str | None = None  # None: the file's [peak] method
    results_dir: Path = dataclasses.field(default_factory=lambda: workspace().sweeps)
    extra_args: tuple[str, ...] = ()  # data flags for every run (--mirror, --no-download...)
    progress: bool = True
    distribution: bool = True  # run the chosen point again keeping LoadGen's trace
    rerun: bool = False  # run finished points again (a new measurement)
    report_only: bool = False  # run nothing: the table, plots and report of what is finished
    command: tuple[str, ...] = ()  # the command line, for the report
    python: str = sys.executable


@dataclasses.dataclass
class SweepOutcome:
    folder: Path
    rows: list[dict[str, Any]]
    headline: str
    failed: int
    report: Path | None = None
    csv: Path | None = None
    peaks: list[PeakResult] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    notes: list[str] = dataclasses.field(default_factory=list)


def sweep_folder(spec: SweepSpec, results_dir: Path) -> Path:
    return Path(results_dir) / slug(spec.name)


class _Sweep(ServerSearch):
    """One invocation of a sweep."""

    def __init__(self, spec: SweepSpec, options: SweepOptions) -> None:
        self.spec = spec
        self.options = options
        self.folder = sweep_folder(spec, options.results_dir)
        self.conf_text = base_conf_text(spec)
        self.columns = setting_columns(spec)
        self.runs: list[tuple[PointRun, dict[str, Any]]] = []  # with extra row fields
        self.peaks: list[PeakResult] = []
        self.groups: list[Point] = []  # the point each peak search started from
        self.planned: list[Point] = []  # a plain sweep's points
        self.progress: Progress | None = None
        self.notes: list[str] = []
        self.rerun_done: set[str] = set()  # --rerun: points run again in this invocation
        self.budget: Budget | None = None  # a Server peak search's time ([peak] budget_minutes)

    # ---- running points -----------------------------------------------------------------

    def run(self, point: Point, traced: bool = False,
            extra: dict[str, Any] | None = None) -> PointRun:
        """Run (or recall) a point; ``extra``: more fields for its row (probe, phase)."""
        assert self.progress is not None
        self.progress.start(point.label + (" (keeping the trace)" if traced else ""))
        try:
            key = point_folder(self.folder, point, traced).name
            again = self.options.rerun and key not in self.rerun_done
            done = status_of(self.folder, point, traced) if self.options.report_only else \
                run_point(self.folder, point, list(self.options.extra_args), traced,
                          self.options.python, again)
            self.rerun_done.add(key)
        except (KeyboardInterrupt, SweepInterrupted):
            if not traced:
                folder = point_folder(self.folder, point)
                self.runs.append((PointRun(point, folder, "interrupted"), extra or {}))
            raise
        if not traced:
            self.runs.append((done, extra if extra is not None else {}))
        self.progress.finish(done)
        return done

    def plain(self, points: list[Point]) -> None:
        self.planned = points
        for point in points:
            self.run(point)

    # ---- the table, the pictures, the page ----------------------------------------------

    def rows(self) -> list[dict[str, Any]]:
        rows = []
        modelled = self.spec.report.modelled
        for run, extra in self.runs:
            row = point_row(run, self.columns, self.folder)
            row["probe"] = extra.get("probe")
            row["phase"] = extra.get("phase")
            if extra.get("sized_qps") is not None:  # the run sized itself from its warm-up
                row["target_qps"] = extra["sized_qps"]
                row["label"] += f" (sized from its warm-up: {number_text(extra['sized_qps'])} QPS)"
            if extra.get("last_qps") is not None:  # LoadGen's search: the figures' own rate
                row["target_qps"] = extra["last_qps"]
                row["label"] += f" (LoadGen's search; figures of its last probe, " \
                    f"{number_text(extra['last_qps'])} QPS)"
            if modelled is not None and run.run_dir is not None:
                row["modelled"] = evaluate(modelled.formula, run.point.numbers()) \
                    if modelled.formula else recorded(run.run_dir, modelled.record or "")
            rows.append(row)
        return rows

    def chosen(self, rows: list[dict[str, Any]]) -> Point | None:
        """The point whose latency distribution is plotted (``[report] distribution``): the
        named one, else the highest peak found, else the best point."""
        wanted = self.spec.report.distribution
        if wanted == "none" or not self.options.distribution:
            return None
        done = [(run, row) for (run, _), row in zip(self.runs, rows, strict=True)
                if run.status == "done" and not run.point.find_peak_mode]
        if isinstance(wanted, dict):
            for run, _ in done:
                if all(_same(run.point.values.get(k), v) for k, v in wanted.items()):
                    return run.point
            self.notes.append(f"no finished point has {wanted}: no distribution plot")
            return None
        if self.spec.setting("scenario", "Offline") == "Offline" and self.spec.axis(
                "scenario") is None:
            return None  # one query: its "latencies" are waits in line (name a point to see)
        found = [(peak.peak, group) for peak, group in zip(self.peaks, self.groups, strict=True)
                 if peak.peak is not None]
        if found:
            rate, group = max(found, key=lambda pair: pair[0])
            return make_point(self.spec, {**group.values, "target_qps": rate}, self.conf_text)
        best = best_point([row for _, row in done])
        run = next((run for run, row in done if row is best), None)
        if run is not None and best is not None and run.point.setting("target_qps") is None \
                and best.get("target_qps") is not None:  # a run that sized itself: the
            # repeat is given the rate it ran at (sizing itself again would pick another)
            return make_point(self.spec, {**run.point.values, "target_qps": best["target_qps"]},
                              self.conf_text)
        return None if run is None else run.point

    def distribution(self, rows: list[dict[str, Any]]) -> tuple[Path | None, dict[str, Any]]:
        point = self.chosen(rows)
        if point is None:
            return None, {}
        assert self.progress is not None
        rate = point.settings.get("target_qps") or next(
            (row.get("target_qps") for (run, _), row in zip(self.runs, rows, strict=True)
             if run.point.id == point.id), None)
        if self.budget is not None and rate is not None \
                and (why := self.budget.why_not(point.settings, float(rate))) is not None:
            self.notes.append(f"no distribution run: a repeat at {why}")
            return None, {}
        self.progress.grow(1)
        traced = self.run(point, traced=True)
        info: dict[str, Any] = {"point": point.label, "status": traced.status}
        if traced.status == "pending":  # --report-only: not run (or not finished) yet
            self.notes.append(f"the distribution run of {point.label} has not finished")
            return None, info
        if traced.status != "done" or traced.run_dir is None:
            self.notes.append(f"the distribution run of {point.label} failed: {traced.error}")
            return None, info
        samples = sample_latencies(traced.run_dir)
        row = point_row(traced, self.columns, self.folder)
        info.update(run_dir=row["run_dir"], samples=0 if samples is None else len(samples[1]),
                    samples_per_second=row["samples_per_second"], p99_ms=row["p99_ms"],
                    valid=row["valid"])
        if samples is None:
            self.notes.append(f"the distribution run of {point.label} kept no trace")
            return None, info
        verdict = {True: "VALID", False: "INVALID"}.get(row["valid"], "")
        first = next((r for (run, _), r in zip(self.runs, rows, strict=True)
                      if run.point.id == point.id), None)
        if first is not None and first.get("valid") is not None \
                and first["valid"] != row["valid"]:
            self.notes.append(
                f"{point.label} was {'VALID' if first['valid'] else 'INVALID'} and its repeat "
                f"for the distribution plot {verdict}: the verdict at this rate does not "
                "repeat on this machine now (see the stalls in the latency-over-time panel)")
        path = plots.distribution_plot(
            *samples, row, self.folder / "plots" / "distribution.png",
            f"{self.spec.name}: latency distribution at {point.label} "
            f"({row['samples_per_second']:.4g} samples/s, {verdict})")
        return path, info

    def pictures(self, rows: list[dict[str, Any]]) -> list[tuple[Path, str]]:
        images: list[tuple[Path, str]] = []
        where = self.folder / "plots"
        axes = [axis.name for axis in self.spec.axes]
        name = self.spec.name

        def add(path: Path | None, caption: str) -> None:
            if path is not None:
                images.append((path, caption))

        scenario = self.spec.setting("scenario", "Offline")
        if scenario in ("SingleStream", "MultiStream") and self.spec.axis("scenario") is None:
            add(stream_plot(rows, axes, scenario, where / "latency.png", name),
                f"Latency percentiles of each point ({scenario}: the rate achieved is 1 / "
                "latency, so it is no axis here); the scenario's metric is drawn bold "
                f"({'p90' if scenario == 'SingleStream' else 'p99 of whole queries'}), "
                "crosses mark INVALID runs.")
        elif scenario != "Offline":  # an Offline latency is a sample's wait in one query
            targeted = all(r.get("target_qps") is not None
                           for r in rows if r.get("p99_ms") is not None)
            add(plots.latency_plot(rows, axes, where / "latency.png", name),
                ("p50, p90 and p99 against the target QPS each point was asked for (left) "
                 "and the QPS it achieved (right: past saturation the achieved rate stalls "
                 "while latency climbs)" if targeted else
                 "p50, p90 and p99 against the QPS achieved")
                + "; the dashed line is the latency bound, crosses mark INVALID runs.")
        for index, peak in enumerate(self.peaks):
            probes = [{"qps": row.get("target_qps"), "valid": row.get("valid"),
                       "p99_ms": row.get("p99_ms")}
                      for (_, extra), row in zip(self.runs, rows, strict=True)
                      if extra.get("group") == index and isinstance(extra.get("probe"), int)]
            if not probes:
                probes = [{"qps": p.qps, "valid": p.valid, "p99_ms": None} for p in peak.probes]
            suffix = f"-{index + 1}" if len(self.peaks) > 1 else ""
            add(plots.peak_plot(probes, peak.peak, peak.ceiling, peak.tolerance,
                                where / f"peak{suffix}.png", f"{name}: peak search"
                                + (f" at {peak.group}" if peak.group else "")
                                + (" (LoadGen's FindPeakPerformance)"
                                   if peak.note.startswith("LoadGen") else "")),
                f"Every probe of the peak search in order: {peak.text()}")
        if scenario != "Server" or "target_qps" not in axes:
            panels = " and ".join(word for word in ("batch size", "threads")
                                  if word.replace(" ", "_") in axes)
            add(plots.throughput_plot(rows, axes, where / "throughput.png", name),
                f"Samples/s against {panels}; the star is the best point (VALID first), "
                "crosses mark INVALID runs.")
        for axis in axes:
            if axis in ("target_qps", "batch_size", "threads") or len(
                    self.spec.axis(axis).values) < 2:  # type: ignore[union-attr]
                continue
            add(plots.axis_plot(rows, axis, axes, where / f"by-{slug(axis)}.png", name),
                f"Samples/s and latency against {axis.removeprefix(OPTION_PREFIX)}.")
        modelled = self.spec.report.modelled
        if modelled is not None:
            varied = [a for a in axes if len(self.spec.axis(a).values) > 1]  # type: ignore
            add(plots.modelled_plot(rows, varied[0] if varied else None, modelled.figure,
                                    where / "modelled.png", name),
                f"Modelled against measured {modelled.figure.replace('_', ' ')} "
                f"({modelled.formula or modelled.record}).")
        return images

    def summary(self, rows: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
        first = next((run.run_dir for run, _ in self.runs if run.run_dir is not None), None)
        settings = run_settings(first) if first is not None else {}
        counts = {status: sum(1 for r in rows if r["status"] == status)
                  for status in ("done", "failed", "interrupted", "pending")}
        verdicts = {"VALID": sum(1 for r in rows if r.get("valid") is True),
                    "INVALID": sum(1 for r in rows if r.get("valid") is False)}
        return {
            "sweep": self.spec.name, "description": self.spec.description,
            "file": str(self.spec.path), "file_text": self.spec.text,
            "command": list(self.options.command),
            "command_line": shlex.join(self.options.command) if self.options.command else None,
            "folder": str(self.folder), "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "seconds": round(seconds, 1),
            "counts": ", ".join(f"{v} {k}" for k, v in {**counts, **verdicts}.items() if v),
            "axes": {axis.name: list(axis.values) for axis in self.spec.axes},
            "base": self.spec.base, "host": describe_host(), "python": platform.python_version(),
            "loadgen_version": settings.get("loadgen_version"),
            "backend_version": (settings.get("backend") or {}).get("version"),
            "find_peak": self.options.find_peak,
            "peaks": [peak.to_json() for peak in self.peaks],
            "best": _brief(best_point([r for r in rows if r["status"] == "done"])),
            "notes": self.notes,
        }


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return a == b


def _brief(row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {k: row.get(k) for k in ("label", "samples_per_second", "p99_ms", "valid", "run_dir")}


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def _headline(sweep: _Sweep, rows: list[dict[str, Any]], seconds: float) -> str:
    runs_s = sum(run.seconds or 0.0 for run, _ in sweep.runs)
    took = f"{_minutes(runs_s)} of runs"
    resumed = sum(1 for run, _ in sweep.runs if run.resumed)
    if resumed:
        took += f", {resumed} of {len(sweep.runs)} done before; this time {_minutes(seconds)}"
    if sweep.peaks:
        texts = []
        for index, peak in enumerate(sweep.peaks):
            text = peak.text()
            at = [row for (_, extra), row in zip(sweep.runs, rows, strict=True)
                  if extra.get("group") == index and row.get("valid")
                  and _same(row.get("target_qps"), peak.peak)]
            if at and at[0].get("p99_ms") is not None:
                text += f"; p99 {at[0]['p99_ms']:.1f} ms at the peak"
            texts.append(text)
        return f"Server peak search ({took}): " + " | ".join(texts)
    best = best_point([r for r in rows if r["status"] == "done"])
    done = [r for r in rows if r["status"] == "done"]
    valid = sum(1 for r in done if r.get("valid"))
    text = f"{len(done)} of {len(rows)} points finished ({valid} VALID) in {took}"
    if best is not None:
        verdict = "VALID" if best.get("valid") else "INVALID"
        text += f"; best {best['label']}: {best['samples_per_second']:.4g} samples/s {verdict}"
    return text


def _handle_sigterm() -> Callable[[], None]:
    """SIGTERM stops a sweep as Ctrl-C does; returns the undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def on_term(signum: int, _frame: Any) -> None:
        raise SweepInterrupted(signum)

    previous = signal.signal(signal.SIGTERM, on_term)
    return lambda: signal.signal(signal.SIGTERM, previous)


def plan_points(spec: SweepSpec, find_peak: bool) -> list[Point]:
    """The points a plain sweep runs, or the groups a peak search runs (the points without
    target_qps); ConfigError when --find-peak does not fit the sweep."""
    conf_text = base_conf_text(spec)
    if not find_peak:
        return expand(spec, conf_text)
    if spec.axis("scenario") is not None:
        raise ConfigError(f"{spec.path}: --find-peak needs one scenario; this sweep varies it")
    scenario = spec.setting("scenario", "Offline")
    if scenario == "Server":
        return expand(spec, conf_text, skip=("target_qps",))
    if scenario == "Offline":
        if spec.axis("batch_size") is None and spec.axis("threads") is None:
            raise ConfigError(f"{spec.path}: --find-peak in Offline looks for the best batch "
                              "size and threads: give [points] batch_size and/or threads")
        return expand(spec, conf_text)
    raise ConfigError(f"{spec.path}: --find-peak searches Server target QPS, or Offline batch "
                      f"size and threads; this sweep's scenario is {scenario}")


def point_states(spec: SweepSpec, options: SweepOptions) -> list[PointRun]:
    """Each point's state (done, failed, pending) without running anything (``--list``)."""
    folder = sweep_folder(spec, options.results_dir)
    return [status_of(folder, point) for point in plan_points(spec, False)]


def run_sweep(spec: SweepSpec, options: SweepOptions) -> SweepOutcome:
    """Run the sweep (``options.report_only``: run nothing, draw what is finished); raise
    :class:`SweepInterrupted` on Ctrl-C or SIGTERM, after writing the table, plots and
    report of the points that finished (they stay, and a re-run resumes). A second sweep
    into the same folder meanwhile is refused (:func:`sweep_lock`)."""
    with sweep_lock(sweep_folder(spec, options.results_dir)):
        return _run_sweep(spec, options)


def _run_sweep(spec: SweepSpec, options: SweepOptions) -> SweepOutcome:
    method = options.peak_method or spec.peak.method
    points = plan_points(spec, options.find_peak)
    sweep = _Sweep(spec, options)
    if options.report_only and not (sweep.folder / "points").is_dir():
        raise ConfigError(f"{spec.path}: nothing to report: no points have run in "
                          f"{sweep.folder}")
    sweep.folder.mkdir(parents=True, exist_ok=True)
    if not options.report_only:
        write_text_atomic(sweep.folder / "sweep.toml", spec.text)
    peak_search = options.find_peak and spec.setting("scenario", "Offline") == "Server"
    if peak_search and method == "loadgen":
        total = len(points)
    elif peak_search:
        total = len(points) * sweep.planned_probes()
    else:
        total = len(points)
    started = time.monotonic()
    if peak_search and method != "loadgen":
        sweep.budget = Budget(spec.peak.budget_minutes, started)
    sweep.progress = Progress(spec.name, total, options.progress and not options.report_only)
    undo = _handle_sigterm()
    try:
        if peak_search:
            sweep.server_peak(points, method)
        else:
            sweep.plain(points)
        rows = sweep.rows()
        distribution, info = sweep.distribution(rows)
    except (KeyboardInterrupt, SweepInterrupted) as exc:
        sweep.progress.close()
        undo()
        reached = {run.point.id for run, _ in sweep.runs}
        sweep.runs += [(status_of(sweep.folder, point), {}) for point in sweep.planned
                       if point.id not in reached]
        sweep.settle_interrupted()
        rows = sweep.rows()
        _write_outputs(sweep, rows, time.monotonic() - started, None, {}, interrupted=True)
        if isinstance(exc, KeyboardInterrupt):
            raise SweepInterrupted(signal.SIGINT, _stopped_text(sweep, rows)) from None
        exc.args = (_stopped_text(sweep, rows),)
        raise
    finally:
        undo()
    sweep.progress.close()
    seconds = time.monotonic() - started
    headline, csv_path, report = _write_outputs(sweep, rows, seconds, distribution, info)
    failed = sum(1 for r in rows if r["status"] != "done")
    return SweepOutcome(sweep.folder, rows, headline, failed, report, csv_path, sweep.peaks,
                        seconds, sweep.notes)


def _write_outputs(sweep: _Sweep, rows: list[dict[str, Any]], seconds: float,
                   distribution: Path | None, info: dict[str, Any],
                   interrupted: bool = False) -> tuple[str, Path, Path]:
    """The table, the plots and the report of the rows so far; the headline and paths."""
    headline = _headline(sweep, rows, seconds)
    if interrupted:
        headline = "Interrupted; what finished: " + headline
    summary = sweep.summary(rows, seconds)
    summary.update(headline=headline, distribution=info, interrupted=interrupted,
                   headline_ok=not sweep.peaks or any(p.peak is not None for p in sweep.peaks))
    images = sweep.pictures(rows)
    if distribution is not None:
        images.append((distribution, f"Per-sample latencies of {info['point']} (a run of its "
                       f"own keeping LoadGen's trace: {info['samples']} samples)."))
    summary["plots"] = [str(path.relative_to(sweep.folder)) for path, _ in images]
    csv_path, _ = write_tables(sweep.folder, rows, summary)
    report = write_report(sweep.folder / "report.html", summary, rows, images)
    rebuild_index(sweep.options.results_dir)  # results/index.html; a failure only warns
    return headline, csv_path, report


def _stopped_text(sweep: _Sweep, rows: list[dict[str, Any]]) -> str:
    done = sum(1 for r in rows if r["status"] == "done")
    text = (f"sweep {sweep.spec.name} stopped; {done} finished points are kept in "
            f"{sweep.folder}/points, with the table and report of them in {sweep.folder} "
            "(re-run the same command to resume)")
    if sweep.options.rerun:  # which measurements are new, which are the earlier ones
        again = len(sweep.rerun_done)
        text += (f"; --rerun measured {again} point(s) again (their earlier runs are in each "
                 f"point's history/), {max(0, done - again)} still hold their earlier run, and "
                 "the interrupted point keeps this attempt as run_1.interrupted-* (its earlier "
                 "run_1, if any, untouched); without --rerun the next sweep keeps them all")
    return text
