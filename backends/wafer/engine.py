"""Releasing responses on the wall clock at the times the device model says.

One timer thread and one heap: a call is submitted with its result already computed (the
answers are known ahead; only *when* is modelled), the device model gives its completion
time, and the timer thread resolves the call's future at that time -- on its own thread,
which is where the harness completes the samples with LoadGen. Many calls are in flight at
once; the thread sleeps until the next release (or the device's next batch), and releases
everything due together.

A sleeping thread wakes a little late (scheduler latency, ~0.1 ms on a busy VM): with few
calls in flight (SingleStream, a quiet Server) the last 0.3 ms before a release are waited
out yielding the processor instead (a little CPU for precise latencies); with many in flight
(Offline) it sleeps. Completing a call (the harness's callback, ending in LoadGen's
``QuerySamplesComplete``, which is when LoadGen stops its clock) takes a few tens of
microseconds more. The thread measures both and aims earlier by their running medians, so
LoadGen sees each completion at the modelled time on average; :meth:`Engine.stats` reports
how far from it the completions landed.
"""

from __future__ import annotations

import heapq
import itertools
import math
import threading
import time
from collections import deque
from concurrent.futures import Future
from typing import Any

import numpy as np

from backends.base import BackendError
from backends.wafer.device import Device

MAX_LEAD_S = 0.0005  # never aim more than this early
SPIN_S = 0.0003  # the last stretch before a release is waited out yielding, not sleeping,
SPIN_MAX_CALLS = 4  # ... while this few calls are in flight (SingleStream, a quiet Server)
LATENESS_WINDOW = 64  # the running median over this many wake-ups


class Engine:
    """Drives a :class:`Device` on ``clock`` (``time.monotonic``) and resolves futures."""

    def __init__(self, device: Device, clock=time.monotonic) -> None:
        self.device = device
        self.clock = clock
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, int]] = []  # (release time, seq, token)
        self._calls: dict[int, tuple[Future, Any]] = {}
        self._tokens = itertools.count()
        self._order = itertools.count()
        self._last_arrival = -math.inf
        self._waiting_until = math.inf  # when the timer thread means to wake (inf: no event)
        self._closed = False
        self._late: deque[float] = deque(maxlen=LATENESS_WINDOW)
        self._callback: deque[float] = deque(maxlen=LATENESS_WINDOW)
        self._lead = 0.0
        self.released = 0
        self._lateness: list[float] = []  # after compensation, for stats (bounded)
        self._thread = threading.Thread(target=self._run, name="wafer-timer", daemon=True)
        self._thread.start()

    def submit(self, sizes: np.ndarray, result: Any, arrival: float | None = None) -> Future:
        """A call of samples (their token counts) arriving at ``arrival`` (default now);
        the future gives ``result`` at the modelled completion time."""
        future: Future = Future()
        with self._cond:
            if self._closed:
                raise BackendError("wafer backend: closed; call load() first")
            now = self.clock() if arrival is None else arrival
            now = max(now, self._last_arrival)  # arrivals in order, as the device expects
            self._last_arrival = now
            token = next(self._tokens)
            self._calls[token] = (future, result)
            for done_token, done in self.device.arrive(now, sizes, token):
                heapq.heappush(self._heap, (done, next(self._order), done_token))
            # wake the timer only when it now has something earlier to do
            if self._next_time() - self._lead < self._waiting_until:
                self._cond.notify()
        return future

    def in_flight(self) -> int:
        return len(self._calls)

    def _next_time(self) -> float:
        head = self._heap[0][0] if self._heap else math.inf
        return min(head, self.device.next_event())

    def _run(self) -> None:
        while True:
            with self._cond:
                slept = False
                while True:
                    if self._closed:
                        return
                    target = self._next_time()
                    now = self.clock()
                    if target - self._lead <= now:
                        break
                    wait = target - self._lead - now
                    slept = True
                    spin = SPIN_S if len(self._calls) <= SPIN_MAX_CALLS else 0.0
                    if wait <= spin:  # yield until then: a sleep would wake ~0.1 ms late
                        self._waiting_until = -math.inf
                        self._cond.release()
                        try:
                            time.sleep(0)
                        finally:
                            self._cond.acquire()
                        continue
                    self._waiting_until = target - self._lead - spin
                    self._cond.wait(None if math.isinf(wait) else min(wait - spin, 1.0))
                self._waiting_until = -math.inf  # awake: submissions need not notify
                late = now - target
                # the device's own events (streaming batches) up to now
                while self.device.next_event() <= now + self._lead:
                    for token, done in self.device.advance(self.device.next_event()):
                        heapq.heappush(self._heap, (done, next(self._order), token))
                due = []
                while self._heap and self._heap[0][0] <= now + self._lead:
                    release, _, token = heapq.heappop(self._heap)
                    due.append((release, self._calls.pop(token)))
            if slept:  # a wake-up's lateness (not a backlog being worked through)
                self._late.append(late + self._lead)  # how late, had we not aimed early
            for release, (future, result) in due:
                began = self.clock()
                if not future.cancelled():
                    future.set_result(result)  # runs the harness's completion callback
                finished = self.clock()
                self._callback.append(finished - began)
                if len(self._lateness) < 100_000:
                    self._lateness.append(finished - release)
                self.released += 1
            if due:
                self._lead = min(MAX_LEAD_S, max(0.0, _median(self._late)
                                                 + _median(self._callback)))

    def stats(self) -> dict[str, float]:
        """How far from the modelled times calls were completed (ms; negative: early)."""
        late = np.asarray(self._lateness) * 1e3
        if not len(late):
            return {"released": 0}
        return {"released": self.released, "lateness_ms_p50": float(np.percentile(late, 50)),
                "lateness_ms_p99": float(np.percentile(late, 99)),
                "lead_ms": float(self._lead * 1e3)}

    def close(self) -> None:
        """Stop the timer; calls still in flight fail (the backend was closed under them)."""
        with self._cond:
            self._closed = True
            calls, self._calls = self._calls, {}
            self._heap.clear()
            self._cond.notify()
        self._thread.join(5)
        for future, _ in calls.values():
            if not future.done():
                future.set_exception(BackendError("wafer backend closed with the call in flight"))


def _median(values: deque[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[len(ordered) // 2]
