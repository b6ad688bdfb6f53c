"""One LoadGen system-under-test adapter for every backend.

LoadGen calls ``issue_queries`` on its own thread and measures from that call: the
callback only enqueues ``(response id, sample index)`` pairs and returns. The adapter is
three parts, each in its own module: batching (:mod:`harness.loadgen.batching`: batches
are formed -- Offline: slices of the single big query; Server, SingleStream and
MultiStream: whatever has arrived, up to ``batch_size`` -- by the batching thread, or by a
synchronous backend's call thread when a batch is ready as its last call ends), dispatch
(:mod:`harness.loadgen.dispatch`: one asynchronous path to the backend, at most
``max_in_flight`` calls outstanding) and response handling
(:mod:`harness.loadgen.responses`: logits into response buffers, samples completed). This
module joins them, and stops the run.

Stopping. A run stops early when the backend raises, when a backend call outlives
``call_timeout_s`` (a watchdog thread notices, gives up on the call, and a synchronous
backend's stuck call thread is replaced by a fresh one), when the run passes ``deadline_s``,
or when :meth:`LoadGenSUT.stop` is called (Ctrl-C, SIGTERM). From then on no sample reaches
the backend: samples, including those of calls outstanding, are completed with empty
responses so that LoadGen ends and writes its logs. LoadGen's Server scenario issues
queries on its schedule whatever the SUT does, so there (``hold_on_stop``) the adapter holds
the queries instead: LoadGen's ``server_max_async_queries`` limit then ends the test within
a few queries, and everything held is completed at ``flush_queries``. The reason is kept and
the error raised again when the test ends.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import traceback
from typing import Any

from backends.base import Backend
from common.errors import HarnessError
from harness.loadgen.batching import Batch, Batcher
from harness.loadgen.dispatch import Dispatcher
from harness.loadgen.qsl import QuerySampleLibrary
from harness.loadgen.responses import PAD_LOGIT, Responder

__all__ = ["PAD_LOGIT", "BackendCallTimeout", "BackendRunError", "LoadGenSUT", "SUTSettings"]


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
    expected_samples: int | None = None  # the progress bar's total (and so its ETA)

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



class LoadGenSUT:
    """Wraps a loaded backend and a QSL into LoadGen's issue/flush contract."""

    def __init__(
        self, backend: Backend, qsl: QuerySampleLibrary, settings: SUTSettings = SUTSettings()
    ) -> None:
        self.backend = backend
        self.qsl = qsl
        self.settings = settings
        self.error: BaseException | None = None  # the backend's failure, if any
        self.error_traceback = ""
        self.stop_reason: str | None = None  # why the run stopped early, if it did
        # first query issued (time.monotonic(), s): with the last completion, the SUT's own
        # throughput, in accuracy mode too, where LoadGen reports none
        self.first_issue: float | None = None
        self._lock = threading.Lock()
        full_len = int(qsl.features.input_ids.shape[1])
        self._responses = Responder(full_len, settings.hold_on_stop)
        self._batcher = Batcher(
            qsl.lengths, full_len, backend.fixed_sequence_length(),
            batch_size=settings.batch_size, batch_wait_s=settings.batch_wait_s,
            seq_bucket=settings.seq_bucket, sort_by_length=settings.sort_by_length,
            stopped=lambda: self.stop_reason is not None, on_flush=self._responses.flush,
        )
        self._dispatch = Dispatcher(
            backend, lambda batch: qsl.batch(batch.indices, batch.seq_len),
            self._batcher.take_ready, self._answered)
        self._worker: threading.Thread | None = None
        self._watchdog: threading.Thread | None = None
        self._closing = threading.Event()
        self._deadline: float | None = None
        self._handle = None

    @property
    def batches(self) -> int:
        """Backend calls that returned logits."""
        return self._responses.answered

    @property
    def completed(self) -> int:
        """Samples completed, including empty ones."""
        return self._responses.completed

    @property
    def last_completion(self) -> float | None:
        """When the last sample was completed (``time.monotonic()``, s)."""
        return self._responses.last_completion

    # -- LoadGen callbacks (LoadGen's threads) -----------------------------------------
    def issue_queries(self, ids: list[int], indices: list[int]) -> None:
        """Enqueue and return at once: LoadGen's clock is running (ConstructFastSUT's form)."""
        issued = time.monotonic()
        if self.first_issue is None:
            self.first_issue = issued
        self._batcher.issue(ids, indices, issued)

    def flush_queries(self) -> None:
        """LoadGen will issue nothing more: release anything held after a stop."""
        self._batcher.flush()

    # -- stopping ----------------------------------------------------------------------
    @property
    def stopped(self) -> bool:
        return self.stop_reason is not None

    def stop(self, reason: str) -> None:
        """Stop sending samples to the backend (any thread; the first reason is kept).
        Calls still outstanding are completed empty now."""
        with self._lock:
            if self.stop_reason is None:
                self.stop_reason = reason
        for batch in self._dispatch.stop():
            self._responses.complete(batch.ids, None)
        self._batcher.wake()

    def _fail(self, exc: BaseException, trace: str) -> None:
        with self._lock:
            if self.error is None:
                self.error, self.error_traceback = exc, trace
        self.stop(f"the backend failed: {type(exc).__name__}: {exc}")

    # -- the batching thread -------------------------------------------------------------
    def _run(self) -> None:
        """Reserve a slot, form a batch, send it; after a stop, complete or hold instead."""
        dispatch, responses = self._dispatch, self._responses
        reserved = False
        while True:
            if not reserved:
                reserved = dispatch.reserve()  # waits for a free slot
            batch = self._batcher.next_batch()
            if batch is None:
                break
            if not len(batch):
                continue
            if self._deadline is not None and time.monotonic() > self._deadline:
                self.stop(f"the run passed its time limit of {self.settings.deadline_s:g} s")
            if self.stopped or not reserved:
                responses.stopped_samples(batch.ids)
                continue
            reserved = False
            if not dispatch.submit(batch):
                responses.stopped_samples(batch.ids)
        if reserved:
            dispatch.unreserve()

    # -- whichever thread finished a call ------------------------------------------------
    def _answered(self, batch: Batch, logits: Any, exc: BaseException | None,
                  trace: str) -> None:
        """A call's answer: complete its samples (empty, and fail the run, on an error)."""
        output = None
        if exc is None:
            try:
                output = self._responses.assemble(logits, batch.seq_len)
            except BaseException as bad:  # noqa: BLE001 - logits of the wrong shape...
                exc, trace = bad, traceback.format_exc()
        if exc is not None:
            self._fail(exc, trace)
        self._responses.complete(batch.ids, output)

    # -- watchdog ----------------------------------------------------------------------
    def _watch(self) -> None:
        """Give up on a backend call past its timeout; stop a run past its deadline."""
        limits = [v for v in (self.settings.call_timeout_s, self.settings.deadline_s) if v]
        period = min(0.25, *(v / 4 for v in limits))
        timeout = self.settings.call_timeout_s
        while not self._closing.wait(period):
            now = time.monotonic()
            if self._deadline is not None and now > self._deadline and not self.stopped:
                self.stop(f"the run passed its time limit of {self.settings.deadline_s:g} s")
            oldest = self._dispatch.oldest(now) if timeout is not None else None
            if oldest is None or oldest[0] <= timeout:
                continue
            self._fail(BackendCallTimeout(
                f"a backend call on {len(oldest[1])} samples did not return within "
                f"{timeout:g} s (raise --call-timeout if the backend is that slow)"), "")
            self._dispatch.replace_stuck()

    # -- lifecycle ---------------------------------------------------------------------
    def construct(self) -> Any:
        """Start the batching thread, the dispatch (and the watchdog) and create the LoadGen
        SUT handle."""
        import mlperf_loadgen as lg

        if self.settings.progress:
            from tqdm import tqdm

            self._responses.progress = tqdm(desc="samples", unit="sample", mininterval=1.0,
                                            total=self.settings.expected_samples, leave=False)
        if self.settings.deadline_s is not None:
            self._deadline = time.monotonic() + self.settings.deadline_s
        self._dispatch.open()
        self._worker = threading.Thread(target=self._run, name="sut-batching", daemon=True)
        self._worker.start()
        if self.settings.call_timeout_s is not None or self.settings.deadline_s is not None:
            self._watchdog = threading.Thread(target=self._watch, name="sut-watchdog",
                                              daemon=True)
            self._watchdog.start()
        self._handle = lg.ConstructFastSUT(self.issue_queries, self.flush_queries)
        return self._handle

    def destroy(self) -> None:
        """Let the batching thread send what is pending and end, wait for the calls
        outstanding (the watchdog keeps watching them meanwhile), then stop the watchdog
        and the call thread, and destroy the handle."""
        import mlperf_loadgen as lg

        if self._worker is not None:
            self._batcher.finish()
            self._worker.join()
            self._worker = None
        self._dispatch.wait_idle()
        self._closing.set()
        if self._watchdog is not None:
            self._watchdog.join()
            self._watchdog = None
        self._dispatch.close()
        if self._responses.progress is not None:
            self._responses.progress.close()
            self._responses.progress = None
        if self._handle is not None:
            lg.DestroyFastSUT(self._handle)
            self._handle = None

    def throughput(self) -> dict[str, float | None]:
        """Samples completed per second between the first issue and the last completion."""
        last = self.last_completion
        if self.first_issue is None or last is None:
            return {"sut_active_s": None, "sut_samples_per_s": None}
        active = max(last - self.first_issue, 1e-9)
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
