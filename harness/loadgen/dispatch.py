"""Dispatch: one asynchronous path from a batch to the backend and back.

Every backend call returns a future. An :class:`~backends.device.AsyncDevice` that takes
more than one call at a time makes its own futures; any other backend is wrapped in a
:class:`CallThread`, a thread of the harness's own that runs ``predict`` one call at a
time and completes a future, so a call that never returns blocks only that thread: it is
abandoned and a fresh one takes the calls from then on. A
:class:`~backends.device.TimedDevice` is also told when each batch arrived.

At most ``max_in_flight`` calls are outstanding: the batching thread reserves a slot
before it forms a batch (so that a Server batch gathers what arrives while the device is
busy) and waits on a condition, woken by a call's answer or by a stop. Each answer is
handed to ``on_done`` on the thread that finished the call.
"""

from __future__ import annotations

import functools
import itertools
import queue
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from backends.base import Backend, FeatureBatch
from backends.device import AsyncDevice, TimedDevice
from harness.loadgen.batching import Batch

Logits = Any  # (start, end) arrays as the backend returned them, checked when assembled
OnDone = Callable[[Batch, Logits, "BaseException | None", str], None]


class CallThread:
    """Runs ``call(features, arrival_s)`` on a daemon thread of its own, one call at a time,
    each completing the future :meth:`submit` returned."""

    def __init__(self, call: Callable[[FeatureBatch, float | None], Logits]) -> None:
        self._call = call
        self._lock = threading.Lock()
        self._threads = 0
        self._queue: queue.SimpleQueue = self._start()

    def _start(self) -> queue.SimpleQueue:
        calls: queue.SimpleQueue = queue.SimpleQueue()
        self._threads += 1
        threading.Thread(target=self._serve, args=(calls,), daemon=True,
                         name=f"sut-call-{self._threads}").start()
        return calls

    def _serve(self, calls: queue.SimpleQueue) -> None:
        while (item := calls.get()) is not None:
            features, arrival_s, future = item
            try:
                logits = self._call(features, arrival_s)
            except BaseException as exc:  # noqa: BLE001 - delivered through the future
                future.set_exception(exc)
            else:
                future.set_result(logits)

    def submit(self, features: FeatureBatch, arrival_s: float | None) -> Future:
        """Queue a call and return its future at once."""
        future: Future = Future()
        with self._lock:
            self._queue.put((features, arrival_s, future))
        return future

    def replace(self) -> None:
        """Abandon the thread (stuck in a call): it ends once that call returns, if ever, and
        a fresh thread takes the calls from now on."""
        with self._lock:
            stuck, self._queue = self._queue, self._start()
        stuck.put(None)

    def close(self) -> None:
        """End the thread once the calls queued are done."""
        with self._lock:
            self._queue.put(None)


class Dispatcher:
    """Sends batches to ``backend`` with at most :attr:`max_in_flight` calls outstanding and
    hands each answer (or error, with its traceback) to ``on_done``."""

    def __init__(self, backend: Backend, on_done: OnDone) -> None:
        self._backend = backend
        self._on_done = on_done
        self._timed = isinstance(backend, TimedDevice)
        self._native = isinstance(backend, AsyncDevice) and backend.max_in_flight() > 1
        self.max_in_flight = backend.max_in_flight() if self._native else 1
        self._calls: CallThread | None = None
        self._cond = threading.Condition()
        self._in_flight: dict[int, tuple[Batch, float]] = {}  # token -> (batch, started)
        self._reserved = 0
        self._stopped = False
        self._tokens = itertools.count()

    def open(self) -> None:
        """Start the call thread (a backend without asynchronous calls of its own)."""
        if not self._native and self._calls is None:
            self._calls = CallThread(self._call_sync)

    def _call_sync(self, features: FeatureBatch, arrival_s: float | None) -> Logits:
        if self._timed:  # a timed device with one call at a time: its clock, waited for
            return self._backend.predict_async(features, arrival_s).result()  # type: ignore[attr-defined]
        return self._backend.predict(features)

    def _start(self, features: FeatureBatch, arrival_s: float | None) -> Future:
        if self._calls is not None:
            return self._calls.submit(features, arrival_s)
        if self._timed:
            return self._backend.predict_async(features, arrival_s)  # type: ignore[attr-defined]
        return self._backend.predict_async(features)  # type: ignore[attr-defined]

    # -- the batching thread -------------------------------------------------------------
    def reserve(self) -> bool:
        """Wait for a free slot and hold it for the next :meth:`submit`; False, holding
        nothing, once stopped."""
        with self._cond:
            while not self._stopped and \
                    len(self._in_flight) + self._reserved >= self.max_in_flight:
                self._cond.wait()
            if self._stopped:
                return False
            self._reserved += 1
            return True

    def unreserve(self) -> None:
        """Give back a slot :meth:`reserve` held and no call used."""
        with self._cond:
            self._reserved -= 1
            self._cond.notify_all()

    def submit(self, batch: Batch, features: FeatureBatch) -> bool:
        """Start a call in the slot reserved; False when stopped meanwhile (nothing started:
        the caller completes the samples)."""
        token = next(self._tokens)
        with self._cond:
            self._reserved -= 1
            if self._stopped:
                return False
            self._in_flight[token] = (batch, time.monotonic())
        try:
            future = self._start(features, batch.issued_s)
        except BaseException as exc:  # noqa: BLE001 - reported after LoadGen ends
            self._settle(token, None, exc, traceback.format_exc())
            return True
        future.add_done_callback(functools.partial(self._resolved, token))
        return True

    # -- whichever thread finished the call ------------------------------------------------
    def _resolved(self, token: int, future: Future) -> None:
        try:
            logits = future.result()
        except BaseException as exc:  # noqa: BLE001 - reported after LoadGen ends
            self._settle(token, None, exc, traceback.format_exc())
        else:
            self._settle(token, logits, None, "")

    def _settle(self, token: int, logits: Logits, exc: BaseException | None,
                trace: str) -> None:
        with self._cond:
            entry = self._in_flight.pop(token, None)
            self._cond.notify_all()
        if entry is not None:  # else given up (a stop or a timeout) and completed already
            self._on_done(entry[0], logits, exc, trace)

    # -- stopping, the watchdog, the end -----------------------------------------------------
    def stop(self) -> list[Batch]:
        """Send nothing more; return the batches of the calls outstanding, given up (their
        answers, should they come, are dropped)."""
        with self._cond:
            self._stopped = True
            abandoned = [batch for batch, _ in self._in_flight.values()]
            self._in_flight.clear()
            self._cond.notify_all()
        return abandoned

    def oldest(self, now: float) -> tuple[float, Batch] | None:
        """(seconds outstanding, batch) of the oldest call outstanding at ``now``, or None."""
        with self._cond:
            return max(((now - started, batch) for batch, started in self._in_flight.values()),
                       key=lambda entry: entry[0], default=None)

    def replace_stuck(self) -> None:
        """A call has outlived its timeout: abandon the call thread, if it is ours."""
        if self._calls is not None:
            self._calls.replace()

    def wait_idle(self) -> None:
        """Block until no call is outstanding (the watchdog bounds a stuck one)."""
        with self._cond:
            self._cond.wait_for(lambda: not self._in_flight)

    def close(self) -> None:
        """End the call thread, if any."""
        if self._calls is not None:
            self._calls.close()
            self._calls = None
