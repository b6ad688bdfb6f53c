"""A backend with no model: instant, deterministic logits. First class, for tests and ceilings.

Its logits point at the first context token (start) and the token after it (end), so the
whole pipeline (LoadGen, accuracy log, post-processing, EM/F1) produces real answer text.
Options (``BackendSettings.options``): ``delay_ms`` sleeps per batch to stand in for a
device; ``fail_after`` raises on the call after that many calls and ``hang_after`` never
returns from it, to test failure paths (the harness's five warm-up calls count).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from pydantic.dataclasses import dataclass as pydantic_dataclass

from backends.base import Backend, BackendError, FeatureBatch
from common.settings import STRICT, Number, Whole, setting


class NullBackendFailure(RuntimeError):
    """Raised on purpose by ``fail_after``."""


@pydantic_dataclass(frozen=True, config=STRICT)
class NullOptions:
    """``--backend-option``s of the null backend."""

    delay_ms: Number = setting(0.0, ge=0, le=3_600_000, unit="ms",
                               help="sleep this long per batch, standing in for a device")
    fail_after: Whole | None = setting(None, ge=0, le=10**12, unit="calls",
                                       help="raise on the call after this many calls "
                                       "(failure tests)")
    hang_after: Whole | None = setting(None, ge=0, le=10**12, unit="calls",
                                       help="never return from the call after this many "
                                       "calls (timeout tests)")
    exit_after: Whole | None = setting(None, ge=0, le=10**12, unit="calls",
                                       help="end the whole process at the call after this "
                                       "many calls: a worker that dies (Ray actor tests; never "
                                       "use it in the harness's own process)")


class NullBackend(Backend):
    name = "null"
    Options = NullOptions
    options: NullOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loaded = False

    def version(self) -> str:
        return "0"

    def load(self, model_path: Path | None = None) -> None:
        """Read the options; the model file, if any, is ignored."""
        options = self.options
        self._delay_s = options.delay_ms / 1000.0
        self._fail_after = options.fail_after
        self._hang_after = options.hang_after
        self._exit_after = options.exit_after
        self._calls = 0
        self._loaded = True

    def predict(self, batch: FeatureBatch) -> tuple[np.ndarray, np.ndarray]:
        if not self._loaded:
            raise BackendError("null backend: call load() before predict()")
        self._calls += 1
        if self._fail_after is not None and self._calls > int(self._fail_after):
            raise NullBackendFailure(f"null backend failing on purpose at batch {self._calls}")
        if self._exit_after is not None and self._calls > int(self._exit_after):
            os._exit(3)  # as a crash would: no cleanup, no exception
        if self._hang_after is not None and self._calls > int(self._hang_after):
            threading.Event().wait()  # never returns: the harness must give up on the call
        if self._delay_s:
            time.sleep(self._delay_s)
        context = batch.segment_ids.astype(bool) & batch.input_mask.astype(bool)
        first = np.argmax(context, axis=1)
        rows = np.arange(len(batch))
        start = np.zeros(batch.input_ids.shape, np.float32)
        end = np.zeros(batch.input_ids.shape, np.float32)
        start[rows, first] = 10.0
        end[rows, np.minimum(first + 1, batch.input_ids.shape[1] - 1)] = 10.0
        return start, end

    def close(self) -> None:
        self._loaded = False
