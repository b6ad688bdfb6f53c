"""The Query Sample Library: features addressed by LoadGen sample index.

LoadGen tells the QSL which samples to bring into memory before the timed phase
(``load_query_samples``) and when to drop them; the harness honours this by staging
int64 rows only for loaded samples and refusing to serve a sample that is not loaded.
A backend for a device with its own memory can do its staging here, untimed.
"""

from __future__ import annotations

import numpy as np

from backends.base import FeatureBatch
from harness.errors import HarnessError
from harness.squad.features import FeatureSet


class SampleNotLoadedError(HarnessError):
    """LoadGen issued a sample the QSL was not asked to load (a harness bug)."""


class QuerySampleLibrary:
    """Serves features by index; ``count`` total samples, ``performance_count`` loadable at once."""

    def __init__(self, features: FeatureSet, performance_count: int | None = None) -> None:
        self.features = features
        self.count = len(features)
        self.performance_count = min(performance_count or self.count, self.count)
        self._staged: dict[int, FeatureBatch] = {}  # one sample each, arrays [S]
        self.loads = 0  # how many load calls LoadGen made (recorded, and tested)
        self._handle = None

    # -- LoadGen callbacks -------------------------------------------------------------
    def load_query_samples(self, indices: list[int]) -> None:
        """Stage the given samples as contiguous int64 rows (untimed by LoadGen)."""
        self.loads += 1
        for index in indices:
            self._staged[index] = self.features.batch(index)

    def unload_query_samples(self, indices: list[int]) -> None:
        """Drop the given samples."""
        for index in indices:
            self._staged.pop(index, None)

    # -- used by the SUT ---------------------------------------------------------------
    @property
    def loaded_count(self) -> int:
        """Number of samples currently staged."""
        return len(self._staged)

    def batch(self, indices: list[int], seq_len: int | None = None) -> FeatureBatch:
        """Stack loaded samples into a batch, truncated to ``seq_len`` tokens if given."""
        try:
            rows = [self._staged[index] for index in indices]
        except KeyError as exc:
            raise SampleNotLoadedError(
                f"sample {exc.args[0]} was issued but never loaded by LoadGen"
            ) from None
        end = seq_len or rows[0].input_ids.shape[0]
        return FeatureBatch(
            input_ids=np.stack([r.input_ids[:end] for r in rows]),
            input_mask=np.stack([r.input_mask[:end] for r in rows]),
            segment_ids=np.stack([r.segment_ids[:end] for r in rows]),
        )

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
