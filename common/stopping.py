"""One flag that says "the run was asked to stop", for work that runs off the main thread.

A signal is delivered to the main thread only; while LoadGen's test runs, long preparation
can happen on one of LoadGen's threads (the wafer backend computes its answers while LoadGen
loads samples). The run's signal handler sets this flag; such loops check it between steps
(each well under 2 s) and raise :class:`StopRequested`, so the first Ctrl-C ends them at once
instead of after the whole computation.
"""

from __future__ import annotations

import threading

from common.errors import HarnessError

_REQUESTED = threading.Event()


class StopRequested(HarnessError):
    """Work given up because the run was asked to stop (a signal)."""


def request_stop() -> None:
    """Ask every loop that checks :func:`check_stop` to end (the run's signal handler)."""
    _REQUESTED.set()


def clear_stop() -> None:
    """Forget a stop request (a new run in this process)."""
    _REQUESTED.clear()


def stop_requested() -> bool:
    return _REQUESTED.is_set()


def check_stop(what: str) -> None:
    """Raise :class:`StopRequested` naming ``what`` was given up, when a stop was asked."""
    if _REQUESTED.is_set():
        raise StopRequested(f"{what}: given up, the run was asked to stop")
