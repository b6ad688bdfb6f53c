"""Wafer specs as data: preset files (``specs/wse1.toml`` ...), every field with its provenance.

A spec is a flat set of numbers, each saying what kind of figure it is -- ``published``
(Cerebras), ``third-party`` (Hot Chips talks, the SDK, ALCF guides), ``derived`` (computed or
assumed here, with the reasoning) -- and where it comes from. Any field can be overridden
(``spec.clock_ghz=0.55`` as a backend option, ``--set clock_ghz=0.55`` when planning); an
override is recorded as kind ``override`` with the value it replaced.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from backends.base import BackendError

SPEC_DIR = Path(__file__).resolve().parent / "specs"
PRESETS = ("wse1", "wse2", "wse3")
DEFAULT_SPEC = "wse2"
KINDS = ("published", "third-party", "derived", "override")

# field -> (unit, meaning); the order is the order of describe() and of the docs
FIELDS: dict[str, tuple[str, str]] = {
    "grid_x": ("cores", "usable core grid, columns (the direction samples cross the wafer)"),
    "grid_y": ("cores", "usable core grid, rows (links across a region boundary)"),
    "clock_ghz": ("GHz", "core clock"),
    "flop_per_cycle_fp16": ("FLOP/cycle", "16-bit FLOP per core per cycle (an FMA is 2)"),
    "flop_per_cycle_fp32": ("FLOP/cycle", "32-bit FLOP per core per cycle"),
    "sram_kb_per_core": ("KiB", "SRAM per core"),
    "sram_usable_fraction": ("", "share of SRAM that may hold weights and activations"),
    "fabric_link_bits": ("bit/cycle", "fabric link width (one wavelet per link per cycle)"),
    "hop_latency_cycles": ("cycles", "latency of one fabric hop"),
    "host_io_gbps": ("Gbit/s", "host I/O bandwidth of one system"),
    "host_transfer_overhead_us": ("us", "fixed cost of one host transfer, each way"),
    "stream_bandwidth_gbs": ("GB/s", "weight-streaming bandwidth (MemoryX to wafer)"),
    "compute_efficiency": ("", "achieved share of peak FLOP/s (calibrated)"),
    "systems": ("", "systems, data parallel"),
    "pipeline_param_limit": ("parameters", "largest model run layer-pipelined"),
    "min_params_per_core": ("parameters", "smallest share of a layer's weights on one core: "
                            "a finer split is not made, so small models are replicated"),
}
INTEGER_FIELDS = frozenset({"grid_x", "grid_y", "systems"})


@dataclasses.dataclass(frozen=True)
class Figure:
    """One number of a spec and where it comes from."""

    value: float
    kind: str
    source: str

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "kind": self.kind, "source": self.source}


@dataclasses.dataclass(frozen=True)
class WaferSpec:
    """A wafer-scale system: every field of :data:`FIELDS`, each a :class:`Figure`."""

    name: str
    title: str
    figures: Mapping[str, Figure]
    path: str = ""

    def __getattr__(self, field: str) -> Any:
        figures = self.__dict__.get("figures", {})
        if field in figures:
            value = figures[field].value
            return int(value) if field in INTEGER_FIELDS else float(value)
        raise AttributeError(field)

    # -- derived quantities ------------------------------------------------------------
    @property
    def cores(self) -> int:
        """Usable cores of one system."""
        return self.grid_x * self.grid_y

    def flop_per_cycle(self, precision: str) -> float:
        if precision not in PRECISIONS:
            raise BackendError(f"unknown precision {precision!r}; choose one of "
                               f"{', '.join(PRECISIONS)}")
        return getattr(self, f"flop_per_cycle_{precision}")

    def core_flops(self, precision: str) -> float:
        """Achieved FLOP/s of one core (peak x compute efficiency)."""
        return self.flop_per_cycle(precision) * self.clock_ghz * 1e9 * self.compute_efficiency

    def peak_flops(self, precision: str) -> float:
        """Peak FLOP/s of one system's usable cores."""
        return self.flop_per_cycle(precision) * self.clock_ghz * 1e9 * self.cores

    @property
    def sram_bytes_per_core(self) -> float:
        """Bytes of one core's SRAM that may hold weights and activations."""
        return self.sram_kb_per_core * 1024 * self.sram_usable_fraction

    @property
    def host_io_bytes_per_s(self) -> float:
        return self.host_io_gbps * 1e9 / 8

    @property
    def stream_bytes_per_s(self) -> float:
        return self.stream_bandwidth_gbs * 1e9

    @property
    def fabric_bytes_per_s(self) -> float:
        """Bandwidth across a boundary between two regions that span the grid's height."""
        return self.grid_y * self.fabric_link_bits / 8 * self.clock_ghz * 1e9

    @property
    def hop_s(self) -> float:
        return self.hop_latency_cycles / (self.clock_ghz * 1e9)

    def with_overrides(self, overrides: Mapping[str, Any]) -> WaferSpec:
        """A copy with some fields replaced, each recorded as kind ``override``."""
        figures = dict(self.figures)
        for field, raw in overrides.items():
            if field not in FIELDS:
                raise BackendError(f"unknown wafer spec field {field!r}; fields: "
                                   f"{', '.join(FIELDS)}")
            value = _number(field, raw, f"override of {field}")
            old = figures[field]
            figures[field] = Figure(value, "override", f"set on the command line (the "
                                    f"{self.name} figure is {_fmt(old.value)}, {old.kind}: "
                                    f"{old.source})")
        return dataclasses.replace(self, figures=figures)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "title": self.title, "file": self.path,
            "cores": self.cores,
            "peak_pflops_fp16": round(self.peak_flops("fp16") / 1e15, 3),
            "fields": {
                field: {**self.figures[field].to_json(), "unit": FIELDS[field][0]}
                for field in FIELDS
            },
        }

    def table(self) -> list[str]:
        """The spec as text lines: field, value, unit, kind, source."""
        lines = [f"{self.name}: {self.title} ({self.cores:,} cores, "
                 f"{self.peak_flops('fp16') / 1e15:.2f} PFLOP/s fp16 peak)"]
        for field, (unit, _) in FIELDS.items():
            figure = self.figures[field]
            lines.append(f"  {field:26s} {_fmt(figure.value):>12s} {unit:11s} "
                         f"{figure.kind:12s} {figure.source}")
        return lines


