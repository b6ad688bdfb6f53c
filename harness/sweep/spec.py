"""The sweep file: TOML naming a base configuration, its points, a peak search and a report.

::

    [sweep]                       # optional: name (default: the file's stem), description,
    name = "server-ort"           # combine = "grid" (every combination, default) or "zip"

    [base]                        # one run's settings, shared by every point
    scenario = "Server"
    backend = "onnxruntime"
    short = true
    target_qps = 40
    backend_options = { optimizer = "transformers" }

    [points]                      # the axes: a list, or a range
    target_qps = { from = 20, to = 60, step = 10 }     # 20, 30, ... 60
    batch_size = { from = 1, to = 16, times = 2 }      # 1, 2, 4, 8, 16
    threads = [1, 2]
    backend_options = { clock_mhz = [400, 800] }

    [peak]                        # --find-peak: see harness.sweep.peak
    tolerance = 2                 # start: the warm-up's capacity unless given
    budget_minutes = 8

    [report]
    distribution = "best"         # the point whose per-sample latencies are plotted
    modelled = { figure = "samples_per_second", record = "settings.backend.modelled_qps" }

Every key is checked here, before anything runs: a bad file is one :class:`ConfigError` line
naming the file, the table and the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common.errors import ConfigError
from common.settings import Declared, check_value
from harness.config import RunConfig, flagged_fields, sweep_keys
from harness.loadgen.settings import USER_CONF_KEYS
from harness.sweep.formula import formula_names, parse_formula

Value = str | int | float | bool


@dataclasses.dataclass(frozen=True)
class Field:
    """A setting a point may have: its checker and what it means."""

    check: Callable[[Any], Value]
    text: str


def _whole(least: int) -> Callable[[Any], Value]:
    def check(value: Any) -> Value:
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"expected a whole number of at least {least}")
        return value
    return check


def _number(least: float, inclusive: bool = True) -> Callable[[Any], Value]:
    def check(value: Any) -> Value:
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or value < least \
                or (value == least and not inclusive):
            relation = "at least" if inclusive else "above"
            raise ValueError(f"expected a number {relation} {least:g}")
        return value
    return check


def _bounded(above: float, most: float) -> Callable[[Any], Value]:
    def check(value: Any) -> Value:
        number = _number(above, inclusive=False)(value)
        if number > most:  # type: ignore[operator]
            raise ValueError(f"expected a number above {above:g} and at most {most:g}")
        return number
    return check


def _text(choices: tuple[str, ...] = ()) -> Callable[[Any], Value]:
    def check(value: Any) -> Value:
        if not isinstance(value, str) or not value:
            raise ValueError("expected a text value")
        if choices and value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return value
    return check


def _flag(value: Any) -> Value:
    if not isinstance(value, bool):
        raise ValueError("expected true or false")
    return value


def _option(value: Any) -> Value:
    if isinstance(value, float) and not math.isfinite(value) or \
            not isinstance(value, (str, int, float, bool)):
        raise ValueError("expected a text, number or true/false value")
    return value


MAX_BUDGET_MINUTES = 24 * 60.0  # [peak] budget_minutes: a day at most

# What a point may vary (and the base may set): every run setting declared as a sweep axis
# in harness.config (its key is the flag's words: --inter-threads is inter_threads), and the
# LoadGen settings below, which become user.conf lines of the point's scenario.
USER_CONF_AXES = {"min_duration_ms": "min_duration", "min_query_count": "min_query_count"}


def _declared_check(declared: Declared) -> Callable[[Any], Value]:
    def check(value: Any) -> Value:
        if declared.kind == "flag" and not isinstance(value, bool):
            raise ValueError("expected true or false")
        checked = check_value(declared, value)
        # a choice keeps its declared spelling; numbers keep the file's own (40 stays 40)
        return checked if isinstance(checked, str) else value
    return check


def setting_fields(config_class: type = RunConfig) -> tuple[dict[str, Field], tuple[str, ...]]:
    """The sweep keys of ``config_class``'s declared settings: ``(axes, base-only keys)``."""
    axes: dict[str, Field] = {}
    base_only: list[str] = []
    for key, flagged in sweep_keys(config_class).items():
        if key == "backend_options":
            continue
        if flagged.field.info.sweep == "axis":
            axes[key] = Field(_declared_check(flagged.field), flagged.field.info.help)
        else:
            base_only.append(key)
    axes["min_duration_ms"] = Field(_whole(0), "user.conf min_duration (ms)")
    axes["min_query_count"] = Field(_whole(1), "user.conf min_query_count")
    return axes, tuple(base_only)


