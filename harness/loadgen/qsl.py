"""The Query Sample Library: features addressed by LoadGen sample index.

LoadGen tells the QSL which samples to bring into memory before the timed phase
(``load_query_samples``) and when to drop them; the harness honours this by staging
int64 rows only for loaded samples and refusing to serve a sample that is not loaded.
A backend for a device with its own memory can do its staging here, untimed.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from backends.base import FeatureBatch
from common.errors import HarnessError
from squad.features import FeatureSet


class SampleNotLoadedError(HarnessError):
    """LoadGen issued a sample the QSL was not asked to load (a harness bug)."""


class QuerySampleLibrary:
    """Serves features by index; ``count`` total samples, ``performance_count`` loadable at once.

    Loading converts the features to contiguous int64 once and marks the samples as loaded;
    a batch is then one vectorised gather, whatever its size (the hot path of a fast
    device must not loop over samples in Python). ``lengths`` holds each sample's real
    token count, for variable-length execution.
    """

    def __init__(self, features: FeatureSet, performance_count: int | None = None,
                 stage: Callable[[FeatureBatch], None] | None = None) -> None:
        self.features = features
        self._stage = stage  # untimed staging (backends.device.TimedDevice.stage), if any
        self.count = len(features)
        self.performance_count = min(performance_count or self.count, self.count)
        self.lengths = np.asarray(features.input_mask, dtype=bool).sum(axis=1).astype(np.int64)
        self._loaded = np.zeros(self.count, dtype=bool)
        self._arrays: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self.loads = 0  # how many load calls LoadGen made (recorded, and tested)
        self._handle = None

    # -- LoadGen callbacks -------------------------------------------------------------
    def load_query_samples(self, indices: list[int]) -> None:
        """Stage the given samples (untimed by LoadGen)."""
        self.loads += 1
        if self._arrays is None:
            self._arrays = tuple(  # type: ignore[assignment]
                np.ascontiguousarray(a, dtype=np.int64)
                for a in (self.features.input_ids, self.features.input_mask,
                          self.features.segment_ids)
            )
        rows = np.asarray(indices, dtype=np.int64)
        self._loaded[rows] = True
        if self._stage is not None and len(rows):
            self._stage(self.batch(rows))

    def unload_query_samples(self, indices: list[int]) -> None:
        """Drop the given samples."""
        self._loaded[np.asarray(indices, dtype=np.int64)] = False
        if not self._loaded.any():
            self._arrays = None

    # -- used by the SUT ---------------------------------------------------------------
    @property
    def loaded_count(self) -> int:
        """Number of samples currently staged."""
        return int(self._loaded.sum())

    def batch(self, indices, seq_len: int | None = None) -> FeatureBatch:
        """Loaded samples as one int64 batch, truncated to ``seq_len`` tokens if given."""
        rows = np.asarray(indices, dtype=np.int64)
        loaded = self._loaded[rows]
        if not loaded.all():
            missing = int(rows[~loaded][0])
            raise SampleNotLoadedError(f"sample {missing} was issued but never loaded by LoadGen")
        assert self._arrays is not None
        columns = slice(None, seq_len)
        return FeatureBatch(*(a[rows, columns] for a in self._arrays))

    # -- LoadGen object ----------------------------------------------------------------
    def construct(self):
        """Create the LoadGen QSL handle (destroy it with :meth:`destroy`)."""
        import mlperf_loadgen as lg

        self._handle = lg.ConstructQSL(
            self.count,
            self.performance_count,
            self.load_query_samples,
            self.unload_query_samples,
        )
        return self._handle

    def destroy(self) -> None:
        """Destroy the LoadGen handle, if constructed."""
        if self._handle is not None:
            import mlperf_loadgen as lg

            lg.DestroyQSL(self._handle)
            self._handle = None
