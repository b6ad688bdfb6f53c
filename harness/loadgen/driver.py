"""Running one LoadGen test so that Ctrl-C and SIGTERM stop it cleanly, and nothing hangs.

``StartTestWithLogSettings`` blocks in C++ until the test ends, and Python runs signal
handlers only between bytecodes of the main thread: called on the main thread, a Ctrl-C
waits for the whole test, and an exception raised inside LoadGen's callbacks aborts the
process. So the test runs on its own thread while the main thread waits in short joins with
SIGINT and SIGTERM handlers installed. The first signal stops the SUT (see
:mod:`harness.loadgen.sut`): outstanding samples are completed empty and LoadGen ends and
writes its logs within seconds. A second signal, or a LoadGen that has not ended
``STOP_GRACE_S`` after a stop, gives up at once (:class:`ForcedStop`).
"""

from __future__ import annotations

import gc
import signal
import sys
import threading
import time
from typing import Any

from common.errors import HarnessError
from common.stopping import clear_stop, request_stop
from harness.loadgen.sut import LoadGenSUT

STOP_GRACE_S = 30.0  # how long LoadGen may take to end after the SUT stopped
GIL_SWITCH_S = 0.0002  # Python's thread switch interval during a test (default 0.005)
_POLL_S = 0.1
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class RunInterrupted(HarnessError):
    """The run was stopped by a signal; ``exit_code`` is 128 + the signal number."""

    def __init__(self, signum: int, message: str | None = None) -> None:
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(message or f"interrupted by {signal.Signals(signum).name}")


class ForcedStop(HarnessError):
    """Gave up waiting for LoadGen: its thread may still run, so the process must exit now
    (``os._exit``) with ``exit_code``."""

    def __init__(self, message: str, exit_code: int) -> None:
        self.exit_code = exit_code
        super().__init__(message)


def run_test(sut: LoadGenSUT, sut_handle: Any, qsl_handle: Any, test_settings: Any,
             log_settings: Any) -> int | None:
    """Run the test; return the signal that stopped it, or None. Re-raises LoadGen's errors.

    Signal handlers are installed only on the main thread (elsewhere a signal is Python's
    business as usual).
    """
    import mlperf_loadgen as lg

    errors: list[BaseException] = []
    received: list[int] = []

    def test() -> None:
        try:
            lg.StartTestWithLogSettings(sut_handle, qsl_handle, test_settings, log_settings)
        except BaseException as exc:  # noqa: BLE001 - re-raised on the main thread
            errors.append(exc)

    def on_signal(signum: int, _frame: Any) -> None:
        name = signal.Signals(signum).name
        if received:
            raise ForcedStop(f"{name} again: stopped without waiting for LoadGen to end",
                             128 + signum)
        received.append(signum)
        request_stop()  # preparation on LoadGen's threads (answers, staging) ends too
        sut.stop(f"interrupted by {name}")
        print(f"\n{name}: stopping; outstanding samples are completed empty and LoadGen "
              "writes its logs (signal again to quit at once)", file=sys.stderr, flush=True)

    thread = threading.Thread(target=test, name="loadgen-test", daemon=True)
    switch_interval = sys.getswitchinterval()
    # LoadGen's threads call into Python (issue, flush) while the SUT's worker holds the GIL:
    # a shorter switch interval than Python's 5 ms keeps that wait out of the latencies.
    sys.setswitchinterval(GIL_SWITCH_S)
    # Nothing made before the test needs collecting: a full collection of a heap holding a
    # framework's objects can stall the SUT for milliseconds.
    gc.freeze()
    previous = {}
    clear_stop()
    if threading.current_thread() is threading.main_thread():
        previous = {s: signal.signal(s, on_signal) for s in _SIGNALS}
    try:
        thread.start()
        stopped_at = None
        while thread.is_alive():
            thread.join(_POLL_S)
            if sut.stopped and stopped_at is None:
                stopped_at = time.monotonic()
            if stopped_at is not None and time.monotonic() - stopped_at > STOP_GRACE_S:
                raise ForcedStop(f"LoadGen did not end within {STOP_GRACE_S:g} s after the "
                                 f"run stopped ({sut.stop_reason})",
                                 128 + received[0] if received else 2)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        sys.setswitchinterval(switch_interval)
        gc.unfreeze()
    if errors:
        raise errors[0]
    return received[0] if received else None