AXES, _BASE_SETTINGS = setting_fields()
# The sweep's own keys, which only the base sets (with the declared base-only settings).
SWEEP_BASE_KEYS = ("user_conf", "args", "conf", "backend_options")
BASE_ONLY = (*_BASE_SETTINGS, *SWEEP_BASE_KEYS)
# Flags a point's run gets from the sweep itself: never in [base] args.
SWEEP_FLAGS = {"--user-conf": "user_conf", "--results-dir": "the sweep's own folder",
               "--no-progress": "always set"}
OPTION_PREFIX = "backend_options."
COMBINE = ("grid", "zip")
PEAK_METHODS = ("bisect", "loadgen")
MEASURED = ("samples_per_second", "p50_ms", "p90_ms", "p99_ms", "mean_ms")
MAX_POINTS = 1000


@dataclasses.dataclass(frozen=True)
class Axis:
    """One varied setting and its values, in order (``backend_options.NAME`` for options)."""

    name: str
    values: tuple[Value, ...]


@dataclasses.dataclass(frozen=True)
class PeakSettings:
    """``--find-peak``: Server's search over target QPS (harness.sweep.peak)."""

    method: str = "bisect"  # "bisect": one run a probe; "loadgen": LoadGen's own mode, one run
    start: float | None = None  # first QPS tried (None: the warm-up's, see harness.sweep.peak)
    growth: float = 2.0  # bracketing: multiply (or divide) by this until the verdict flips
    tolerance: float = 2.0  # stop when the highest VALID and lowest INVALID are this close
    max_probes: int = 16
    min_qps: float = 0.5  # give up looking for a VALID rate below this
    max_minutes: float = 30.0  # "loadgen": the one run's limit (all of its probes)
    # "bisect": the whole search's time (minutes, its distribution run included); it stops
    # before a probe that would pass it, with the best VALID rate found so far
    budget_minutes: float = 20.0


@dataclasses.dataclass(frozen=True)
class ModelledSettings:
    """A figure a model predicts, plotted against the one LoadGen measured."""

    figure: str = "samples_per_second"
    formula: str | None = None  # arithmetic over the point's settings, or
    record: str | None = None  # a number the run recorded: "settings.<path>" or "result.<path>"


@dataclasses.dataclass(frozen=True)
class ReportSettings:
    distribution: str | dict[str, Value] = "best"  # "best", "none", or a point's axis values
    modelled: ModelledSettings | None = None


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """A checked sweep file."""

    path: Path
    name: str
    description: str
    base: dict[str, Any]
    axes: tuple[Axis, ...]
    combine: str = "grid"
    peak: PeakSettings = PeakSettings()
    report: ReportSettings = ReportSettings()
    text: str = ""

    def axis(self, name: str) -> Axis | None:
        return next((axis for axis in self.axes if axis.name == name), None)

    def setting(self, name: str, default: Any = None) -> Any:
        """A base setting (``backend_options.NAME`` for an option)."""
        if name.startswith(OPTION_PREFIX):
            return self.base.get("backend_options", {}).get(name[len(OPTION_PREFIX):], default)
        return self.base.get(name, default)


