"""``--backend wafer``: real answers, timed as a wafer-scale engine (Cerebras-class).

Answers come from another backend, the *numerics* backend (ONNX Runtime by default; option
``numerics``), computed while LoadGen loads samples (untimed) or taken from a logits cache
on disk. Each call is released at the time a performance model of the wafer says it would
finish: a discrete-event model of the device (pipelines or weight-streaming batches, a
queue) gives each call's completion from its arrival, and one timer thread completes it on
the wall clock then, with many calls in flight. So LoadGen's own logs -- samples/s, latency
percentiles, VALID/INVALID, early stopping -- describe the simulated machine.

``numerics=none`` runs timing only: every answer is empty (no span is ever valid), and
``describe()`` (settings.json) says the run is not valid for accuracy or compliance. See
docs/wafer.md for the model, its calibration and its assumptions.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np
from pydantic.dataclasses import dataclass as pydantic_dataclass

from backends import load_backend
from backends.base import Backend, BackendError, BackendSettings, FeatureBatch
from backends.wafer import numerics as bank_mod
from backends.wafer.device import make_device
from backends.wafer.engine import Engine
from backends.wafer.plan import MODES, Plan, PlanOptions, plan
from backends.wafer.release import RELEASES
from backends.wafer.report import band_text
from backends.wafer.shapes import Architecture, from_model, named
from backends.wafer.spec import (
    DEFAULT_SPEC,
    PRECISIONS,
    PRESETS,
    WHOLE_OPTIONS,
    WaferSpec,
    load_spec,
)
from common.settings import STRICT, Text, Whole, choice, setting

MODEL_VERSION = "wafer-model 1"
SPEC_PREFIX = "spec."
NUMERICS_PREFIX = "numerics."
NO_NUMERICS = "none"
THROUGHPUT_BATCH = 64  # see preferred_batch_size
DEFAULT_CACHE = Path(__file__).resolve().parents[1] / "models" / "store" / "wafer-logits"
DEFAULT_IN_FLIGHT = 4096
EXPECTS = {"plan": "expected", "low": "low", "high": "high", "user.conf": None}
EMPTY_NOTE = ("empty answers (numerics=none): timing only, not valid for accuracy or "
              "compliance")


ON_OFF = ("on", "off")


def _bounded(name: str) -> dict[str, Any]:
    """The bounds and unit of a whole-number option, from the spec's declarations."""
    field = WHOLE_OPTIONS[name]
    bound = {"gt": field.low} if field.above else {"ge": field.low}
    return {**bound, "le": field.high, "unit": field.unit, "help": field.help}


@pydantic_dataclass(frozen=True, config=STRICT)
class WaferOptions:
    """``--backend-option``s of the wafer backend (``spec.FIELD=VALUE`` overrides a spec
    field; ``numerics.KEY=VALUE`` goes to the numerics backend)."""

    spec: Text = setting(DEFAULT_SPEC, help=f"wafer preset ({', '.join(PRESETS)}) or a TOML "
                         "spec file; override any field with spec.FIELD=VALUE")
    numerics: Text = setting("onnxruntime", help="backend that computes the answers (none: "
                             "timing only, empty answers); numerics.KEY=VALUE passes options "
                             "to it")
    mode: choice(MODES) = setting(  # type: ignore[valid-type]
        "auto", choices=MODES, help="execution mode (auto: pipelined when the weights fit, "
        "else weight streaming)")
    skip_padding: choice(ON_OFF) = setting(  # type: ignore[valid-type]
        "off", choices=ON_OFF, help="on: time each sample at its real token count (off: "
        "padded, as Cerebras runs eval)")
    precision: choice(PRECISIONS) = setting(  # type: ignore[valid-type]
        "fp16", choices=PRECISIONS, help="arithmetic timed")
    arch: Text | None = setting(None, help="time this named architecture (e.g. bert-large) "
                                "instead of the model's shapes")
    seq: Whole = setting(384, **_bounded("seq"))
    stream_batch: Whole | None = setting(None, **_bounded("stream_batch"))
    cache_dir: Text = setting(str(DEFAULT_CACHE), help="logits cache folder (off: no disk "
                              "cache)")
    in_flight: Whole = setting(DEFAULT_IN_FLIGHT, **_bounded("in_flight"))
    numerics_batch: Whole = setting(8, **_bounded("numerics_batch"))
    release: choice(RELEASES) = setting(  # type: ignore[valid-type]
        "auto", choices=RELEASES, help="modelzoo release whose modes apply (auto: pipelined "
        "when the weights fit; 1.6: per config; 1.9: all stream)")
    low_latency: choice(ON_OFF) = setting(  # type: ignore[valid-type]
        "off", choices=ON_OFF, help="on: pipelined with one replica on the whole wafer")
    expect: choice(tuple(EXPECTS)) = setting(  # type: ignore[valid-type]
        "plan", choices=tuple(EXPECTS), help="what sizes LoadGen's test: plan (the plan's "
        "expected Offline samples/s and SingleStream/MultiStream latency, after the "
        "user.conf's), low or high (the band's end), or user.conf (the user's own figures)")


