"""One point as its own ``python -m harness run`` process, in its own results folder.

LoadGen refuses a second configuration in one process, and a point that crashes or hangs
must not take the sweep with it, so every point is a child process. Its folder,
``<sweep>/points/<point id>/``, holds its ``user.conf``, ``point.json`` (settings, command,
status), ``run.log`` (everything the run printed) and the run's results tree. A point is
finished when that tree holds a finished run (``run_1/result.json``); a failed or
interrupted run is kept there by the harness under its own name and the point is retried.

The child runs in its own session: a Ctrl-C at the terminal reaches the sweep only, which
passes one SIGINT on, so the run stops as a single Ctrl-C stops it (its logs kept as
``run_1.interrupted-*``) and finished points are never touched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from common.errors import EXIT_INVALID, EXIT_OK, HarnessError, HarnessWarning
from common.files import refuse_links, write_json_atomic, write_text_atomic
from harness.children import stop_child
from harness.loadgen.driver import RunInterrupted
from harness.sweep.plan import Point
from harness.sweep.record import find_run, readable_run

TRACED_SUFFIX = "-trace"


class SweepInterrupted(RunInterrupted):
    """The sweep was stopped by a signal; ``exit_code`` is 128 + its number (the command
    line exits with it, as for an interrupted run)."""


@dataclasses.dataclass(frozen=True)
class PointRun:
    """A point's state after :func:`run_point` (or :func:`status_of`)."""

    point: Point
    folder: Path
    status: str  # "done", "failed", "interrupted" (this invocation) or "pending"
    run_dir: Path | None = None
    error: str | None = None
    seconds: float | None = None
    resumed: bool = False  # finished by an earlier invocation


@contextlib.contextmanager
def sweep_lock(sweep_dir: Path) -> Iterator[None]:
    """Hold ``<sweep>/.sweep.lock`` for the block: a second sweep into the same folder is
    refused at once (its table would mark the first's running points failed)."""
    folder = Path(sweep_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(folder / ".sweep.lock"))
        lock.acquire(timeout=0)
    except Timeout:
        raise HarnessError(f"another sweep is running in {folder} now (it holds "
                           f"{folder / '.sweep.lock'}); wait for it to finish, or give this "
                           "sweep another name or --results-dir") from None
    except OSError as exc:
        raise HarnessError(f"cannot write in {folder}: {exc.strerror or exc}") from None
    try:
        yield
    finally:
        lock.release()


def point_folder(sweep_dir: Path, point: Point, traced: bool = False) -> Path:
    return Path(sweep_dir) / "points" / (point.id + (TRACED_SUFFIX if traced else ""))


def status_of(sweep_dir: Path, point: Point, traced: bool = False) -> PointRun:
    """Where a point stands without running it: done, failed (its last attempt) or pending."""
    folder = point_folder(sweep_dir, point, traced)
    run, damaged = readable_run(folder) if folder.is_dir() else (None, None)
    info = _read_info(folder)
    if run is not None:
        return PointRun(point, folder, "done", run, seconds=info.get("seconds"), resumed=True)
    if damaged is not None:  # run again (the damaged run goes to the point's history/)
        return PointRun(point, folder, "pending", error=f"damaged: {damaged}")
    if info.get("status") == "failed":
        return PointRun(point, folder, "failed", error=info.get("error"))
    return PointRun(point, folder, "pending")


def _attempts(folder: Path) -> int:
    attempts = _read_info(folder).get("attempts", 0)
    return attempts if isinstance(attempts, int) and attempts >= 0 else 0


def _read_info(folder: Path) -> dict[str, Any]:
    """The point's ``point.json``; {} when missing or damaged (it is rewritten each attempt)."""
    try:
        info = json.loads((folder / "point.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    return info if isinstance(info, dict) else {}


def run_point(sweep_dir: Path, point: Point, extra_args: list[str], traced: bool = False,
              python: str = sys.executable, again: bool = False) -> PointRun:
    """Run the point unless it is finished (``again``: even then; the harness moves the
    earlier run to the point's ``history/``); raise :class:`SweepInterrupted` (after
    stopping the run) on Ctrl-C or SIGTERM, which the caller turns into exceptions."""
    previous = status_of(sweep_dir, point, traced)
    if previous.status == "done" and not again:
        return previous
    folder = refuse_links(Path(sweep_dir), previous.folder, "a sweep point")
    if previous.error and previous.error.startswith("damaged: "):
        note = (f"point {point.label}: {previous.error[9:]}; running it again (the damaged "
                "run is kept in its history/)")
        warnings.warn(HarnessWarning(note), stacklevel=2)
    folder.mkdir(parents=True, exist_ok=True)
    conf = folder / "user.conf"
    write_text_atomic(conf, point.user_conf())
    command = [python, "-m", "harness", *point.run_args(folder, conf, extra_args),
               *(["--keep-trace"] if traced else [])]
    info = {"id": point.id, "label": point.label, "values": point.values,
            "settings": point.settings, "traced": traced, "command": command,
            "attempts": _attempts(folder) + 1,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "status": "running"}
    write_json_atomic(folder / "point.json", info)
    started = time.monotonic()
    log_path = folder / "run.log"
    with log_path.open("a", encoding="utf-8") as log:
        log.write(f"\n=== {info['started']} attempt {info['attempts']}: "
                  f"{subprocess.list2cmdline(command)}\n")
        log.flush()
        offset = log.tell()
        try:
            code = _wait(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True))
        except BaseException:
            info.update(status="interrupted", seconds=round(time.monotonic() - started, 1))
            write_json_atomic(folder / "point.json", info)
            raise
    seconds = time.monotonic() - started
    run = find_run(folder) if code in (EXIT_OK, EXIT_INVALID) else None  # INVALID: a result
    error = None if run is not None else _error_line(log_path, offset, code)
    status = "done" if run is not None else "failed"
    info.update(status=status, exit_code=code, seconds=round(seconds, 1), error=error,
                run_dir=str(run) if run else None)
    write_json_atomic(folder / "point.json", info)
    if code in (130, 143) and run is None:  # the run itself was signalled: stop the sweep
        raise SweepInterrupted(code - 128, f"point {point.label} was interrupted")
    return PointRun(point, folder, status, run, error, seconds)


def _wait(process: subprocess.Popen) -> int:
    """The run's exit code; a signal to the sweep is passed on to the run, then re-raised."""
    try:
        return process.wait()
    except (KeyboardInterrupt, SweepInterrupted) as exc:
        signum = exc.signum if isinstance(exc, SweepInterrupted) else signal.SIGINT
        stop_child(process, signum)
        raise


def _error_line(log_path: Path, offset: int, code: int) -> str:
    """What the failed run said: its ``error:`` line, else the end of its output."""
    try:
        with log_path.open(encoding="utf-8", errors="replace") as log:
            log.seek(offset)
            lines = [line.rstrip() for line in log if line.strip()]
    except OSError:
        lines = []
    errors = [line[len("error: "):] for line in lines if line.startswith("error: ")]
    if errors:
        return errors[-1]
    return (lines[-1] if lines else "no output") + f" (exit code {code})"