class _Reader:
    """Checks one file; every error names the file and where in it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.axes: dict[str, Field] = AXES
        self.base_settings: tuple[str, ...] = _BASE_SETTINGS
        self.declared: dict[str, Declared] = {}

    def fail(self, where: str, message: str) -> ConfigError:
        return ConfigError(f"{self.path}: {where}: {message}")

    def table(self, data: dict, name: str, known: tuple[str, ...]) -> dict:
        found = data.get(name, {})
        if not isinstance(found, dict):
            raise self.fail(f"[{name}]", "expected a table")
        for key in found:
            if key not in known:
                raise self.unknown(f"[{name}]", key, known)
        return found

    def unknown(self, where: str, key: str, known: tuple[str, ...] | list[str]) -> ConfigError:
        close = difflib.get_close_matches(key, known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else f"; known: {', '.join(known)}"
        return self.fail(where, f"unknown key {key!r}{hint}")

    def value(self, where: str, check: Callable[[Any], Value], value: Any) -> Value:
        try:
            return check(value)
        except ValueError as exc:
            raise self.fail(where, f"{exc}, got {value!r}") from None

    def values(self, where: str, check: Callable[[Any], Value], spec: Any) -> tuple[Value, ...]:
        """A list, or a range ``{from, to, step}`` / ``{from, to, times}`` (both ends in)."""
        if isinstance(spec, dict):
            values = self.range(where, spec)
        elif isinstance(spec, list):
            values = spec
        else:
            raise self.fail(where, "expected a list of values or a range {from, to, step} "
                            f"or {{from, to, times}}, got {spec!r}")
        if not values:
            raise self.fail(where, "no values")
        checked = tuple(self.value(where, check, value) for value in values)
        if len(set(checked)) != len(checked):
            raise self.fail(where, f"a value is listed twice: {list(checked)}")
        return checked

    def range(self, where: str, spec: dict) -> list:
        for key in spec:
            if key not in ("from", "to", "step", "times"):
                raise self.unknown(where, key, ["from", "to", "step", "times"])
        if "from" not in spec or "to" not in spec or ("step" in spec) == ("times" in spec):
            raise self.fail(where, "a range is {from, to, step} or {from, to, times}")
        numbers = [spec[key] for key in spec]
        if any(isinstance(n, bool) or not isinstance(n, (int, float)) for n in numbers):
            raise self.fail(where, f"a range's from, to, step and times are numbers: {spec}")
        start, stop = spec["from"], spec["to"]
        if stop < start:
            raise self.fail(where, f"range from {start} to {stop}: 'to' is below 'from'")
        whole = all(isinstance(n, int) for n in numbers)
        values: list = []
        if "step" in spec:
            if not spec["step"] > 0:
                raise self.fail(where, "a range's step must be above 0")
            count = int(math.floor((stop - start) / spec["step"] + 1e-9)) + 1
            values = [start + i * spec["step"] for i in range(min(count, MAX_POINTS + 1))]
        else:
            if not spec["times"] > 1 or not start > 0:
                raise self.fail(where, "a range with 'times' needs times > 1 and from > 0")
            value = start
            while value <= stop * (1 + 1e-9) and len(values) <= MAX_POINTS:
                values.append(value)
                value *= spec["times"]
        if not whole:
            values = [round(v, 9) for v in values]
        return values


def _toml(path: Path) -> tuple[dict, str]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: sweep file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the sweep file ({exc})") from None
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def load_sweep(path: Path, config_class: type = RunConfig) -> SweepSpec:
    """Read and check a sweep file (its keys: the sweep settings of ``config_class``)."""
    path = Path(path)
    data, text = _toml(path)
    reader = _Reader(path)
    for key in data:
        if key not in ("sweep", "base", "points", "peak", "report"):
            raise reader.unknown("the file", key, ["sweep", "base", "points", "peak", "report"])
    head = reader.table(data, "sweep", ("name", "description", "combine"))
    name = reader.value("[sweep] name", _text(), head.get("name", path.stem))
    description = head.get("description", "")
    if not isinstance(description, str):
        raise reader.fail("[sweep] description", f"expected text, got {description!r}")
    combine = reader.value("[sweep] combine", _text(COMBINE), head.get("combine", "grid"))
    axes_fields, base_settings = setting_fields(config_class)
    reader.axes, reader.base_settings = axes_fields, base_settings
    reader.declared = {key: f.field for key, f in sweep_keys(config_class).items()}
    base = _base(reader, reader.table(data, "base", (*axes_fields, *base_settings,
                                                       *SWEEP_BASE_KEYS)))
    axes = _axes(reader, reader.table(data, "points", (*axes_fields, "backend_options")))
    if combine == "zip" and len({len(axis.values) for axis in axes}) > 1:
        lengths = ", ".join(f"{axis.name}: {len(axis.values)}" for axis in axes)
        raise reader.fail('[sweep] combine = "zip"',
                          f"every axis needs as many values ({lengths})")
    count = math.prod(len(axis.values) for axis in axes) if combine == "grid" else \
        (len(axes[0].values) if axes else 1)
    if count > MAX_POINTS:
        raise reader.fail("[points]", f"{count} points; at most {MAX_POINTS} in one sweep")
    return SweepSpec(path=path, name=str(name), description=description, base=base,
                     axes=axes, combine=str(combine), peak=_peak(reader, data),
                     report=_report(reader, data, base, axes), text=text)


def _base(reader: _Reader, table: dict) -> dict[str, Any]:
    base: dict[str, Any] = {}
    for key, value in table.items():
        where = f"[base] {key}"
        if key in reader.axes:
            base[key] = reader.value(where, reader.axes[key].check, value)
        elif key == "user_conf":
            base[key] = reader.value(where, _text(), value) if value is not False else None
        elif key == "system" and value is False:
            base[key] = None
        elif key in reader.base_settings:
            base[key] = reader.value(where, _declared_check(reader.declared[key]), value)
        elif key == "args":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise reader.fail(where, f"expected a list of command-line words, got {value!r}")
            _check_args(reader, where, value)
            base[key] = list(value)
        elif key == "conf":
            base[key] = _conf(reader, value)
        elif key == "backend_options":
            if not isinstance(value, dict):
                raise reader.fail(where, "expected a table of option = value")
            base[key] = {k: reader.value(f"{where}.{k}", _option, v) for k, v in value.items()}
    return base


def _check_args(reader: _Reader, where: str, words: list[str]) -> None:
    """Refuse a flag the sweep sets itself: it would silently change what a point measures
    (a --scenario there made SingleStream runs table as Server points)."""
    fields = flagged_fields()
    keys = {f.flag: f.sweep_key for f in fields if f.field.info.sweep}
    known = {f.flag for f in fields}
    for word in words:
        flag = word.split("=", 1)[0]
        if flag.startswith("--") and flag not in known and flag not in SWEEP_FLAGS:
            # the run's parser takes an unambiguous prefix (--scen) as the whole flag
            flag = next((f for f in (*keys, *SWEEP_FLAGS) if f.startswith(flag)), flag)
        if flag in keys:
            raise reader.fail(where, f"{flag} is a sweep setting: set {keys[flag]} in [base] "
                              "(or vary it in [points]) instead")
        if flag in SWEEP_FLAGS:
            raise reader.fail(where, f"{flag} is set by the sweep itself "
                              f"({SWEEP_FLAGS[flag]}); leave it out of args")


def _conf(reader: _Reader, table: Any) -> dict[str, Value]:
    """``conf``: more LoadGen settings of the point's scenario, ``key = number``."""
    if not isinstance(table, dict):
        raise reader.fail("[base] conf", "expected a table of user.conf key = number")
    for key, value in table.items():
        if key not in USER_CONF_KEYS or key == "mode":
            raise reader.unknown("[base] conf", key, sorted(set(USER_CONF_KEYS) - {"mode"}))
        reader.value(f"[base] conf.{key}", _number(0), value)
    return dict(table)


