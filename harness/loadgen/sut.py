"""One LoadGen system-under-test adapter for every backend.

LoadGen calls ``issue_queries`` on its own thread and measures from that call: the
callback only enqueues ``(response id, sample index)`` pairs and returns. One worker
thread forms batches (Offline: slices of the single big query; Server, SingleStream and
MultiStream: whatever has arrived, up to ``batch_size``), calls the backend, and completes
the samples. Each response buffer is a slice of a numpy array that stays referenced until
``QuerySamplesComplete`` has returned (LoadGen copies the bytes for its accuracy log).

A backend that raises does not hang the run: the error is kept, every outstanding and later
sample is completed with an empty response so LoadGen can finish and write its logs, and
the error is raised again when the test ends.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import traceback
from collections import deque

import numpy as np

from backends.base import Backend
from harness.errors import HarnessError
from harness.loadgen.qsl import QuerySampleLibrary


class BackendRunError(HarnessError):
    """The backend failed during the LoadGen test."""


@dataclasses.dataclass(frozen=True)
class SUTSettings:
    """How the adapter batches: at most ``batch_size`` samples per backend call."""

    batch_size: int = 1
    progress: bool = True

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise HarnessError(f"batch size must be at least 1, got {self.batch_size}")


_STOP = object()


class LoadGenSUT:
    """Wraps a loaded backend and a QSL into LoadGen's issue/flush contract."""

    def __init__(
        self, backend: Backend, qsl: QuerySampleLibrary, settings: SUTSettings = SUTSettings()
    ) -> None:
        self.backend = backend
        self.qsl = qsl
        self.settings = settings
        self.completed = 0  # samples completed, including failed ones
        self.batches = 0  # backend calls made
        self.error: BaseException | None = None
        self.error_traceback = ""
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        self._handle = None
        self._bar = None

    # -- LoadGen callbacks (LoadGen's threads) -----------------------------------------
    def issue_queries(self, query_samples) -> None:
        """Enqueue and return at once: LoadGen's clock is running."""
        self._queue.put([(sample.id, sample.index) for sample in query_samples])

    def flush_queries(self) -> None:
        """Nothing is held back between queries, so there is nothing to flush."""

    # -- worker ------------------------------------------------------------------------
    def _next_batch(self, pending: deque) -> list[tuple[int, int]] | None:
        """Take up to batch_size samples, blocking only when nothing is pending."""
        while not pending:
            item = self._queue.get()
            if item is _STOP:
                return None
            pending.extend(item)
        # Gather whatever else has already arrived (Server: queries issued meanwhile).
        while len(pending) < self.settings.batch_size:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                self._queue.put(_STOP)  # finish what is pending first, then stop
                break
            pending.extend(item)
        size = min(self.settings.batch_size, len(pending))
        return [pending.popleft() for _ in range(size)]

    def _run(self) -> None:
        import mlperf_loadgen as lg

        pending: deque = deque()
        while (batch := self._next_batch(pending)) is not None:
            ids = [sample_id for sample_id, _ in batch]
            output = None
            if self.error is None:
                try:
                    start, end = self.backend.predict(self.qsl.batch([i for _, i in batch]))
                    # [B, S, 2] float32: the layout of the reference's response buffers
                    output = np.ascontiguousarray(np.stack([start, end], axis=-1), np.float32)
                    self.batches += 1
                except BaseException as exc:  # noqa: BLE001 - reported after LoadGen ends
                    self.error = exc
                    self.error_traceback = traceback.format_exc()
            if output is not None:
                responses = [
                    lg.QuerySampleResponse(sample_id, output[row].ctypes.data, output[row].nbytes)
                    for row, sample_id in enumerate(ids)
                ]
            else:
                responses = [lg.QuerySampleResponse(sample_id, 0, 0) for sample_id in ids]
            lg.QuerySamplesComplete(responses)
            del output  # only now may the buffers go
            self.completed += len(ids)
            if self._bar is not None:
                self._bar.update(len(ids))

    # -- lifecycle ---------------------------------------------------------------------
    def construct(self):
        """Start the worker and create the LoadGen SUT handle."""
        import mlperf_loadgen as lg

        if self.settings.progress:
            from tqdm import tqdm

            self._bar = tqdm(desc="samples", unit="sample", mininterval=1.0, leave=False)
        self._worker = threading.Thread(target=self._run, name="sut-worker", daemon=True)
        self._worker.start()
        self._handle = lg.ConstructSUT(self.issue_queries, self.flush_queries)
        return self._handle

    def destroy(self) -> None:
        """Stop the worker, destroy the handle, and raise the backend's error if it failed."""
        import mlperf_loadgen as lg

        if self._worker is not None:
            self._queue.put(_STOP)
            self._worker.join()
            self._worker = None
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._handle is not None:
            lg.DestroySUT(self._handle)
            self._handle = None

    def raise_if_failed(self) -> None:
        """Raise :class:`BackendRunError` if the backend failed during the test."""
        if self.error is not None:
            raise BackendRunError(
                f"backend {self.backend.name!r} failed during the run: "
                f"{type(self.error).__name__}: {self.error}"
            ) from self.error
