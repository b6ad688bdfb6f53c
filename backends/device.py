"""Optional protocols for a device that is more than a function from features to logits.

:class:`backends.base.Backend` is the whole contract of most backends: load, predict,
close, describe. A backend that also answers asynchronously, or models its own timing,
says so by implementing one of these protocols; the harness checks with ``isinstance``
and otherwise calls :meth:`~backends.base.Backend.predict` on a thread of its own.
Nothing here knows about LoadGen or scenarios: the harness decides where a device's
preferences apply.
"""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path
from typing import Protocol, runtime_checkable

from backends.base import FeatureBatch


@runtime_checkable
class AsyncDevice(Protocol):
    """A device that takes several calls at once and answers each later, from any thread
    (a pool of remote workers, a queue of sessions, a simulated accelerator)."""

    def predict_async(self, batch: FeatureBatch) -> Future:
        """Start a prediction and return at once; the future gives ``(start_logits,
        end_logits)`` as ``predict`` does, or the call's error."""
        ...

    def max_in_flight(self) -> int:
        """How many :meth:`predict_async` calls may be outstanding at once (at least 1; 1:
        the harness treats the device as synchronous and calls ``predict``)."""
        ...


@runtime_checkable
class TimedDevice(AsyncDevice, Protocol):
    """A device that models its own timing (the wafer simulator): it releases each answer
    at the time its model says, so it needs to know when a batch arrived, wants its samples
    before the timed phase, and can say what LoadGen should expect of it."""

    def predict_async(self, batch: FeatureBatch, arrival_s: float | None = None) -> Future:
        """As :meth:`AsyncDevice.predict_async`; ``arrival_s``: when the batch reached the
        system (``time.monotonic()`` seconds; LoadGen's issue of its earliest sample), so
        that the harness's own hop to the device is inside the modelled latency. None:
        now."""
        ...

    def stage(self, batch: FeatureBatch) -> None:
        """Samples LoadGen is loading, before its timed phase (untimed): the device prepares
        them (e.g. computes their answers ahead). The rows are the full padded features."""
        ...

    def expected_performance(self, model_path: Path | None) -> dict[str, float] | None:
        """What the device will do with ``model_path``, asked before ``load``:
        ``{"samples_per_s": ..., "latency_s": ...}``, from which the harness sizes
        LoadGen's test; None: the user.conf says."""
        ...

    def preferred_batch_size(self) -> int | None:
        """Samples per call at which the device reaches its throughput, for the scenarios
        the harness batches for throughput when the user names no batch size; None: the
        harness's own default."""
        ...