def _axes(reader: _Reader, table: dict) -> tuple[Axis, ...]:
    axes = []
    for key, spec in table.items():
        if key == "backend_options":
            if not isinstance(spec, dict):
                raise reader.fail("[points] backend_options", "expected a table of option = "
                                  "list (or range)")
            for option, values in spec.items():
                where = f"[points] backend_options.{option}"
                axes.append(Axis(OPTION_PREFIX + option, reader.values(where, _option, values)))
        else:
            axes.append(Axis(key, reader.values(f"[points] {key}", reader.axes[key].check,
                                                spec)))
    return tuple(axes)


def _peak(reader: _Reader, data: dict) -> PeakSettings:
    table = reader.table(data, "peak", tuple(f.name for f in dataclasses.fields(PeakSettings)))
    checks = {
        "method": _text(PEAK_METHODS), "start": _number(0, inclusive=False),
        "growth": _number(1, inclusive=False), "tolerance": _number(0, inclusive=False),
        "max_probes": _whole(2), "min_qps": _number(0, inclusive=False),
        "max_minutes": _number(0, inclusive=False),
        "budget_minutes": _bounded(0, MAX_BUDGET_MINUTES),
    }
    values = {key: reader.value(f"[peak] {key}", checks[key], value)
              for key, value in table.items()}
    return PeakSettings(**values)


