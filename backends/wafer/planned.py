"""What a plan is: its options, its per stage rows and the planned machine with what the
discrete-event device asks of it; the modes, bands and releases an option may name.

The data every planning step shares, below them all: :mod:`backends.wafer.plan` fills a
:class:`Plan` (with :mod:`backends.wafer.layout` and :mod:`backends.wafer.release`),
:mod:`backends.wafer.report` prints one, :mod:`backends.wafer.device` runs one.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from backends.base import BackendError
from backends.wafer.shapes import Architecture, layer_costs
from backends.wafer.spec import (
    BYTES_PER_VALUE,
    PRECISIONS,
    WHOLE_OPTIONS,
    WaferSpec,
    check_value,
)

MODES = ("auto", "pipelined", "streaming")
BANDS = ("low", "expected", "high")
RELEASES = ("auto", "1.6", "1.9")


@dataclasses.dataclass(frozen=True)
class StagePlan:
    """One row of a plan. Pipelined: ``cores`` of one replica; streaming: the layer's share
    of the batch time (the whole wafer runs each layer). ``time_s``: per sample (pipelined)
    or per batch (streaming), at the padded length."""

    name: str
    flops: float
    params: float
    cores: float
    time_s: float
    sram_per_core: float  # bytes of SRAM this stage occupies on each of its cores
    limit: str  # what sets its time: compute, fabric, stream, memory


@dataclasses.dataclass(frozen=True)
class PlanOptions:
    """How a model is planned. ``seq``: the padded token count (default: the model's);
    ``lengths``: real token counts of the samples, used when ``skip_padding``."""

    mode: str = "auto"
    precision: str = "fp16"
    seq: int | None = None
    skip_padding: bool = False
    lengths: tuple[int, ...] | None = None
    stream_batch: int | None = None
    training: bool = False
    release: str = "auto"
    band: str = "expected"  # which end of the band this plan is (low, expected, high)
    low_latency: bool = False  # pipelined: one replica on the whole wafer
    wafers: int = 1  # pipelined: one pipeline across this many systems (weights resident)

    def __post_init__(self) -> None:
        if self.release not in RELEASES:
            raise BackendError(f"unknown modelzoo release {self.release!r}; choose one of "
                               f"{', '.join(RELEASES)}")
        if self.band not in BANDS:
            raise BackendError(f"unknown band {self.band!r}; choose one of {', '.join(BANDS)}")
        if self.mode not in MODES:
            raise BackendError(f"unknown wafer mode {self.mode!r}; choose one of "
                               f"{', '.join(MODES)}")
        if self.precision not in PRECISIONS:
            raise BackendError(f"unknown precision {self.precision!r}; choose one of "
                               f"{', '.join(PRECISIONS)}")
        for name in ("seq", "stream_batch", "wafers"):
            if getattr(self, name) is not None:
                check_value(name, getattr(self, name), WHOLE_OPTIONS[name], "wafer plan")


@dataclasses.dataclass
class Plan:
    """A modelled machine for one model: the mode and why, per stage rows, throughput,
    latency, and what the discrete-event device needs (:meth:`stage_times`, ...)."""

    arch: Architecture
    spec: WaferSpec
    options: PlanOptions
    mode: str = ""
    reason: str = ""
    fits_pipelined: bool = False
    fit_note: str = ""
    stages: list[StagePlan] = dataclasses.field(default_factory=list)
    replicas: int = 1  # per system (pipelined); 1 when streaming
    throughput: float = 0.0  # samples/s
    latency_s: float = 0.0  # one sample alone (the median over lengths with skip_padding)
    latency_p90_s: float = 0.0
    bound: str = ""
    stream_batch: int = 1
    io_s: float = 0.0  # host I/O stage per sample (each replica's share when pipelined)
    delay_s: float = 0.0  # pure delays: transfer overhead each way and fabric hops
    # pipelined: latency if rows stream between stages (a lower bound; latency_s, where each
    # sample finishes a stage before entering the next, is the upper bound); streaming: a
    # sample's latency in a full batch of stream_batch (latency_s: a sample alone)
    latency_alt_s: float = 0.0
    low_latency_s: float = 0.0  # pipelined: one replica on the whole wafer, a sample alone
    band: dict = dataclasses.field(default_factory=dict)  # low/expected/high: samples/s
    seq: int = 0
    # per token count 1..seq (row 0 unused; NaN until needed): FLOPs and activations out
    # per stage, host I/O bytes per sample
    _flops: np.ndarray = dataclasses.field(repr=False, default=None)
    _out_bytes: np.ndarray = dataclasses.field(repr=False, default=None)
    _io_bytes: np.ndarray = dataclasses.field(repr=False, default=None)
    _stream_s: np.ndarray = dataclasses.field(repr=False, default=None)
    _cores: np.ndarray = dataclasses.field(repr=False, default=None)

    # -- what the device model uses ------------------------------------------------------
    @property
    def core_flops(self) -> float:
        """Achieved FLOP/s of one core in this plan's mode, at this plan's end of the band."""
        return self.spec.core_flops(self.options.precision, self.mode) * \
            band_factor(self.spec, self.options.band)

    @property
    def wafer_flops(self) -> float:
        return self.core_flops * self.spec.cores

    def _tokens(self, seq: int | np.ndarray) -> np.ndarray:
        tokens = np.clip(np.asarray(seq, np.int64), 1, self.seq)
        rows = np.unique(tokens)
        missing = rows[np.isnan(self._flops[rows, 0])] if self._flops.shape[1] else []
        for t in missing:
            self._fill(int(t))
        return tokens

    def _fill(self, tokens: int) -> None:
        at = layer_costs(self.arch, tokens, BYTES_PER_VALUE[self.options.precision])
        factor = self.spec.training_flop_factor if self.options.training else 1.0
        self._flops[tokens] = [c.flops * factor for c in at]
        self._out_bytes[tokens] = [c.out_bytes for c in at]
        self._io_bytes[tokens] = sum(self.arch.io_bytes(tokens))

    def prepare(self, lengths=None) -> None:
        """Compute the per-length tables now (all lengths by default), not on first use."""
        self._tokens(np.arange(1, self.seq + 1) if lengths is None else lengths)

    def stage_times(self, seq: int | np.ndarray | None = None) -> np.ndarray:
        """Pipelined: per sample time of [host I/O, stage 1, ..., stage n] at ``seq``
        tokens (an array of lengths gives one row per sample)."""
        tokens = self._tokens(self.seq if seq is None else seq)
        compute = self._flops[tokens] / (self._cores * self.core_flops)
        fabric = self._out_bytes[tokens] / self.spec.fabric_bytes_per_s
        io = self._io_bytes[tokens] * self.replicas / self.spec.host_io_bytes_per_s
        return np.concatenate([np.asarray(io)[..., None], np.maximum(compute, fabric)],
                              axis=-1)

    def io_time(self, seq: int | np.ndarray | None = None) -> np.ndarray:
        """Streaming: host I/O time of one sample on the systems' links."""
        tokens = self._tokens(self.seq if seq is None else seq)
        return self._io_bytes[tokens] / (self.spec.host_io_bytes_per_s * self.spec.systems)

    def batch_time(self, seqs) -> float:
        """Streaming: time of one batch of samples of these token counts on one system."""
        flops = self._flops[self._tokens(np.atleast_1d(seqs))].sum(axis=0)
        return float(np.maximum(self._stream_s, flops / self.wafer_flops).sum())

    # -- reporting -------------------------------------------------------------------------
    @property
    def weight_bytes(self) -> float:
        """Bytes of the model's weights at the plan's precision (sent once at start-up)."""
        return self.arch.param_count() * BYTES_PER_VALUE[self.options.precision]

    def joules_per_sample(self, samples_per_s: float | None = None) -> float:
        """Energy per sample (J) from the systems' published power at ``samples_per_s``
        (default: the plan's throughput)."""
        rate = self.throughput if samples_per_s is None else samples_per_s
        return self.spec.system_power_kw * 1e3 * self.spec.systems / rate

    def summary(self) -> dict[str, Any]:
        factor = self.spec.training_flop_factor if self.options.training else 1.0
        return {
            "modelled": True, "spec": self.spec.name, "release": self.options.release,
            "mode": self.mode, "reason": self.reason,
            "fits_pipelined": self.fits_pipelined, "fit": self.fit_note,
            "samples_per_s": self.throughput, "band_samples_per_s": dict(self.band),
            "joules_per_sample": self.joules_per_sample(),
            "latency_ms": self.latency_s * 1e3, "latency_p90_ms": self.latency_p90_s * 1e3,
            "latency_meaning": LATENCY_MEANING[self.mode],
            ("latency_rows_streamed_ms" if self.mode == "pipelined" else
             "latency_in_full_batch_ms"): self.latency_alt_s * 1e3,
            "low_latency_ms": self.low_latency_s * 1e3 if self.low_latency_s else None,
            "bound": self.bound, "efficiency": self.spec.efficiency(self.mode),
            "replicas_per_system": self.replicas, "systems": self.spec.systems,
            "stream_batch": self.stream_batch if self.mode == "streaming" else None,
            "precision": self.options.precision, "tokens": self.seq,
            "skip_padding": self.options.skip_padding, "training": self.options.training,
            "forward_gflop_per_sample": sum(s.flops for s in self.stages) / 1e9 / factor,
            "startup_s": self.spec.startup_s(self.weight_bytes),
            "startup_uncached_s": self.spec.startup_s(self.weight_bytes, cached=False)["total"],
        }

    def to_json(self) -> dict[str, Any]:
        return {**self.summary(), "stages": [
            {"name": s.name, "cores": s.cores, "time_us": s.time_s * 1e6,
             "sram_kb_per_core": s.sram_per_core / 1024, "gflop": s.flops / 1e9,
             "params": s.params, "limit": s.limit} for s in self.stages]}


LATENCY_MEANING = {
    "pipelined": "upper bound: each sample finishes a stage before entering the next "
                 "(latency_rows_streamed_ms: rows stream between stages, a lower bound)",
    "streaming": "a sample alone (batch 1); latency_in_full_batch_ms: one of a full batch",
}


def band_factor(spec: WaferSpec, band: str) -> float:
    """The compute rate's multiplier at one end of the spec's band (1 when expected)."""
    return {"low": spec.band_low, "high": spec.band_high}.get(band, 1.0)