PRECISIONS = ("fp16", "fp32")
BYTES_PER_VALUE = {"fp16": 2, "fp32": 4}


def load_spec(name_or_path: str | Path = DEFAULT_SPEC,
              overrides: Mapping[str, Any] | None = None) -> WaferSpec:
    """A preset by name (``wse1``, ``wse2``, ``wse3``) or a TOML file, with overrides."""
    text = str(name_or_path)
    path = SPEC_DIR / f"{text}.toml" if text in PRESETS else Path(text)
    if not path.is_file():
        raise BackendError(f"wafer spec {text!r}: no such preset ({', '.join(PRESETS)}) "
                           "or file")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise BackendError(f"{path}: not a readable TOML wafer spec: {exc}") from None
    spec = parse_spec(data, str(path))
    return spec.with_overrides(overrides) if overrides else spec


def parse_spec(data: Mapping[str, Any], where: str = "spec") -> WaferSpec:
    """Check a spec read from TOML: every field, with a value, a known kind and a source."""
    figures: dict[str, Figure] = {}
    missing = [field for field in FIELDS if field not in data]
    if missing:
        raise BackendError(f"{where}: missing field{'s' if len(missing) > 1 else ''} "
                           f"{', '.join(missing)}")
    unknown = sorted(k for k, v in data.items() if isinstance(v, dict) and k not in FIELDS)
    if unknown:
        raise BackendError(f"{where}: unknown field{'s' if len(unknown) > 1 else ''} "
                           f"{', '.join(unknown)}; fields: {', '.join(FIELDS)}")
    for field in FIELDS:
        entry = data[field]
        if not isinstance(entry, dict) or not {"value", "kind", "source"} <= set(entry):
            raise BackendError(f"{where}: field {field} needs value, kind and source")
        if entry["kind"] not in KINDS[:3]:
            raise BackendError(f"{where}: field {field} has kind {entry['kind']!r}; "
                               f"one of {', '.join(KINDS[:3])}")
        figures[field] = Figure(_number(field, entry["value"], f"{where}: {field}"),
                                entry["kind"], str(entry["source"]))
    return WaferSpec(str(data.get("name", Path(where).stem)), str(data.get("title", "")),
                     figures, where)


def _number(field: str, raw: Any, where: str) -> float:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise BackendError(f"{where}: expected a number, got {raw!r}") from None
    if not math.isfinite(value) or value < 0:
        raise BackendError(f"{where}: expected a finite number >= 0, got {raw!r}")
    positive = field not in ("hop_latency_cycles", "host_transfer_overhead_us")
    if positive and value == 0:
        raise BackendError(f"{where}: must be positive, got {raw!r}")
    if field in INTEGER_FIELDS and value != int(value):
        raise BackendError(f"{where}: must be a whole number, got {raw!r}")
    if field in ("sram_usable_fraction", "compute_efficiency") and value > 1:
        raise BackendError(f"{where}: a fraction must be at most 1, got {raw!r}")
    return value


def _fmt(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}" if abs(value) >= 10000 else str(int(value))
    return f"{value:.6g}"
