"""Dispatch: one asynchronous path from a batch to the backend and back.

Every backend call is started by :meth:`Dispatcher.submit`, which returns at once, and
answered later, on whichever thread finished it, through one method (``_settle``). An
:class:`~backends.device.AsyncDevice` that takes more than one call at a time answers
through the futures it returns; any other backend is wrapped in a :class:`CallThread`, a
thread of the harness's own that runs ``predict`` one call at a time and answers each (no
future there: one per call cost the null backend's Offline path a few per cent), so a
call that never
returns blocks only that thread: it is abandoned and a fresh one takes the calls from then
on. A :class:`~backends.device.TimedDevice` is also told when each batch arrived.

At most ``max_in_flight`` calls are outstanding: the batching thread reserves a slot
before it forms a batch (so that a Server batch gathers what arrives while the device is
busy) and waits on a condition, woken by a call's answer or by a stop. The call thread,
once a call has returned and its samples are completed, takes the next batch ready
itself, in the same slot (a full one, or with no batch wait whatever has arrived):
Offline's batches, and a busy Server's, then run one after another on that one thread,
without a hand-over between threads per batch. Each answer is handed to ``on_done`` on
the thread that finished the call.
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
    """Runs calls (callables that deliver their own answers) on a daemon thread of its own,
    one at a time, in the order submitted."""

    def __init__(self) -> None:
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
        while (call := calls.get()) is not None:
            call()

    def submit(self, call: Callable[[], None]) -> None:
        """Queue ``call`` and return at once."""
        with self._lock:
            self._queue.put(call)

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
    hands each answer (or error, with its traceback) to ``on_done``. ``features`` gathers a
    batch's rows (on the call thread, for a synchronous backend); ``next_ready`` takes the
    next batch if one is ready without waiting (a synchronous backend's call thread takes
    its next batch itself: Offline then runs on that thread alone)."""

    def __init__(self, backend: Backend, features: Callable[[Batch], FeatureBatch],
                 next_ready: Callable[[], Batch | None], on_done: OnDone) -> None:
        self._backend = backend
        self._features = features
        self._next_ready = next_ready
        self._on_done = on_done
        self._timed = isinstance(backend, TimedDevice)
        self._native = isinstance(backend, AsyncDevice) and backend.max_in_flight() > 1
        self.max_in_flight = backend.max_in_flight() if self._native else 1
        self._calls: CallThread | None = None
        self._cond = threading.Condition()
        # token -> (batch, started: time.monotonic() s; None until the call thread runs it)
        self._in_flight: dict[int, tuple[Batch, float | None]] = {}
        self._reserved = 0
        self._answering = 0  # answers taken from _in_flight and not yet handed over
        self._stopped = False
        # reserve() waits until this many calls or fewer are outstanding (None: nobody waits)
        self._wake_at: int | None = None
        self._tokens = itertools.count()

    def open(self) -> None:
        """Start the call thread (a backend without asynchronous calls of its own)."""
        if not self._native and self._calls is None:
            self._calls = CallThread()

    def _call_sync(self, token: int, batch: Batch) -> None:
        """On the call thread: run the call (its clock starts now), then each full batch
        pending, keeping the slot; a call given up before it ran never reaches the backend."""
        with self._cond:
            if token not in self._in_flight:
                return  # given up (a stop) and completed already
            self._in_flight[token] = (batch, time.monotonic())
        while True:
            try:
                features = self._features(batch)
                if self._timed:  # a timed device, one call at a time: its clock, waited for
                    logits = self._backend.predict_async(  # type: ignore[attr-defined]
                        features, batch.issued_s).result()
                else:
                    logits = self._backend.predict(features)
            except BaseException as exc:  # noqa: BLE001 - reported after LoadGen ends
                following = self._settle(token, None, exc, traceback.format_exc())
            else:
                following = self._settle(token, logits, None, "", pull=True)
            if following is None:
                return
            token, batch = following
            if token not in self._in_flight:
                return  # given up (a stop) while the last answer was completed

    def _start(self, token: int, batch: Batch) -> None:
        if self._calls is not None:
            self._calls.submit(functools.partial(self._call_sync, token, batch))
            return
        features = self._features(batch)
        if self._timed:
            future = self._backend.predict_async(features, batch.issued_s)  # type: ignore[attr-defined]
        else:
            future = self._backend.predict_async(features)  # type: ignore[attr-defined]
        future.add_done_callback(functools.partial(self._resolved, token))

    # -- the batching thread -------------------------------------------------------------
    def reserve(self) -> bool:
        """Wait for a free slot and hold it for the next :meth:`submit`; False, holding
        nothing, once stopped."""
        capacity = self.max_in_flight
        with self._cond:
            if len(self._in_flight) + self._reserved >= capacity:
                self._wake_at = capacity - 1
                while not self._stopped and \
                        len(self._in_flight) + self._reserved > self._wake_at:
                    self._cond.wait()
                self._wake_at = None
            if self._stopped:
                return False
            self._reserved += 1
            return True

    def unreserve(self) -> None:
        """Give back a slot :meth:`reserve` held and no call used."""
        with self._cond:
            self._reserved -= 1
            self._cond.notify_all()

    def submit(self, batch: Batch) -> bool:
        """Start a call in the slot reserved; False when stopped meanwhile (nothing started:
        the caller completes the samples)."""
        token = next(self._tokens)
        with self._cond:
            self._reserved -= 1
            if self._stopped:
                return False
            self._in_flight[token] = (batch, time.monotonic() if self._native else None)
        try:
            self._start(token, batch)
        except BaseException as exc:  # noqa: BLE001 - reported after LoadGen ends
            self._settle(token, None, exc, traceback.format_exc())
        return True

    # -- whichever thread finished the call ------------------------------------------------
    def _resolved(self, token: int, future: Future) -> None:
        """An asynchronous device's future is done."""
        try:
            logits = future.result()
        except BaseException as exc:  # noqa: BLE001 - reported after LoadGen ends
            self._settle(token, None, exc, traceback.format_exc())
        else:
            self._settle(token, logits, None, "")

    def _settle(self, token: int, logits: Logits, exc: BaseException | None, trace: str,
                pull: bool = False) -> tuple[int, Batch] | None:
        """Hand an answer to ``on_done``. With ``pull`` (the call thread, after a call that
        returned), then take the next batch ready into the same slot, unless the batching
        thread has reserved it meanwhile, and return it with its token."""
        following = None
        with self._cond:
            entry = self._in_flight.pop(token, None)
            if entry is None:
                return None  # given up (a stop or a timeout) and completed already
            self._answering += 1
            if not pull:
                self._wake_reserve()
        try:
            self._on_done(entry[0], logits, exc, trace)
        finally:
            with self._cond:
                self._answering -= 1
                if pull and not self._stopped and \
                        len(self._in_flight) + self._reserved < self.max_in_flight:
                    batch = self._next_ready()
                    if batch is not None:
                        following = (next(self._tokens), batch)
                        self._in_flight[following[0]] = (batch, time.monotonic())
                if following is None:
                    self._wake_reserve()
                    if not self._in_flight and not self._answering:
                        self._cond.notify_all()  # for wait_idle()
        return following

    def _wake_reserve(self) -> None:
        """Under the lock: wake reserve() if the slots it waits for are free."""
        if self._wake_at is not None and \
                len(self._in_flight) + self._reserved <= self._wake_at:
            self._cond.notify_all()

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
            return max(((now - started, batch) for batch, started in self._in_flight.values()
                        if started is not None), key=lambda entry: entry[0], default=None)

    def replace_stuck(self) -> None:
        """A call has outlived its timeout: abandon the call thread, if it is ours."""
        if self._calls is not None:
            self._calls.replace()

    def wait_idle(self) -> None:
        """Block until no call is outstanding and every answer has been handed to
        ``on_done`` (the watchdog bounds a stuck call)."""
        with self._cond:
            self._cond.wait_for(lambda: not self._in_flight and not self._answering)

    def close(self) -> None:
        """End the call thread, if any."""
        if self._calls is not None:
            self._calls.close()
            self._calls = None
