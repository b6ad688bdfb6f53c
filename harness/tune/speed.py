"""The speed search: short LoadGen runs, each beside a run of the fp32 default, halving.

Every measurement is a child ``python -m harness run --short`` (LoadGen allows one
configuration per process). The fp32 default runs first, then after every
:data:`BASELINE_EVERY` candidate runs, and last, so each candidate run has a baseline run
on either side of it: its ratio is its samples/s over the mean of those two, and a
candidate's ratio is the median over its runs. That cancels the slow drift of a shared
machine's load; what it cannot cancel shows as spread between repeats.

Successive halving: every survivor runs once per rung, the better half (by median ratio)
goes on, until one is left with :data:`MIN_REPEATS` runs, or the budget ends: a run is
started only when the time left holds one more as long as the longest so far.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness.sweep.record import find_run
from harness.tune.candidates import Candidate

BASELINE_EVERY = 2  # candidate runs between two runs of the fp32 default
MIN_REPEATS = 3  # runs of the winner (and as many of the default beside them)
FIRST_RUN_GUESS_S = 60.0  # the length assumed of a run before any has finished
STOP_GRACE_S = 60.0  # a signalled child run ends in seconds; past this it is killed


@dataclasses.dataclass(frozen=True)
class Measurement:
    """One child run: samples/s (None when it failed), in the order the runs were made."""

    label: str
    baseline: bool
    rung: int
    samples_per_second: float | None
    seconds: float
    run_dir: str | None = None
    error: str | None = None
    valid: bool | None = None  # LoadGen's verdict (exit 0 VALID, 3 INVALID)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


Runner = Callable[[Candidate, Path], Measurement]


class ChildRunner:
    """Runs a candidate as ``python -m harness run --short`` in ``folder``."""

    def __init__(self, scenario: str, extra_args: Sequence[str] = (),
                 python: str = sys.executable, settings_args: Sequence[str] = ()) -> None:
        self.scenario = scenario
        self.extra_args = list(extra_args)
        self.python = python
        self.settings_args = list(settings_args)

    def command(self, candidate: Candidate, folder: Path,
                target_qps: float | None = None) -> list[str]:
        qps = ["--target-qps", f"{target_qps:g}"] if target_qps else []
        return [self.python, "-m", "harness", "run", "--short", "--no-progress",
                "--scenario", self.scenario, *candidate.run_args(), *qps,
                "--results-dir", str(folder), *self.extra_args]

    def __call__(self, candidate: Candidate, folder: Path,
                 target_qps: float | None = None) -> Measurement:
        folder.mkdir(parents=True, exist_ok=True)
        command = self.command(candidate, folder, target_qps)
        started = time.monotonic()
        with (folder / "run.log").open("w", encoding="utf-8") as log:
            log.write(subprocess.list2cmdline(command) + "\n")
            log.flush()
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
            code = wait_child(process)
        seconds = time.monotonic() - started
        run = find_run(folder) if code in (0, 3) else None
        rate = _rate(run) if run is not None else None
        error = None if rate is not None else _last_error(folder / "run.log", code)
        return Measurement(candidate.label, candidate.baseline, 0, rate, seconds,
                           str(run) if run else None, error,
                           (code == 0) if run is not None else None)


def wait_child(process: subprocess.Popen) -> int:
    """The child's exit code; on Ctrl-C it gets one SIGINT (its logs are kept), then the
    KeyboardInterrupt goes on."""
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        except KeyboardInterrupt:  # a second Ctrl-C: the child quits at once
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
        raise


def _rate(run_dir: Path) -> float | None:
    try:
        value = json.loads((run_dir / "result.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    rate = value.get("samples_per_second") if isinstance(value, dict) else None
    return float(rate) if isinstance(rate, int | float) and math.isfinite(rate) else None


def _last_error(log: Path, code: int) -> str:
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines()]
    except OSError:
        lines = []
    errors = [line for line in lines if line.startswith("error:")]
    return (errors[-1] if errors else (lines[-1] if lines else "no output")) + \
        f" (exit code {code})"


def ratios(measurements: Sequence[Measurement]) -> dict[str, list[float]]:
    """Each candidate's ratios: a run's samples/s over the mean of the nearest successful
    baseline runs before and after it (one of them at the ends)."""
    base = [(i, m.samples_per_second) for i, m in enumerate(measurements)
            if m.baseline and m.samples_per_second]
    out: dict[str, list[float]] = {}
    for i, m in enumerate(measurements):
        if m.baseline or not m.samples_per_second:
            continue
        before = [rate for j, rate in base if j < i][-1:]
        after = [rate for j, rate in base if j > i][:1]
        around = before + after
        if around:
            out.setdefault(m.label, []).append(m.samples_per_second / statistics.fmean(around))
    return out


def median_ratio(measurements: Sequence[Measurement], label: str) -> float | None:
    values = ratios(measurements).get(label)
    return statistics.median(values) if values else None


@dataclasses.dataclass
class Race:
    """Successive halving of ``candidates`` against ``baseline`` within ``deadline``
    (``clock()`` seconds); ``runner`` makes one measurement in a folder."""

    baseline: Candidate
    candidates: list[Candidate]
    runner: Runner
    folder: Path
    deadline: float
    clock: Callable[[], float] = time.monotonic
    report: Callable[[str], None] = print
    measurements: list[Measurement] = dataclasses.field(default_factory=list)
    eliminated: dict[str, str] = dataclasses.field(default_factory=dict)
    stopped: str = ""  # why the race ended early ("" when it finished)
    budget_s: float = 0.0  # the whole tune's budget and
    started: float = 0.0  # its start (clock()), for the progress line only

    def longest(self) -> float:
        return max((m.seconds for m in self.measurements), default=FIRST_RUN_GUESS_S)

    def _planned(self, survivors: int, in_rung: int) -> int:
        """Runs left: this rung's, then the later rungs' (each with its baselines)."""
        runs, n = in_rung, survivors
        while n > 1:
            n = math.ceil(n / 2)
            runs += n + math.ceil(n / BASELINE_EVERY) + 1
        return runs + (MIN_REPEATS - 1) * 2 if survivors <= 2 else runs

    def _measure(self, candidate: Candidate, rung: int, left: int) -> bool:
        """One run unless the budget cannot hold it; False when the race must stop."""
        now = self.clock()
        if now + self.longest() > self.deadline:
            self.stopped = f"budget spent ({left} planned runs not made)"
            return False
        index = len(self.measurements)
        result = self.runner(candidate, self.folder / f"{index:03d}-{candidate.id}")
        result = dataclasses.replace(result, rung=rung, label=candidate.label,
                                     baseline=candidate.baseline)
        self.measurements.append(result)
        ratio = ""
        if not candidate.baseline:
            values = ratios(self.measurements).get(candidate.label)
            ratio = f" (x{values[-1]:.2f} the default nearest)" if values else ""
        rate = f"{result.samples_per_second:.2f} samples/s" if result.samples_per_second \
            else f"failed: {result.error}"
        spent = now - self.started
        eta = min((left - 1) * statistics.fmean(m.seconds for m in self.measurements),
                  max(0.0, self.deadline - self.clock()))
        self.report(f"  [rung {rung}] {candidate.label}: {rate}{ratio}; "
                    f"{spent / 60:.1f} of {self.budget_s / 60:.1f} min spent, "
                    f"ETA {eta / 60:.1f} min")
        return True

    def run(self) -> None:
        """Race until one candidate is left with MIN_REPEATS runs, or the budget ends."""
        survivors = list(self.candidates)
        rung = 1
        while survivors:
            # a rung opens with the default, unless the last run already was one
            opened = bool(self.measurements) and self.measurements[-1].baseline
            schedule: list[Candidate] = [] if opened else [self.baseline]
            for k, candidate in enumerate(survivors, 1):
                schedule.append(candidate)
                if k % BASELINE_EVERY == 0 or k == len(survivors):
                    schedule.append(self.baseline)
            for i, candidate in enumerate(schedule):
                if not self._measure(candidate, rung,
                                     self._planned(len(survivors), len(schedule) - i)):
                    return
            measured = [c for c in survivors if median_ratio(self.measurements, c.label)]
            for c in survivors:
                if c not in measured:
                    self.eliminated[c.label] = "every run failed"
            measured.sort(key=lambda c: -(median_ratio(self.measurements, c.label) or 0.0))
            if len(measured) <= 1:
                runs = len(ratios(self.measurements).get(measured[0].label, [])) \
                    if measured else MIN_REPEATS
                if runs >= MIN_REPEATS:
                    return
                survivors = measured
            else:
                keep = math.ceil(len(measured) / 2)
                for c in measured[keep:]:
                    self.eliminated[c.label] = f"slower half in rung {rung}"
                survivors = measured[:keep]
            rung += 1


def child_data_args(args: argparse.Namespace, store: Path) -> list[str]:
    """The data and store flags each child run gets (the tune's own)."""
    argv = ["--model-store", str(store)]
    for mirror in getattr(args, "cfg__mirrors", None) or ():
        argv += ["--mirror", str(Path(mirror).expanduser().absolute())]
    for flag, dest in (("--data-dir", "cfg__data_dir"), ("--cache-dir", "cfg__cache_dir")):
        if getattr(args, dest, None):
            argv += [flag, str(Path(getattr(args, dest)).expanduser().absolute())]
    if getattr(args, "cfg__download", True) is False:
        argv.append("--no-download")
    return argv


def loadgen_accuracy(candidate: Candidate, folder: Path, extra_args: Sequence[str],
                     max_examples: int | None, python: str = sys.executable) -> dict[str, Any]:
    """The scores (percent) and seconds of ``python -m harness accuracy`` run with the
    candidate's settings (Offline, short) in ``folder``; HarnessError when it fails."""
    from common.errors import HarnessError

    folder.mkdir(parents=True, exist_ok=True)
    questions = ["--max-examples", str(max_examples)] if max_examples else []
    command = [python, "-m", "harness", "accuracy", "--short", "--no-progress", "--scenario",
               "Offline", *candidate.run_args(), *questions, "--results-dir", str(folder),
               *extra_args]
    started = time.monotonic()
    with (folder / "run.log").open("w", encoding="utf-8") as log:
        log.write(subprocess.list2cmdline(command) + "\n")
        log.flush()
        code = wait_child(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL, start_new_session=True))
    found = sorted(folder.glob("**/accuracy/accuracy.json"))
    if code != 0 or not found:
        raise HarnessError(f"{candidate.label}: its accuracy run failed: "
                           f"{_last_error(folder / 'run.log', code)}")
    scores = json.loads(found[-1].read_text(encoding="utf-8"))["scores"]
    return {"f1": float(scores["f1"]), "exact_match": float(scores["exact_match"]),
            "seconds": time.monotonic() - started}
