"""One LoadGen system-under-test adapter for every backend.

LoadGen calls ``issue_queries`` on its own thread and measures from that call: the
callback only enqueues ``(response id, sample index)`` pairs and returns. One worker
thread forms batches (Offline: slices of the single big query; Server, SingleStream and
MultiStream: whatever has arrived, up to ``batch_size``), calls the backend, and completes
the samples. Each response buffer is a slice of a numpy array that stays referenced until
``QuerySamplesComplete`` has returned (LoadGen copies the bytes for its accuracy log).

Stopping. A run stops early when the backend raises, when a backend call outlives
``call_timeout_s`` (a watchdog thread notices, abandons the stuck call and carries on with a
fresh worker), when the run passes ``deadline_s``, or when :meth:`LoadGenSUT.stop` is called
(Ctrl-C, SIGTERM). From then on no sample reaches the backend: samples are completed with
empty responses so that LoadGen ends and writes its logs. LoadGen's Server scenario issues
queries on its schedule whatever the SUT does, so there (``hold_on_stop``) the adapter holds
the queries instead: LoadGen's ``server_max_async_queries`` limit then ends the test within
a few queries, and everything held is completed at ``flush_queries``. The reason is kept and
the error raised again when the test ends.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import queue
import threading
import time
import traceback
from collections import deque

import numpy as np

from backends.base import Backend
from common.errors import HarnessError
from harness.loadgen.qsl import QuerySampleLibrary


class BackendRunError(HarnessError):
    """The backend failed during the LoadGen test."""


class BackendCallTimeout(BackendRunError):
    """A backend call did not return within the per-call timeout."""


@dataclasses.dataclass(frozen=True)
class SUTSettings:
    """How the adapter batches and when it gives up.

    ``batch_size``: most samples per backend call. ``call_timeout_s``: longest a backend
    call may take (None: no limit). ``deadline_s``: seconds after :meth:`construct` at
    which the run is stopped (None: none). ``hold_on_stop``: hold queries after a stop until
    LoadGen flushes (Server performance runs; see the module doc).

    Variable length: a batch runs at the longest real length among its samples, rounded up
    to a multiple of ``seq_bucket`` tokens (None: always the full padded length; a backend
    whose model fixes the length gets that). ``sort_by_length``: the samples of a query
    (Offline: all of them) are batched in order of length, so a batch wastes little on
    padding. ``batch_wait_s``: how long a batch that is not full may wait for more queries
    (Server), from its first sample's arrival.
    """

    batch_size: int = 1
    progress: bool = True
    call_timeout_s: float | None = None
    deadline_s: float | None = None
    hold_on_stop: bool = False
    seq_bucket: int | None = 1
    sort_by_length: bool = True
    batch_wait_s: float = 0.0

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise HarnessError(f"batch size must be at least 1, got {self.batch_size}")
        if self.seq_bucket is not None and self.seq_bucket < 1:
            raise HarnessError(f"sequence bucket must be at least 1 token, got {self.seq_bucket}")
        if self.batch_wait_s < 0:
            raise HarnessError(f"batch wait must be >= 0 s, got {self.batch_wait_s}")
        for label, value in (("call timeout", self.call_timeout_s),
                             ("deadline", self.deadline_s)):
            if value is not None and not value > 0:
                raise HarnessError(f"{label} must be positive seconds, got {value}")


PAD_LOGIT = -10000.0  # logits past a sample's batch length: as the reference pads short logits
_EMPTY = (np.zeros(0, np.uint64), np.zeros(0, np.int64), None)
_STOP = object()  # the test is over: finish and end the worker
_FLUSH = object()  # LoadGen issues no more queries
_WAKE = object()  # look at the stop state now


class _Pending:
    """Samples taken from LoadGen's queries and not yet sent: chunks of (ids, indices)
    arrays with the time LoadGen issued them, taken from the front in one slice per chunk."""

    def __init__(self) -> None:
        self._chunks: deque[tuple[np.ndarray, np.ndarray, float | None]] = deque()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, ids: np.ndarray, indices: np.ndarray, issued: float | None = None) -> None:
        if len(ids):
            self._chunks.append((ids, indices, issued))
            self._count += len(ids)

    def take(self, count: int) -> tuple[np.ndarray, np.ndarray, float | None]:
        """Up to ``count`` samples from the front: (ids, indices, when the earliest of them
        was issued)."""
        taken: list[tuple[np.ndarray, np.ndarray, float | None]] = []
        need = min(count, self._count)
        while need:
            ids, indices, issued = self._chunks[0]
            if len(ids) <= need:
                self._chunks.popleft()
                taken.append((ids, indices, issued))
                need -= len(ids)
            else:
                taken.append((ids[:need], indices[:need], issued))
                self._chunks[0] = (ids[need:], indices[need:], issued)
                need = 0
        self._count -= sum(len(chunk[0]) for chunk in taken)
        if len(taken) == 1:
            return taken[0]
        if not taken:
            return _EMPTY
        return (np.concatenate([chunk[0] for chunk in taken]),
                np.concatenate([chunk[1] for chunk in taken]), taken[0][2])


class LoadGenSUT:
    """Wraps a loaded backend and a QSL into LoadGen's issue/flush contract."""

    def __init__(
        self, backend: Backend, qsl: QuerySampleLibrary, settings: SUTSettings = SUTSettings()
    ) -> None:
        self.backend = backend
        self.qsl = qsl
        self.settings = settings
        self.completed = 0  # samples completed, including empty ones
        self.batches = 0  # backend calls that returned
        self.error: BaseException | None = None  # the backend's failure, if any
        self.error_traceback = ""
        self.stop_reason: str | None = None  # why the run stopped early, if it did
        # first query issued and last sample completed (time.monotonic(), s): the SUT's own
        # throughput, in accuracy mode too, where LoadGen reports none
        self.first_issue: float | None = None
        self.last_completion: float | None = None
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._generation = 0  # bumped when a stuck worker is abandoned
        self._in_call: tuple[np.ndarray, float] | None = None  # (ids, started) of the call
        # taken from the queue, not yet sent: shared, so that a worker that replaces a
        # stuck one carries on with the same samples
        self._pending = _Pending()
        self._held: list[np.ndarray] = []
        self._full_len = int(qsl.features.input_ids.shape[1])
        self._fixed_len = backend.fixed_sequence_length()
        self._flushed = False
        # asynchronous backends: calls outstanding, token -> (ids, length, submitted)
        self._async = backend.max_in_flight() > 1
        self._slots = threading.Semaphore(max(1, backend.max_in_flight()))
        self._in_flight: dict[int, tuple[np.ndarray, int, float]] = {}
        self._tokens = itertools.count()
        self._worker: threading.Thread | None = None
        self._watchdog: threading.Thread | None = None
        self._closing = threading.Event()
        self._deadline: float | None = None
        self._handle = None
        self._bar = None

    # -- LoadGen callbacks (LoadGen's threads) -----------------------------------------
    def issue_queries(self, ids: list[int], indices: list[int]) -> None:
        """Enqueue and return at once: LoadGen's clock is running (ConstructFastSUT's form)."""
        issued = time.monotonic()
        if self.first_issue is None:
            self.first_issue = issued
        self._queue.put((ids, indices, issued))

    def flush_queries(self) -> None:
        """LoadGen will issue nothing more: release anything held after a stop."""
        self._queue.put(_FLUSH)

    # -- stopping ----------------------------------------------------------------------
    @property
    def stopped(self) -> bool:
        return self.stop_reason is not None

    def stop(self, reason: str) -> None:
        """Stop sending samples to the backend (any thread; the first reason is kept).
        Calls still outstanding on an asynchronous backend are completed empty now."""
        with self._lock:
            if self.stop_reason is None:
                self.stop_reason = reason
            abandoned = list(self._in_flight.values())
            self._in_flight.clear()
        for ids, _, _ in abandoned:
            self._slots.release()
            self._complete(ids, None)
        self._queue.put(_WAKE)

    def _fail(self, exc: BaseException, trace: str) -> None:
        with self._lock:
            if self.error is None:
                self.error, self.error_traceback = exc, trace
        self.stop(f"the backend failed: {type(exc).__name__}: {exc}")

    # -- worker ------------------------------------------------------------------------
    def _take(self, item) -> bool:
        """Handle one queue item; False when it says the test is over."""
        if item is _STOP:
            self._queue.put(_STOP)  # seen again by the blocking wait, once pending is done
            return False
        if item is _FLUSH:
            self._flushed = True
            self._release_held()
        elif item is not _WAKE:
            ids, indices = np.asarray(item[0], np.uint64), np.asarray(item[1], np.int64)
            if len(indices) > 1 and self.settings.sort_by_length:
                order = np.argsort(self.qsl.lengths[indices], kind="stable")
                ids, indices = ids[order], indices[order]
            self._pending.add(ids, indices, item[2])
        return True

    def _next_batch(self) -> tuple[np.ndarray, np.ndarray, float | None] | None:
        """Take up to batch_size samples, blocking only when nothing is pending."""
        pending = self._pending
        while not pending:
            item = self._queue.get()
            if item is _STOP:
                return None
            self._take(item)
            if item is _WAKE and self.stopped and not pending:
                return _EMPTY  # let the caller see the stop
        wanted = self.settings.batch_size
        # Gather whatever else has already arrived (Server: queries issued meanwhile), and
        # wait up to the batch budget for more.
        waits_until = self._first_arrival_wait()
        while len(pending) < wanted and not self.stopped:
            timeout = None if waits_until is None else waits_until - time.monotonic()
            try:
                item = (self._queue.get_nowait() if timeout is None or timeout <= 0
                        else self._queue.get(timeout=timeout))
            except queue.Empty:
                break
            if not self._take(item):
                break
        return pending.take(len(pending) if self.stopped else wanted)

    def _first_arrival_wait(self) -> float | None:
        wait = self.settings.batch_wait_s
        return time.monotonic() + wait if wait > 0 else None

    def _run(self, generation: int) -> None:
        while (batch := self._next_batch()) is not None:
            ids, indices, issued = batch
            if not len(ids):
                continue
            if self._deadline is not None and time.monotonic() > self._deadline:
                self.stop(f"the run passed its time limit of {self.settings.deadline_s:g} s")
            if self.stopped:
                self._stopped_samples(ids)
                continue
            if self._async:
                self._dispatch(ids, indices, issued)
                continue
            output = None
            with self._lock:
                self._in_call = (ids, time.monotonic())
            try:
                output = self._predict(indices, issued)
            except BaseException as exc:  # noqa: BLE001 - reported after LoadGen ends
                if generation == self._generation:
                    self._fail(exc, traceback.format_exc())
            with self._lock:
                if generation != self._generation:
                    return  # the watchdog gave up on this call and completed its samples
                self._in_call = None
                if output is not None:
                    self.batches += 1
            self._complete(ids, output)

    def _seq_len(self, indices: np.ndarray) -> int:
        """The length a batch runs at: its longest sample, bucketed (see SUTSettings)."""
        full = self._full_len
        if self._fixed_len is not None:
            return self._fixed_len
        bucket = self.settings.seq_bucket
        if bucket is None:
            return full
        longest = int(self.qsl.lengths[indices].max())
        return min(full, -(-max(longest, 1) // bucket) * bucket)

    def _predict(self, indices: np.ndarray, issued: float | None) -> np.ndarray:
        seq = self._seq_len(indices)
        return self._assemble(self.backend.predict(self.qsl.batch(indices, seq, issued)), seq)

    def _assemble(self, logits: tuple[np.ndarray, np.ndarray], seq: int) -> np.ndarray:
        """[B, full, 2] float32 logits: the layout of the reference's response buffers, with
        positions past the batch's length at PAD_LOGIT (never picked as an answer)."""
        start, end = logits
        if seq == self._full_len:
            return np.ascontiguousarray(np.stack([start, end], axis=-1), np.float32)
        output = np.full((len(start), self._full_len, 2), PAD_LOGIT, np.float32)
        output[:, :seq, 0] = start
        output[:, :seq, 1] = end
        return output

    # -- asynchronous backends ---------------------------------------------------------
    def _dispatch(self, ids: np.ndarray, indices: np.ndarray, issued: float | None) -> None:
        """Start a call and move on; the future's callback completes the samples."""
        seq = self._seq_len(indices)
        batch = self.qsl.batch(indices, seq, issued)
        while not self._slots.acquire(timeout=0.05):  # at most max_in_flight outstanding
            if self.stopped:
                self._stopped_samples(ids)
                return
        token = next(self._tokens)
        with self._lock:
            self._in_flight[token] = (ids, seq, time.monotonic())
        try:
            future = self.backend.predict_async(batch)
        except BaseException as exc:  # noqa: BLE001 - reported after LoadGen ends
            self._settle(token, None, exc, traceback.format_exc())
            return
        future.add_done_callback(functools.partial(self._resolved, token))

    def _resolved(self, token: int, future) -> None:
        """A call finished (on whichever thread finished it)."""
        try:
            logits = future.result()
        except BaseException as exc:  # noqa: BLE001 - reported after LoadGen ends
            self._settle(token, None, exc, traceback.format_exc())
        else:
            self._settle(token, logits, None, "")

    def _settle(self, token: int, logits, exc: BaseException | None, trace: str) -> None:
        with self._lock:
            entry = self._in_flight.pop(token, None)
        if entry is None:
            return  # given up (a stop or a timeout) and completed already
        self._slots.release()
        ids, seq, _ = entry
        output = None
        if exc is None:
            try:
                output = self._assemble(logits, seq)
                with self._lock:
                    self.batches += 1
            except BaseException as bad:  # noqa: BLE001 - logits of the wrong shape...
                exc, trace = bad, traceback.format_exc()
        if exc is not None:
            self._fail(exc, trace)
        self._complete(ids, output)

    def _oldest_in_flight_s(self, now: float) -> float:
        with self._lock:
            return max((now - submitted for _, _, submitted in self._in_flight.values()),
                       default=0.0)

    def _stopped_samples(self, ids: np.ndarray) -> None:
        """After a stop: hold the samples (Server, until the flush) or complete them empty."""
        if self.settings.hold_on_stop and not self._flushed:
            self._held.append(ids)
        else:
            self._complete(ids, None)

    def _release_held(self) -> None:
        held, self._held = self._held, []
        if held:
            self._complete(np.concatenate(held), None)

    def _complete(self, ids: np.ndarray, output: np.ndarray | None) -> None:
        import mlperf_loadgen as lg

        count = len(ids)
        if output is not None:
            row = output[0].nbytes
            pointers = (output.ctypes.data + row * np.arange(count, dtype=np.uint64)).tolist()
            sizes = [row] * count
        else:
            pointers = sizes = [0] * count
        lg.QuerySamplesComplete(list(map(lg.QuerySampleResponse, ids.tolist(), pointers, sizes)))
        del output  # only now may the buffers go
        self.last_completion = time.monotonic()
        self.completed += count
        if self._bar is not None:
            self._bar.update(count)

    # -- watchdog ----------------------------------------------------------------------
    def _watch(self) -> None:
        """Give up on a backend call past its timeout; stop a run past its deadline."""
        limits = [v for v in (self.settings.call_timeout_s, self.settings.deadline_s) if v]
        period = min(0.25, *(v / 4 for v in limits))
        while not self._closing.wait(period):
            now = time.monotonic()
            if self._deadline is not None and now > self._deadline and not self.stopped:
                self.stop(f"the run passed its time limit of {self.settings.deadline_s:g} s")
            timeout = self.settings.call_timeout_s
            if self._async:
                if timeout is not None and self._oldest_in_flight_s(now) > timeout:
                    self._fail(BackendCallTimeout(
                        f"a backend call did not return within {timeout:g} s (raise "
                        "--call-timeout if the backend is that slow)"), "")
                continue
            with self._lock:
                stuck = self._in_call
                if stuck is None or timeout is None or now - stuck[1] <= timeout:
                    continue
                self._generation += 1  # the stuck worker will complete nothing
                self._in_call = None
            exc = BackendCallTimeout(
                f"a backend call on {len(stuck[0])} samples did not return within "
                f"{timeout:g} s (raise --call-timeout if the backend is that slow)"
            )
            self._fail(exc, "")
            self._complete(stuck[0], None)
            self._start_worker()

    # -- lifecycle ---------------------------------------------------------------------
    def _start_worker(self) -> None:
        worker = threading.Thread(target=self._run, args=(self._generation,),
                                  name=f"sut-worker-{self._generation}", daemon=True)
        worker.start()
        self._worker = worker  # only a started thread: destroy() may be joining already

    def construct(self):
        """Start the worker (and watchdog) and create the LoadGen SUT handle."""
        import mlperf_loadgen as lg

        if self.settings.progress:
            from tqdm import tqdm

            self._bar = tqdm(desc="samples", unit="sample", mininterval=1.0, leave=False)
        if self.settings.deadline_s is not None:
            self._deadline = time.monotonic() + self.settings.deadline_s
        self._start_worker()
        if self.settings.call_timeout_s is not None or self.settings.deadline_s is not None:
            self._watchdog = threading.Thread(target=self._watch, name="sut-watchdog",
                                              daemon=True)
            self._watchdog.start()
        self._handle = lg.ConstructFastSUT(self.issue_queries, self.flush_queries)
        return self._handle

    def destroy(self) -> None:
        """Let the worker finish what is pending, then stop it and the watchdog, and destroy
        the handle. The watchdog keeps watching meanwhile: a worker stuck in a call is
        replaced (and abandoned, a daemon thread) and its replacement finishes instead."""
        import mlperf_loadgen as lg

        if self._worker is not None:
            self._queue.put(_STOP)
            while True:
                worker = self._worker
                worker.join(0.05)
                if worker is self._worker and not worker.is_alive():
                    break
            self._worker = None
        while self._in_flight:  # asynchronous calls outstanding: the watchdog bounds them
            time.sleep(0.01)
        self._closing.set()
        if self._watchdog is not None:
            self._watchdog.join()
            self._watchdog = None
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._handle is not None:
            lg.DestroyFastSUT(self._handle)
            self._handle = None

    def throughput(self) -> dict[str, float | None]:
        """Samples completed per second between the first issue and the last completion."""
        if self.first_issue is None or self.last_completion is None:
            return {"sut_active_s": None, "sut_samples_per_s": None}
        active = max(self.last_completion - self.first_issue, 1e-9)
        return {"sut_active_s": active, "sut_samples_per_s": self.completed / active}

    def raise_if_failed(self) -> None:
        """Raise :class:`BackendRunError` if the backend failed during the test."""
        if self.error is None:
            return
        if isinstance(self.error, BackendRunError):
            raise self.error
        raise BackendRunError(
            f"backend {self.backend.name!r} failed during the run: "
            f"{type(self.error).__name__}: {self.error}"
        ) from self.error
