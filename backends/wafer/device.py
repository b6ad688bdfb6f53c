"""A discrete-event model of the wafer: when each call's samples finish.

Pure functions of time (no threads, no clock): :class:`PipelinedDevice` and
:class:`StreamingDevice` take arrivals (a call of samples, each with its token count) and
say when each call completes; :func:`simulate` runs a list of arrivals through one, and the
backend's real-time engine drives one on the wall clock.

Pipelined: ``replicas x systems`` independent pipelines, each a tandem of stages (host I/O,
then the layers), FIFO, one sample per stage at a time; a sample goes to the pipeline whose
first stage frees first. With every sample the same size (padding is not skipped) a tandem
of deterministic stages is exactly a pure delay plus its slowest stage (a classic result for
D/1 queues in series), so a departure is ``max(arrival + fill, previous departure + slowest
stage)``; with real lengths each stage is stepped through. The host transfer overhead is a
pure delay before and after (transfers overlap).

Streaming: samples cross the host link (a FIFO server) into one queue; whenever a system is
free it starts a batch of the samples already there, up to the plan's batch, and finishes
it after the batch time (per layer the stream or the compute, whichever is longer). A call
completes when its last sample does.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Iterable

import numpy as np

from backends.wafer.planned import Plan


class Device:
    """The interface the engine drives. Times are seconds on any monotonic clock."""

    def arrive(self, t: float, sizes: np.ndarray, token: int) -> list[tuple[int, float]]:
        """A call of ``len(sizes)`` samples arrives at ``t``; returns the calls whose
        completion time is now known, as ``(token, time)``."""
        raise NotImplementedError

    def next_event(self) -> float:
        """When the device next needs :meth:`advance` (inf: only on an arrival)."""
        return math.inf

    def advance(self, t: float) -> list[tuple[int, float]]:
        """Process the device's own events up to ``t`` (batches starting)."""
        return []


class PipelinedDevice(Device):
    def __init__(self, plan: Plan, constant: bool) -> None:
        spec = plan.spec
        self.plan = plan
        self.pipelines = plan.replicas * spec.systems
        self.overhead = spec.host_transfer_overhead_us * 1e-6
        self.after = plan.delay_s - self.overhead  # the overhead out, and the fabric hops
        self.constant = constant
        times = plan.stage_times(plan.seq)
        self.fill = float(times.sum())
        self.slowest = float(times.max())
        # constant: (last departure, pipeline); general: (first stage free, pipeline)
        self._free = [(0.0, k) for k in range(self.pipelines)]
        self._stages = [[0.0] * len(times) for _ in range(self.pipelines)]
        self._rows: dict[int, list[float]] = {}

    def _row(self, size: int) -> list[float]:
        row = self._rows.get(size)
        if row is None:
            row = self._rows[size] = self.plan.stage_times(size).tolist()
        return row

    def arrive(self, t: float, sizes: np.ndarray, token: int) -> list[tuple[int, float]]:
        start = t + self.overhead
        done = 0.0
        free = self._free
        if self.constant:
            fill, slowest = start + self.fill, self.slowest
            for _ in range(len(sizes)):
                last, k = free[0]
                departure = max(fill, last + slowest)
                heapq.heapreplace(free, (departure, k))
                done = max(done, departure)
        else:
            for size in np.asarray(sizes).tolist():
                _, k = free[0]
                stages = self._stages[k]
                clock = start
                for j, step in enumerate(self._row(int(size))):
                    clock = max(clock, stages[j]) + step
                    stages[j] = clock
                heapq.heapreplace(free, (stages[0], k))
                done = max(done, clock)
        return [(token, done + self.after)]


class StreamingDevice(Device):
    def __init__(self, plan: Plan, constant: bool) -> None:
        self.plan = plan
        self.overhead = plan.spec.host_transfer_overhead_us * 1e-6
        self.after = plan.delay_s - self.overhead
        self.batch = plan.stream_batch
        self.constant = constant
        self._free = [0.0] * plan.spec.systems
        self._link = 0.0  # the host link (every system's, as one FIFO server)
        self._queue: deque[tuple[float, int, int]] = deque()  # (ready, size, token)
        self._left: dict[int, list] = {}  # token -> [samples left, latest finish]
        self._batch_times: dict[int, float] = {}
        self._io: dict[int, float] = {}

    def _batch_time(self, sizes: list[int]) -> float:
        if self.constant:
            n = len(sizes)
            if n not in self._batch_times:
                self._batch_times[n] = self.plan.batch_time(np.full(n, self.plan.seq))
            return self._batch_times[n]
        return self.plan.batch_time(np.array(sizes))

    def _io_time(self, size: int) -> float:
        if size not in self._io:
            self._io[size] = float(self.plan.io_time(size))
        return self._io[size]

    def arrive(self, t: float, sizes: np.ndarray, token: int) -> list[tuple[int, float]]:
        sizes = np.asarray(sizes).tolist()
        self._left[token] = [len(sizes), 0.0]
        start = t + self.overhead
        for size in sizes:
            size = self.plan.seq if self.constant else int(size)
            self._link = max(start, self._link) + self._io_time(size)
            self._queue.append((self._link, size, token))
        return self.advance(t)

    def next_event(self) -> float:
        if not self._queue:
            return math.inf
        return max(min(self._free), self._queue[0][0])

    def advance(self, t: float) -> list[tuple[int, float]]:
        finished: list[tuple[int, float]] = []
        queue = self._queue
        while queue:
            k = min(range(len(self._free)), key=self._free.__getitem__)
            begin = max(self._free[k], queue[0][0])
            if begin > t:
                break
            members = []
            while queue and len(members) < self.batch and queue[0][0] <= begin:
                members.append(queue.popleft())
            end = begin + self._batch_time([size for _, size, _ in members])
            self._free[k] = end
            for _, _, token in members:
                left = self._left[token]
                left[0] -= 1
                left[1] = max(left[1], end)
                if not left[0]:
                    del self._left[token]
                    finished.append((token, left[1] + self.after))
        return finished


def make_device(plan: Plan, skip_padding: bool) -> Device:
    """The device for a plan: constant sizes unless padding is skipped."""
    kind = PipelinedDevice if plan.mode == "pipelined" else StreamingDevice
    return kind(plan, constant=not skip_padding)


def simulate(device: Device, arrivals: Iterable[tuple[float, np.ndarray]]) -> list[float]:
    """Completion time of each call, for calls ``(arrival time, sizes)`` in time order."""
    done: dict[int, float] = {}
    count = 0
    for token, (t, sizes) in enumerate(arrivals):
        while device.next_event() <= t:
            done.update(device.advance(device.next_event()))
        done.update(device.arrive(t, np.asarray(sizes), token))
        count += 1
    while math.isfinite(device.next_event()):
        done.update(device.advance(device.next_event()))
    return [done[token] for token in range(count)]
