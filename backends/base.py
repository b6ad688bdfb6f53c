"""The narrow contract every backend implements.

A backend knows nothing about LoadGen, scenarios or SQuAD files: it loads one model and
turns a batch of features into start/end logits. Everything else (batching, response
buffers, timing, results) lives once in :mod:`harness`. A device that answers
asynchronously or models its own timing also implements a protocol of
:mod:`backends.device`.
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import ValidationError
from pydantic.dataclasses import dataclass as pydantic_dataclass

from common.settings import (
    STRICT,
    Whole,
    all_declared,
    choice,
    declared_fields,
    did_you_mean,
    problem,
    setting,
)

DEVICES = ("cpu", "gpu", "auto")


class BackendError(RuntimeError):
    """A backend could not load or run a model; the message says what to do."""


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask), for a thread count of 0."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def cpu_times(stat_text: str) -> dict[int, tuple[int, int]]:
    """Per-CPU (idle, total) jiffies from the text of ``/proc/stat`` (idle includes iowait)."""
    times: dict[int, tuple[int, int]] = {}
    for line in stat_text.splitlines():
        match = re.match(r"cpu(\d+)\s+(.*)", line)
        if match:
            fields = [int(v) for v in match.group(2).split()]
            # user nice system idle iowait irq softirq steal (guest is inside user)
            times[int(match.group(1))] = (sum(fields[3:5]), sum(fields[:8]))
    return times


def idle_cores(interval_s: float = 0.3,
               read: Callable[[], str] = lambda: Path("/proc/stat").read_text()) -> int:
    """Cores of :func:`usable_cores` that other work leaves idle, measured over
    ``interval_s`` (a core counts when it was idle at least half the time): what a thread
    count of 0 uses. A thread on a core that another process keeps busy gets half of it, and
    every intra-op step then waits for that thread (ORT, 2 threads with one CPU-bound process
    beside them: 72 ms a sample against 45 ms on one thread). Without ``/proc/stat``, every
    usable core."""
    try:
        mine = os.sched_getaffinity(0)
        before = cpu_times(read())
        time.sleep(interval_s)
        after = cpu_times(read())
    except (AttributeError, OSError, ValueError):
        return usable_cores()
    idle = 0
    for cpu in mine:
        if cpu in before and cpu in after:
            spent = after[cpu][1] - before[cpu][1]
            idle += spent <= 0 or (after[cpu][0] - before[cpu][0]) / spent >= 0.5
    if not any(cpu in after for cpu in mine):
        return usable_cores()
    return max(1, idle)


def first_line(exc: BaseException) -> str:
    """Framework errors carry multi-line native context; the first line is the useful part."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@pydantic_dataclass(frozen=True, config=STRICT)
class BackendSettings:
    """Settings shared by all backends; each backend records what it actually used.

    ``options``: backend-specific extras, as given (``KEY=VALUE`` text from the command line,
    typed values from a sweep file); each backend checks them against its own ``Options``
    class when it is created.
    """

    intra_op_threads: Whole = setting(
        0, flag="--threads", sweep="axis", ge=0, le=1024, unit="threads",
        help="intra-op threads (0: the cores this process may use that other work leaves "
             "idle, measured as a run starts)")
    inter_op_threads: Whole = setting(
        0, flag="--inter-threads", sweep="axis", ge=0, le=1024, unit="threads",
        help="inter-op threads (0: the framework's default)")
    device: choice(DEVICES) = setting(  # type: ignore[valid-type]
        "auto", flag="--device", sweep="axis", choices=DEVICES,
        help="cpu, gpu, or auto (the GPU when the framework sees one)")
    options: dict[str, Any] = setting(
        flag="--backend-option", metavar="KEY=VALUE", repeat=True, sweep="base",
        default_factory=dict,
        help="a backend's own option (python -m harness list shows each backend's)")


def option_text(value: Any) -> str:
    """An option value as the command line writes it."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


@dataclasses.dataclass(frozen=True)
class FeatureBatch:
    """A batch of SQuAD features, each row padded to the same length ``S``.

    Arrays are ``[B, S]`` integers: ``input_ids`` (WordPiece ids), ``input_mask``
    (1 for real tokens) and ``segment_ids`` (0 question, 1 context).
    """

    input_ids: np.ndarray
    input_mask: np.ndarray
    segment_ids: np.ndarray

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(input_ids, input_mask, segment_ids)``, checked to share one ``[B, S]`` shape."""
        arrays = (self.input_ids, self.input_mask, self.segment_ids)
        shape = np.shape(self.input_ids)
        if len(shape) != 2 or any(np.shape(a) != shape for a in arrays):
            raise BackendError(
                "input_ids, input_mask and segment_ids must all be [B, S]; got shapes "
                + ", ".join(str(np.shape(a)) for a in arrays)
            )
        return arrays


class Backend(ABC):
    """Base class: subclasses set ``name`` and implement load/predict (and close if needed)."""

    name: ClassVar[str]
    # The backend's own options: a pydantic dataclass of fields made with
    # common.settings.setting (declared beside the backend). Any other option is refused
    # when the backend is created; the checked values are ``self.options``.
    Options: ClassVar[type | None] = None
    # Backends without an Options class (being migrated) list their options here:
    # name -> one line of help. Generated from Options where there is one.
    known_options: ClassVar[dict[str, str]] = {}
    # Option names starting with one of these are passed on (a wrapper's inner backend).
    option_prefixes: ClassVar[tuple[str, ...]] = ()
    # Whether intra_op_threads are threads computing on this machine's cores, so that a
    # thread count of 0 takes the cores other work leaves idle (harness.runner).
    threads_on_local_cores: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("Options") is not None:
            cls.known_options = {
                d.name: f"{d.info.help} (default {option_text(d.default)})"
                if d.default is not None else d.info.help
                for d in declared_fields(cls.Options)
            }

    def __init__(self, settings: BackendSettings | None = None) -> None:
        self.settings = settings or BackendSettings()
        own = {k: v for k, v in self.settings.options.items()
               if not k.startswith(self.option_prefixes or ("\0",))}
        unknown = sorted(set(own) - set(self.known_options))
        if unknown:
            known = ", ".join(f"{k} ({v})" for k, v in self.known_options.items()) or "none"
            hint = did_you_mean(unknown[0], list(self.known_options)) if len(unknown) == 1 \
                else ""
            raise BackendError(
                f"{self.name} backend: unknown option{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(unknown)}{hint}; known options: {known}"
            )
        self.options: Any = None
        if self.Options is not None:
            try:
                self.options = self.Options(**own)
            except ValidationError as exc:
                raise BackendError(f"{self.name} backend: " + problem(
                    exc, lambda name: f"option {name}", all_declared(self.Options), own)) from None

    @abstractmethod
    def version(self) -> str:
        """Version string of the framework that runs the model (e.g. ``"1.31.1"``)."""

    @abstractmethod
    def load(self, model_path: Path) -> None:
        """Load the model; raise :class:`BackendError` naming the file and the fix."""

    @abstractmethod
    def predict(self, batch: FeatureBatch) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(start_logits, end_logits)``, each float32 ``[B, S]``."""

    def fixed_sequence_length(self) -> int | None:
        """The sequence length the loaded model requires (MLPerf's TF ``model.pb``: 384), or
        None when it takes any length: the harness then runs each batch at its real length."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release the model; the backend may not be used afterwards."""

    def describe(self) -> dict[str, Any]:
        """What this backend resolved to (providers, threads, tensor names...), for results."""
        return {
            "backend": self.name,
            "version": self.version(),
            "settings": dataclasses.asdict(self.settings),
        }

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