class WaferBackend(Backend):
    """Real answers from a numerics backend, released at modelled wafer times (a
    :class:`backends.device.TimedDevice`)."""

    name = "wafer"
    Options = WaferOptions
    options: WaferOptions
    option_prefixes = (SPEC_PREFIX, NUMERICS_PREFIX)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        options, raw = self.options, self.settings.options
        self._numerics_name = options.numerics
        if self._numerics_name == self.name:
            raise BackendError("the wafer backend cannot use itself for its numerics")
        overrides = {k[len(SPEC_PREFIX):]: v for k, v in raw.items()
                     if k.startswith(SPEC_PREFIX)}
        self.spec: WaferSpec = load_spec(options.spec, overrides)
        self._skip_padding = options.skip_padding == "on"
        self._options = PlanOptions(
            mode=options.mode, precision=options.precision, seq=options.seq,
            skip_padding=self._skip_padding, stream_batch=options.stream_batch,
            release=options.release, low_latency=options.low_latency == "on",
        )
        self._in_flight = options.in_flight
        self._numerics_batch = options.numerics_batch
        self._expect = options.expect
        cache = options.cache_dir
        self._cache_root = None if cache == "off" else Path(cache)
        self.arch: Architecture | None = None
        # the last model's shapes and plan: expected_performance() and load() both need them,
        # and reading a single-file ONNX graph's shapes reads the whole file (6 s for BERT-Large)
        self._planned_for: tuple[Path | None, Architecture, Plan] | None = None
        self.plan: Plan | None = None
        self._numerics: Backend | None = None
        self._engine: Engine | None = None
        self._bank = bank_mod.LogitsBank()
        self._disk: bank_mod.DiskCache | None = None
        self._on_disk: set[int] = set()
        self._model_path: Path | None = None
        self._stage_error: BaseException | None = None
        self._staged = {"rows": 0, "computed": 0, "from_cache": 0, "seconds": 0.0}
        self._computed_in_timed_phase = 0

    # -- lifecycle ---------------------------------------------------------------------
    def version(self) -> str:
        if self._numerics is not None:
            return f"{MODEL_VERSION}; numerics {self._numerics.name} {self._numerics.version()}"
        return MODEL_VERSION

    @property
    def real_answers(self) -> bool:
        return self._numerics_name != NO_NUMERICS

    def load(self, model_path: Path | None) -> None:
        """Read the model's shapes, plan it on the spec, load the numerics backend, start
        the device and its timer."""
        self.close()
        self._bank, self._disk, self._on_disk = bank_mod.LogitsBank(), None, set()
        self._stage_error = None
        self.arch, self.plan = self._planned(model_path)
        if self._skip_padding:
            self.plan.prepare()
        print(f"note: wafer backend: timing is MODELLED, not measured: simulated "
              f"{self.spec.name}, release {self._options.release}, {self.plan.mode}, "
              f"{band_text(self.plan.band)}", file=sys.stderr)
        if self.real_answers:
            if model_path is None and self._numerics_name != "null":
                raise BackendError(f"wafer backend: numerics={self._numerics_name} needs a "
                                   "model file (or numerics=none for timing only)")
            inner = {k[len(NUMERICS_PREFIX):]: v for k, v in self.settings.options.items()
                     if k.startswith(NUMERICS_PREFIX)}
            settings = BackendSettings(self.settings.intra_op_threads,
                                       self.settings.inter_op_threads, self.settings.device,
                                       inner)
            self._model_path = Path(model_path) if model_path is not None else None
            self._numerics = load_backend(self._numerics_name, self._model_path, settings)
        else:
            print(f"note: wafer backend: {EMPTY_NOTE}", file=sys.stderr)
        self._engine = Engine(make_device(self.plan, self._skip_padding))

    def _planned(self, model_path: Path | None) -> tuple[Architecture, Plan]:
        """The shapes timed (``arch=`` or the model's own) and their plan on the spec."""
        key = None if model_path is None else Path(model_path).resolve()
        if self._planned_for is not None and self._planned_for[0] == key:
            return self._planned_for[1], self._planned_for[2]
        arch_name = self.settings.options.get("arch")
        if arch_name is not None:
            arch = named(str(arch_name))
        elif model_path is None:
            raise BackendError("wafer backend: no model to read layer shapes from; give a "
                               "model or name an architecture (arch=bert-large)")
        else:
            arch = from_model(Path(model_path))
        planned = plan(arch, self.spec, self._options)
        self._planned_for = (key, arch, planned)
        return arch, planned

    def expected_performance(self, model_path: Path | None) -> dict[str, float] | None:
        """The plan's samples/s and latency (``expect=plan``), so that a run with the
        default user.conf, written for a CPU, asks LoadGen for a test this device fills."""
        band = EXPECTS[self._expect]
        if band is None:
            return None
        arch, planned = self._planned(model_path)
        if band != "expected":
            planned = plan(arch, self.spec, dataclasses.replace(
                self._options, mode=planned.mode, band=band))
        return {"samples_per_s": planned.throughput, "latency_s": planned.latency_s}

    @property
    def system_tag(self) -> str:
        """What the system name says of this backend: simulated, the preset and release."""
        return f"wafer-simulated-{self.spec.name}-release-{self._options.release}"

    def preferred_batch_size(self) -> int | None:
        """Calls of 64 samples where the harness batches for throughput (Offline), so that
        it hands out the modelled device's hundreds of thousands of samples/s (at 8 a call
        it tops out near 90k here)."""
        return THROUGHPUT_BATCH

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None
        if self._numerics is not None:
            self._numerics.close()
            self._numerics = None

    def max_in_flight(self) -> int:
        """Calls outstanding at once (option ``in_flight``)."""
        return self._in_flight

    # -- numerics ------------------------------------------------------------------------
    def _cache(self) -> bank_mod.DiskCache | None:
        if self._cache_root is None or self._numerics is None or \
                self._numerics_name == "null":  # nothing to gain from caching instant logits
            return None
        if self._disk is None:
            identity = {
                "model_digest": bank_mod.model_digest(self._model_path),
                "model": str(self._model_path), "numerics": self._numerics_name,
                "numerics_options": {k: v for k, v in self.settings.options.items()
                                     if k.startswith(NUMERICS_PREFIX)},
                "device": self.settings.device, "layout": "real-length rows v1",
            }
            self._disk = bank_mod.DiskCache(self._cache_root, identity)
            before = len(self._bank)
            self._disk.load_into(self._bank)
            self._on_disk = set(self._bank.index) if len(self._bank) > before else set()
        return self._disk

    def stage(self, batch: FeatureBatch) -> None:
        """Compute the answers of the samples LoadGen loads (untimed), or find them cached.
        A failure here is reported by the next prediction (LoadGen's loading thread must
        not raise)."""
        if not self.real_answers or self._numerics is None:
            return
        started = time.perf_counter()
        try:
            disk = self._cache()
            keys, lengths = bank_mod.fingerprints(batch)
            rows = self._bank.find(keys, lengths)
            missing = np.flatnonzero(rows < 0)
            if len(missing):
                part = FeatureBatch(*(a[missing] for a in batch.arrays()))
                starts, ends = bank_mod.compute(self._numerics, part, lengths[missing],
                                                self._numerics_batch)
                self._bank.add(keys[missing], lengths[missing], starts, ends)
            unique = np.unique(keys)
            new = np.array([k for k in unique.tolist() if k not in self._on_disk], np.int64)
            if disk is not None and len(new):
                try:
                    disk.save(self._bank.export(new))
                    self._on_disk.update(new.tolist())
                except OSError as exc:
                    print(f"warning: wafer backend: cannot write the logits cache "
                          f"({exc}); continuing without it", file=sys.stderr)
            self._staged["rows"] += len(keys)
            self._staged["computed"] += len(missing)
            self._staged["from_cache"] += len(keys) - len(missing)
        except BaseException as exc:  # noqa: BLE001 - reported at the next call
            self._stage_error = exc
        self._staged["seconds"] += time.perf_counter() - started

    def _answers(self, batch: FeatureBatch) -> tuple[np.ndarray, np.ndarray]:
        width = batch.input_ids.shape[1]
        if not self.real_answers:
            return empty_logits(batch)
        keys, lengths = bank_mod.fingerprints(batch)
        rows = self._bank.find(keys, lengths)
        missing = np.flatnonzero(rows < 0)
        if len(missing):  # not staged (the warm-up, a direct call): computed now
            part = FeatureBatch(*(a[missing] for a in batch.arrays()))
            starts, ends = bank_mod.compute(self._numerics, part, lengths[missing],
                                            self._numerics_batch, progress=False)
            self._bank.add(keys[missing], lengths[missing], starts, ends)
            self._computed_in_timed_phase += len(missing)
            rows = self._bank.find(keys, lengths)
        return self._bank.gather(rows, width)

    # -- predictions -----------------------------------------------------------------------
    def predict_async(self, batch: FeatureBatch, arrival_s: float | None = None) -> Future:
        """The answers now (computed ahead), released at the modelled completion time.

        The device sees the batch arrive at ``arrival_s`` (``time.monotonic()`` seconds; the
        harness passes when LoadGen issued it), so the harness's own hop from LoadGen to here
        is inside the modelled latency, not added; None: now."""
        arrival = time.monotonic() if arrival_s is None else arrival_s
        engine = self._engine
        if engine is None or self.plan is None:
            raise BackendError("wafer backend: call load() before predict()")
        if self._stage_error is not None:
            exc = self._stage_error
            raise BackendError(f"wafer backend: computing the answers while LoadGen loaded "
                               f"samples failed: {type(exc).__name__}: {exc}") from exc
        ids, mask, _ = batch.arrays()
        lengths = np.asarray(mask, bool).sum(axis=1)
        result = self._answers(batch)
        return engine.submit(lengths if self._skip_padding else np.full(len(ids), 0),
                             result, arrival)

    def predict(self, batch: FeatureBatch) -> tuple[np.ndarray, np.ndarray]:
        return self.predict_async(batch).result()

    # -- records -------------------------------------------------------------------------
    def timing_stats(self) -> dict[str, Any]:
        """How the run went: releases, their lateness, numerics computed in the timed phase."""
        stats = self._engine.stats() if self._engine is not None else {}
        return {**stats, "staged": dict(self._staged),
                "computed_in_timed_phase": self._computed_in_timed_phase}

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        p = self.plan
        info.update(
            simulated={
                "modelled": True, "preset": self.spec.name, "release": self._options.release,
                "band_samples_per_s": p.band if p else None,
                "loadgen_sized_for": EXPECTS[self._expect] or "the user.conf",
                "note": "every time is modelled from the model's shapes and the spec's "
                        "figures; no wafer ran this",
            },
            spec=self.spec.to_json(),
            model=self.arch.to_json() if self.arch is not None else None,
            mode=p.mode if p else None,
            mode_reason=p.reason if p else None,
            plan=p.to_json() if p else None,
            numerics={
                "backend": self._numerics_name,
                "answers": ("real: the numerics backend's logits, computed while LoadGen "
                            "loads samples (untimed) or read from the logits cache")
                if self.real_answers else EMPTY_NOTE,
                "valid_for_accuracy": self.real_answers,
                "inner": self._numerics.describe() if self._numerics is not None else None,
                "cache": (str(self._cache_root) if self._cache_root is not None and
                          self.real_answers else "off"),
            },
            timing={
                "released_at": "modelled completion times, by one timer thread (wall clock)",
                "skip_padding": self._skip_padding,
                "plan_tokens": ("the plan's figures are at the padded length; the run times "
                                "each feature at its real length (plan those with "
                                "`python -m harness wafer plan --skip-padding`)")
                if self._skip_padding else "every feature timed padded",
                "in_flight": self._in_flight,
            },
        )
        return info


def empty_logits(batch: FeatureBatch) -> tuple[np.ndarray, np.ndarray]:
    """Logits that answer nothing: the best starts are the question, padding and the latest
    context tokens, the best ends the question, padding and the earliest context tokens, so
    no candidate span ends after it starts (the answer is "empty")."""
    _, mask, segments = batch.arrays()
    count, width = mask.shape
    context = (np.asarray(segments) == 1) & (np.asarray(mask) == 1)
    ramp = np.broadcast_to(np.arange(width, dtype=np.float32) / (width + 1), (count, width))
    start = np.where(context, ramp - 1.0, 1.0).astype(np.float32)
    end = np.where(context, -ramp - 1.0, 1.0).astype(np.float32)
    return np.ascontiguousarray(start), np.ascontiguousarray(end)


