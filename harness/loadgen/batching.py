"""Batching: LoadGen's queries in, batches for the backend out.

LoadGen's threads hand queries over through :meth:`Batcher.issue` and return at once; the
SUT's batching thread takes batches with :meth:`Batcher.next_batch`, waiting for them, and
a synchronous backend's call thread with :meth:`Batcher.take_ready` when one is ready as
its last call ends (the two never take at the same time: one holds the slot). The samples of a query
(Offline: all of them) are ordered by real length, so that a batch wastes little on
padding; a batch takes up to ``batch_size`` samples, and one that is not full may wait
``batch_wait_s`` (Server) for more queries, from when the batching thread started it.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections import deque
from collections.abc import Callable

import numpy as np

_STOP = object()  # the test is over: finish and end the batching thread
_FLUSH = object()  # LoadGen issues no more queries
_WAKE = object()  # look at the stop state now


@dataclasses.dataclass(frozen=True)
class Batch:
    """Samples for one backend call: LoadGen's response ``ids`` (uint64), the QSL's sample
    ``indices`` (int64), when LoadGen issued the earliest of them (``issued_s``,
    ``time.monotonic()`` seconds; None: unknown) and the token length the call runs at."""

    ids: np.ndarray
    indices: np.ndarray
    issued_s: float | None
    seq_len: int

    def __len__(self) -> int:
        return len(self.ids)


EMPTY = Batch(np.zeros(0, np.uint64), np.zeros(0, np.int64), None, 0)


class PendingSamples:
    """Samples taken from LoadGen's queries and not yet sent: chunks of (ids, indices)
    arrays with the time LoadGen issued them, taken from the front in one slice per chunk."""

    def __init__(self) -> None:
        self._chunks: deque[tuple[np.ndarray, np.ndarray, float | None]] = deque()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, ids: np.ndarray, indices: np.ndarray, issued: float | None = None) -> None:
        """Append a query's samples (``issued``: ``time.monotonic()`` seconds)."""
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
            return EMPTY.ids, EMPTY.indices, None
        return (np.concatenate([chunk[0] for chunk in taken]),
                np.concatenate([chunk[1] for chunk in taken]), taken[0][2])


class Batcher:
    """Forms batches from LoadGen's queries (see the module doc).

    ``lengths``: each QSL sample's real token count; ``full_len``: the features' padded
    length; ``fixed_len``: the length the backend's model requires (None: any);
    ``seq_bucket``: a batch runs at its longest sample rounded up to a multiple of this
    many tokens (None: always ``full_len``). ``stopped`` says whether the run has stopped
    (then a batch takes everything pending, for completing empty); ``on_flush`` is called
    on the batching thread when LoadGen flushes.
    """

    def __init__(self, lengths: np.ndarray, full_len: int, fixed_len: int | None, *,
                 batch_size: int, batch_wait_s: float, seq_bucket: int | None,
                 sort_by_length: bool, stopped: Callable[[], bool],
                 on_flush: Callable[[], None]) -> None:
        self._lengths = lengths
        self._full_len = full_len
        self._fixed_len = fixed_len
        self._batch_size = batch_size
        self._batch_wait_s = batch_wait_s
        self._seq_bucket = seq_bucket
        self._sort = sort_by_length
        self._stopped = stopped
        self._on_flush = on_flush
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._pending = PendingSamples()
        self._lock = threading.Lock()  # pending: the batching thread adds, both take

    # -- any thread ----------------------------------------------------------------------
    def issue(self, ids: list[int], indices: list[int], issued_s: float) -> None:
        """A query from LoadGen (``issued_s``: ``time.monotonic()`` seconds); returns at once."""
        self._queue.put((ids, indices, issued_s))

    def flush(self) -> None:
        """LoadGen will issue nothing more."""
        self._queue.put(_FLUSH)

    def wake(self) -> None:
        """Have the batching thread look at the stop state now."""
        self._queue.put(_WAKE)

    def finish(self) -> None:
        """The test is over: :meth:`next_batch` returns None once nothing is pending."""
        self._queue.put(_STOP)

    def take_ready(self) -> Batch | None:
        """The next batch if one is ready now, else None (a synchronous backend's call
        thread, holding the slot, takes its next batch itself): the queries issued since are
        taken in, then a full batch, or with no batch wait whatever is pending, is taken.
        None after a stop."""
        if self._stopped():
            return None
        while not self._queue.empty():  # cheaper than get_nowait's Empty, once a batch
            if not self._take(self._queue.get_nowait()):
                break
        with self._lock:
            count = len(self._pending)
            if count < self._batch_size and not (count and self._batch_wait_s == 0):
                return None
            ids, indices, issued = self._pending.take(self._batch_size)
        return Batch(ids, indices, issued, self.seq_len(indices))

    # -- the batching thread ---------------------------------------------------------------
    def next_batch(self) -> Batch | None:
        """Up to ``batch_size`` samples, blocking only while nothing is pending; None when the
        test is over; an empty batch when woken by a stop with nothing pending."""
        while (batch := self._gather()) is not None and not len(batch) \
                and not self._stopped():
            pass  # the call thread took what was pending: wait for more
        return batch

    def _gather(self) -> Batch | None:
        pending = self._pending
        while not pending:
            item = self._queue.get()
            if item is _STOP:
                return None
            self._take(item)
            if item is _WAKE and self._stopped() and not pending:
                return EMPTY
        wanted = self._batch_size
        # Gather whatever else has already arrived (Server: queries issued meanwhile), and
        # wait up to the batch budget for more.
        waits_until = (time.monotonic() + self._batch_wait_s) if self._batch_wait_s > 0 \
            else None
        while len(pending) < wanted and not self._stopped():
            timeout = None if waits_until is None else waits_until - time.monotonic()
            try:
                item = (self._queue.get_nowait() if timeout is None or timeout <= 0
                        else self._queue.get(timeout=timeout))
            except queue.Empty:
                break
            if not self._take(item):
                break
        with self._lock:
            ids, indices, issued = pending.take(len(pending) if self._stopped() else wanted)
        return Batch(ids, indices, issued, self.seq_len(indices) if len(ids) else 0)

    def _take(self, item: object) -> bool:
        """Handle one queue item; False when it says the test is over."""
        if item is _STOP:
            self._queue.put(_STOP)  # seen again by the blocking wait, once pending is done
            return False
        if item is _FLUSH:
            self._on_flush()
        elif item is not _WAKE:
            ids = np.asarray(item[0], np.uint64)  # type: ignore[index]
            indices = np.asarray(item[1], np.int64)  # type: ignore[index]
            if len(indices) > 1 and self._sort:
                order = np.argsort(self._lengths[indices], kind="stable")
                ids, indices = ids[order], indices[order]
            with self._lock:
                self._pending.add(ids, indices, item[2])  # type: ignore[index]
        return True

    def seq_len(self, indices: np.ndarray) -> int:
        """The token length a batch of these samples runs at: its longest sample, bucketed."""
        if self._fixed_len is not None:
            return self._fixed_len
        if self._seq_bucket is None:
            return self._full_len
        longest = int(self._lengths[indices].max())
        return min(self._full_len, -(-max(longest, 1) // self._seq_bucket) * self._seq_bucket)