def _report(reader: _Reader, data: dict, base: dict, axes: tuple[Axis, ...]) -> ReportSettings:
    table = reader.table(data, "report", ("distribution", "modelled"))
    distribution = table.get("distribution", "best")
    names = [axis.name for axis in axes]
    if isinstance(distribution, dict):
        for key, value in distribution.items():
            if key == "backend_options" and isinstance(value, dict):
                distribution = {**{k: v for k, v in distribution.items() if k != key},
                                **{OPTION_PREFIX + k: v for k, v in value.items()}}
        for key in distribution:
            if key not in names:
                raise reader.unknown("[report] distribution", key, names or ["(no axes)"])
    elif distribution not in ("best", "none"):
        raise reader.fail("[report] distribution", "expected \"best\", \"none\" or a table of "
                          f"the point's axis values, got {distribution!r}")
    modelled = None
    if "modelled" in table:
        entry = table["modelled"]
        if not isinstance(entry, dict):
            raise reader.fail("[report] modelled", "expected a table {figure, formula} or "
                              "{figure, record}")
        for key in entry:
            if key not in ("figure", "formula", "record"):
                raise reader.unknown("[report] modelled", key, ["figure", "formula", "record"])
        if ("formula" in entry) == ("record" in entry):
            raise reader.fail("[report] modelled", "give one of formula (arithmetic over the "
                              "point's settings) or record (a figure the run recorded)")
        figure = reader.value("[report] modelled.figure", _text(MEASURED),
                              entry.get("figure", "samples_per_second"))
        modelled = ModelledSettings(figure=str(figure), formula=entry.get("formula"),
                                    record=entry.get("record"))
        _check_modelled(reader, modelled, base, names)
    return ReportSettings(distribution=distribution, modelled=modelled)


def _check_modelled(reader: _Reader, modelled: ModelledSettings, base: dict,
                    names: list[str]) -> None:
    if modelled.formula is not None:
        where = "[report] modelled.formula"
        if not isinstance(modelled.formula, str):
            raise reader.fail(where, f"expected text, got {modelled.formula!r}")
        try:
            parse_formula(modelled.formula)
            used = formula_names(modelled.formula)
        except ConfigError as exc:
            raise reader.fail(where, str(exc)) from None
        known = {*names, *(n.removeprefix(OPTION_PREFIX) for n in names), *base,
                 *base.get("backend_options", {})}
        for name in sorted(used - known):
            raise reader.unknown(where, name, sorted(known))
    else:
        record = modelled.record
        if not isinstance(record, str) or record.split(".")[0] not in ("settings", "result") \
                or "." not in record:
            raise reader.fail("[report] modelled.record", "expected \"settings.<key>.<key>...\" "
                              f"(settings.json) or \"result.<key>...\" (result.json), got "
                              f"{record!r}")
