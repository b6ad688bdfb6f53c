"""A run as a child process that stops as a run does when the parent is signalled.

LoadGen allows one test per process, so ``submission`` runs each of its runs as a child.
The child runs in its own session: a Ctrl-C at the terminal reaches the parent only, which
passes one SIGINT (or the SIGTERM it got) on, so the run stops as a single Ctrl-C stops it
and keeps its logs as ``run_1.interrupted-*``; a second signal passes a second SIGINT (the
run then quits at once); only past ``grace_s`` is the child killed. The parent then raises
:class:`RunInterrupted` with the signal, which the command line turns into 130 or 143.
(``subprocess.run`` instead SIGKILLs its child 0.25 s after a Ctrl-C: no logs kept.)
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from harness.loadgen.driver import RunInterrupted

STOP_GRACE_S = 90.0  # a signalled run ends in seconds (LoadGen's own grace); then it is killed


def run_child(argv: Sequence[str], grace_s: float = STOP_GRACE_S, **popen: Any) -> int:
    """Run ``argv`` to its end and return its exit code; on SIGINT or SIGTERM to this
    process, stop it as above and raise :class:`RunInterrupted` once it has ended."""
    process = subprocess.Popen(list(argv), start_new_session=True,
                               stdin=subprocess.DEVNULL, **popen)
    undo = _sigterm_raises()
    try:
        return process.wait()
    except (KeyboardInterrupt, RunInterrupted) as exc:
        signum = exc.signum if isinstance(exc, RunInterrupted) else signal.SIGINT
        stop_child(process, signum, grace_s)
        raise RunInterrupted(signum) from None
    finally:
        undo()


def _sigterm_raises() -> Callable[[], None]:
    """SIGTERM raises RunInterrupted in the main thread while a child runs; the undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def on_term(signum: int, _frame: Any) -> None:
        raise RunInterrupted(signum)

    previous = signal.signal(signal.SIGTERM, on_term)
    return lambda: signal.signal(signal.SIGTERM, previous)


def stop_child(process: subprocess.Popen, signum: int, grace_s: float = STOP_GRACE_S) -> None:
    """Pass ``signum`` on; a further signal passes SIGINT (quit at once); kill past grace."""
    try:
        process.send_signal(signum)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while True:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
            return
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            return
        except (KeyboardInterrupt, RunInterrupted):  # again: the run quits at once
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
