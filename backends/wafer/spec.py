"""Wafer specs as data: preset files (``specs/wse1.toml`` ...), every field with its provenance.

A spec is a flat set of numbers, each saying what kind of figure it is -- ``published``
(Cerebras), ``third-party`` (Hot Chips talks, the SDK, ALCF guides), ``derived`` (computed or
assumed here, with the reasoning) -- and where it comes from. Any field can be overridden
(``spec.clock_ghz=0.55`` as a backend option, ``--set clock_ghz=0.55`` when planning); an
override is recorded as kind ``override`` with the value it replaced.

Every field is declared once in :data:`FIELDS` (unit, allowed range, whole or not, meaning);
:func:`check_value` is the one checker for spec files, overrides and the backend's options,
so ``nan``, ``inf``, ``-1``, ``0``, ``1e300`` or a word is refused with one line naming the
field, the value and the range.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from backends.base import BackendError
from common.settings import did_you_mean

SPEC_DIR = Path(__file__).resolve().parent / "specs"
PRESETS = ("wse1", "wse2", "wse3")
DEFAULT_SPEC = "wse2"
KINDS = ("published", "third-party", "derived", "override")


@dataclasses.dataclass(frozen=True)
class Field:
    """One declared number: unit, allowed range (``low`` excluded when ``above``), whole or
    not, and what it means."""

    unit: str
    low: float
    high: float
    help: str
    above: bool = True  # True: value > low; False: value >= low
    whole: bool = False

    def range_text(self) -> str:
        low = f"> {_fmt(self.low)}" if self.above else f">= {_fmt(self.low)}"
        kind = "a whole number" if self.whole else "a number"
        unit = f" {self.unit}" if self.unit else ""
        return f"{kind} {low} and <= {_fmt(self.high)}{unit}"


def check_value(name: str, raw: Any, field: Field, where: str = "") -> float:
    """``raw`` as a float inside ``field``'s range, or a BackendError naming ``name``, the
    value and the range (one line)."""
    prefix = f"{where}: " if where else ""
    problem = f"{prefix}{name} = {raw!r}: expected {field.range_text()}"
    if isinstance(raw, bool):
        raise BackendError(problem)
    try:
        value = float(raw)
    except (TypeError, ValueError, OverflowError):
        raise BackendError(problem) from None
    if not math.isfinite(value) or value > field.high or value < field.low or \
            (field.above and value == field.low):
        raise BackendError(problem)
    if field.whole and value != int(value):
        raise BackendError(problem)
    return value


def _f(unit: str, low: float, high: float, help: str, *, above: bool = True,
       whole: bool = False) -> Field:
    return Field(unit, low, high, help, above, whole)


# field -> declaration; the order is the order of describe(), the spec table and the docs
FIELDS: dict[str, Field] = {
    "grid_x": _f("cores", 0, 100_000, "usable core grid, columns (the direction samples "
                 "cross the wafer)", whole=True),
    "grid_y": _f("cores", 0, 100_000, "usable core grid, rows (links across a region "
                 "boundary)", whole=True),
    "clock_ghz": _f("GHz", 0, 10, "core clock"),
    "flop_per_cycle_fp16": _f("FLOP/cycle", 0, 1024, "16-bit FLOP per core per cycle (an FMA "
                              "is 2)"),
    "flop_per_cycle_fp32": _f("FLOP/cycle", 0, 1024, "32-bit FLOP per core per cycle"),
    "sram_kb_per_core": _f("KiB", 0, 1e6, "SRAM per core"),
    "sram_usable_fraction": _f("", 0, 1, "share of SRAM that may hold weights and "
                               "activations"),
    "fabric_link_bits": _f("bit/cycle", 0, 4096, "fabric link width (one wavelet per link "
                           "per cycle)"),
    "hop_latency_cycles": _f("cycles", 0, 1e6, "latency of one fabric hop", above=False),
    "host_io_gbps": _f("Gbit/s", 0, 1e7, "host I/O bandwidth of one system (line rate)"),
    "host_transfer_overhead_us": _f("us", 0, 1e7, "fixed cost of one host transfer, each way",
                                    above=False),
    "host_workers": _f("workers", 0, 10_000, "host input workers feeding one system",
                       whole=True),
    "worker_samples_per_s": _f("samples/s", 0, 1e12, "samples one host input worker "
                               "prepares per second"),
    "stream_bandwidth_gbs": _f("GB/s", 0, 1e7, "weight-streaming bandwidth (MemoryX to "
                               "wafer), per system"),
    "pipelined_efficiency": _f("", 0, 1, "achieved share of peak FLOP/s, layer pipelined "
                               "(calibrated)"),
    "streaming_efficiency": _f("", 0, 1, "achieved share of peak FLOP/s, weight streaming "
                               "(calibrated)"),
    "band_low": _f("", 0, 1, "low end of the band: the compute rate's multiplier"),
    "band_high": _f("", 1, 100, "high end of the band: the compute rate's multiplier",
                    above=False),
    "training_flop_factor": _f("", 1, 100, "training FLOPs per forward FLOP (backward pass)",
                               above=False),
    "systems": _f("systems", 0, 192, "systems, data parallel (weight streaming only)",
                  whole=True),
    "pipeline_param_limit": _f("parameters", 0, 1e15, "largest model run layer-pipelined"),
    "min_params_per_core": _f("parameters", 0, 1e9, "smallest share of a layer's weights on "
                              "one core: a finer split is not made, so small models are "
                              "replicated"),
    "system_power_kw": _f("kW", 0, 1e4, "power of one system"),
    "job_start_s": _f("s", 0, 1e6, "job start to device programming (cached compile)",
                      above=False),
    "compile_s": _f("s", 0, 1e6, "compiling a model not in the compile cache", above=False),
    "device_programming_s": _f("s", 0, 1e6, "programming the wafer", above=False),
    "weight_load_gbs": _f("GB/s", 0, 1e7, "rate at which the initial weights are sent"),
}
INTEGER_FIELDS = frozenset(name for name, field in FIELDS.items() if field.whole)
# the whole-number options of a plan and of the wafer backend, declared the same way
WHOLE_OPTIONS = {
    "seq": _f("tokens", 1, 32_768, "padded token count timed", above=False, whole=True),
    "stream_batch": _f("samples", 1, 1_000_000, "most samples per weight-streaming batch",
                       above=False, whole=True),
    "in_flight": _f("calls", 1, 1_000_000, "calls outstanding at once", above=False,
                    whole=True),
    "numerics_batch": _f("rows", 1, 65_536, "rows per numerics call while staging",
                         above=False, whole=True),
    "wafers": _f("systems", 1, 192, "one pipeline across this many systems", above=False,
                 whole=True),
}


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

    def efficiency(self, mode: str) -> float:
        """Achieved share of peak: ``pipelined_efficiency`` or ``streaming_efficiency``."""
        return self.streaming_efficiency if mode == "streaming" else self.pipelined_efficiency

    def core_flops(self, precision: str, mode: str = "pipelined") -> float:
        """Achieved FLOP/s of one core in ``mode`` (peak x that mode's efficiency)."""
        return self.flop_per_cycle(precision) * self.clock_ghz * 1e9 * self.efficiency(mode)

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
    def input_samples_per_s(self) -> float:
        """Samples/s the host input workers of one system prepare."""
        return self.host_workers * self.worker_samples_per_s

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

    def startup_s(self, weight_bytes: float, cached: bool = True) -> dict[str, float]:
        """Seconds before the first sample: job start, compile (when not cached), device
        programming and sending ``weight_bytes`` of initial weights."""
        parts = {"job_start": self.job_start_s, "compile": 0.0 if cached else self.compile_s,
                 "device_programming": self.device_programming_s,
                 "weight_load": weight_bytes / (self.weight_load_gbs * 1e9)}
        return {**parts, "total": sum(parts.values())}

    def with_overrides(self, overrides: Mapping[str, Any]) -> WaferSpec:
        """A copy with some fields replaced, each recorded as kind ``override``."""
        figures = dict(self.figures)
        for field, raw in overrides.items():
            if field not in FIELDS:
                raise BackendError(f"unknown wafer spec field {field!r}; fields: "
                                   f"{', '.join(FIELDS)}")
            value = check_value(field, raw, FIELDS[field], "wafer spec override")
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
                field: {**self.figures[field].to_json(), "unit": FIELDS[field].unit}
                for field in FIELDS
            },
        }

    def table(self) -> list[str]:
        """The spec as text lines: field, value, unit, kind, source."""
        lines = [f"{self.name}: {self.title} ({self.cores:,} cores, "
                 f"{self.peak_flops('fp16') / 1e15:.2f} PFLOP/s fp16 peak)"]
        for field, declared in FIELDS.items():
            figure = self.figures[field]
            lines.append(f"  {field:26s} {_fmt(figure.value):>12s} {declared.unit:11s} "
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
        raise BackendError(f"wafer spec {text!r}{did_you_mean(text, PRESETS)}: no such "
                           f"preset ({', '.join(PRESETS)}) or file")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
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
    for field, declared in FIELDS.items():
        entry = data[field]
        if not isinstance(entry, dict) or not {"value", "kind", "source"} <= set(entry):
            raise BackendError(f"{where}: field {field} needs value, kind and source")
        if entry["kind"] not in KINDS[:3]:
            raise BackendError(f"{where}: field {field} has kind {entry['kind']!r}; "
                               f"one of {', '.join(KINDS[:3])}")
        figures[field] = Figure(check_value(field, entry["value"], declared, where),
                                entry["kind"], str(entry["source"]))
    return WaferSpec(str(data.get("name", Path(where).stem)), str(data.get("title", "")),
                     figures, where)


def _fmt(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}" if abs(value) >= 10000 else str(int(value))
    return f"{value:.6g}"
