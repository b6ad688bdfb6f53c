"""Response handling: logits into LoadGen's response buffers, and samples completed.

Each sample's response is one ``[full_len, 2]`` float32 row (start, end), the layout of the
reference's response buffers; positions past the length its batch ran at hold
:data:`PAD_LOGIT`. A buffer is a slice of one numpy array per batch that stays referenced
until ``QuerySamplesComplete`` has returned (LoadGen copies the bytes for its accuracy log).
After a stop, samples are completed empty, or held until LoadGen's flush (Server,
``hold_on_stop``: see :mod:`harness.loadgen.sut`).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

PAD_LOGIT = -10000.0  # logits past a sample's batch length: as the reference pads short logits


class Responder:
    """Completes samples with LoadGen; counts them (``completed``) and the calls answered
    with logits (``answered``), and records when the last sample was completed
    (``last_completion``, ``time.monotonic()`` seconds). Any thread."""

    def __init__(self, full_len: int, hold_on_stop: bool, progress: Any = None) -> None:
        self._full_len = full_len
        self._hold_on_stop = hold_on_stop
        self.progress = progress  # a tqdm bar, or None
        self._lock = threading.Lock()
        self._held: list[np.ndarray] = []
        self._flushed = False
        self.completed = 0  # samples completed, including empty ones
        self.answered = 0  # calls whose logits were completed
        self.last_completion: float | None = None

    def assemble(self, logits: tuple[np.ndarray, np.ndarray], seq_len: int) -> np.ndarray:
        """``[B, full_len, 2]`` float32 logits from a call's ``(start, end)`` ``[B, seq_len]``,
        with positions past ``seq_len`` at PAD_LOGIT (never picked as an answer)."""
        start, end = logits
        if seq_len == self._full_len:
            return np.ascontiguousarray(np.stack([start, end], axis=-1), np.float32)
        output = np.full((len(start), self._full_len, 2), PAD_LOGIT, np.float32)
        output[:, :seq_len, 0] = start
        output[:, :seq_len, 1] = end
        return output

    def complete(self, ids: np.ndarray, output: np.ndarray | None) -> None:
        """Complete ``ids`` with their rows of ``output`` (one call's logits; None: empty
        responses)."""
        import mlperf_loadgen as lg

        count, answered = len(ids), output is not None
        if output is not None:
            row = output[0].nbytes
            pointers = (output.ctypes.data + row * np.arange(count, dtype=np.uint64)).tolist()
            sizes = [row] * count
        else:
            pointers = sizes = [0] * count
        lg.QuerySamplesComplete(list(map(lg.QuerySampleResponse, ids.tolist(), pointers, sizes)))
        del output  # only now may the buffers go
        with self._lock:
            self.last_completion = time.monotonic()
            self.completed += count
            self.answered += answered
        if self.progress is not None:
            self.progress.update(count)

    def stopped_samples(self, ids: np.ndarray) -> None:
        """After a stop: hold the samples (``hold_on_stop``, until the flush) or complete them
        empty."""
        with self._lock:
            if self._hold_on_stop and not self._flushed:
                self._held.append(ids)
                return
        self.complete(ids, None)

    def flush(self) -> None:
        """LoadGen issues no more queries: complete everything held, empty."""
        with self._lock:
            self._flushed = True
            held, self._held = self._held, []
        if held:
            self.complete(np.concatenate(held), None)
