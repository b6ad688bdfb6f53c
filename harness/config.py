"""The run's settings, declared once: :class:`RunConfig` and the classes it holds.

Each setting is one typed field (:func:`common.settings.setting`) with its unit, bounds and
help. From these fields come the command line of ``run``, ``accuracy``, ``compliance`` and
``submission`` (:func:`add_arguments`, :func:`config_from_args`), the axes a sweep file may
vary (:func:`sweep_keys`), ``python -m harness settings`` (and so ``make help``), and
``settings.json`` (the resolved config, recorded beside every result). Every value is
checked once, when the config is made: a bad one is one ``error:`` line naming the flag (or
the sweep key), the value and what it accepts.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, field_validator
from pydantic.dataclasses import dataclass as pydantic_dataclass

from backends import BackendError, BackendSettings, available_backends, backend_entry
from backends.base import option_text
from common.errors import ConfigError
from common.settings import (
    STRICT,
    Declared,
    Number,
    SettingValueError,
    Text,
    Whole,
    build,
    check_value,
    choice,
    declared_fields,
    setting,
)
from common.workspace import workspace
from harness.loadgen import rules as run_rules
from harness.loadgen.scenarios import EXPECTATION_BOUNDS, MODES, SCENARIOS, TABLE
from models.catalog import DEFAULT_MODEL
from squad.data import DataConfig

MAX_BATCH = 65_536


def _known_backend(value: Any) -> str:
    """A registered backend's name; an unknown one is answered with the closest names."""
    try:
        return backend_entry(_text_value(value)).target and value
    except BackendError as exc:
        raise SettingValueError(str(exc)) from None


def _text_value(value: Any) -> str:
    if not isinstance(value, str):
        raise SettingValueError(f"expected a backend name, got {value!r}")
    return value


BackendName = Annotated[str, BeforeValidator(_known_backend)]
FULL_LENGTH = 384  # tokens of an MLPerf BERT feature


@pydantic_dataclass(frozen=True, config=STRICT)
class RunConfig:
    """Everything that defines a run; ``short_run`` trades validity for minutes."""

    scenario: choice(SCENARIOS) = setting(  # type: ignore[valid-type]
        "Offline", flag="--scenario", sweep="axis", choices=SCENARIOS,
        help="LoadGen scenario (any case: offline works)")
    mode: choice(MODES) = setting(  # type: ignore[valid-type]
        "performance", flag="--mode", choices=MODES, help="LoadGen test mode")
    backend: BackendName = setting(
        "onnxruntime", flag="--backend", sweep="axis",
        help=f"the backend that runs the model: one of {', '.join(available_backends())} "
        "(python -m harness list)")
    model: Text = setting(DEFAULT_MODEL, flag="--model", sweep="axis",
                          help="catalog name (see `list`) or a path to a model file/directory")
    system: Text | None = setting(None, flag="--system", sweep="base",
                                  help="system name in the results tree (default: the host's "
                                  "CPU, cores and backend)")
    batch_size: Whole | None = setting(
        None, flag="--batch-size", sweep="axis", ge=1, le=MAX_BATCH, unit="samples",
        help="most samples per backend call (default: 8 in Offline, else 1)")
    backend_settings: BackendSettings = setting(default_factory=BackendSettings,
                                                help="settings every backend shares")
    user_conf: Path | None = setting(default_factory=lambda: workspace().user_conf,
                                     flag="--user-conf",
                                     help="LoadGen user.conf (default: the workspace's)")
    short_run: bool = setting(False, flag="--short", sweep="axis",
                              help="short run: 10 s minimum duration, no minimum query count "
                              "(Server: 459, MultiStream: 662, the fewest early stopping "
                              "accepts); minutes on a laptop, never submittable")
    target_qps: Number | None = setting(
        None, flag="--target-qps", sweep="axis", gt=EXPECTATION_BOUNDS["target_qps"][0],
        le=EXPECTATION_BOUNDS["target_qps"][1], unit=EXPECTATION_BOUNDS["target_qps"][2],
        help="Offline's expected rate and Server's target (overrides the user.conf)")
    target_latency_ms: Number | None = setting(
        None, flag="--target-latency-ms", sweep="axis",
        gt=EXPECTATION_BOUNDS["target_latency"][0], le=EXPECTATION_BOUNDS["target_latency"][1],
        unit=EXPECTATION_BOUNDS["target_latency"][2],
        help="SingleStream's and MultiStream's expected latency (overrides the user.conf)")
    data: DataConfig = setting(default_factory=DataConfig, help="SQuAD files and features")
    model_store: Path = setting(default_factory=lambda: workspace().model_store,
                                flag="--model-store",
                                help="where models are fetched and exported (default: "
                                "models/store in the workspace)")
    model_mirrors: tuple[Path, ...] = setting((), help="local folders holding model files")
    results_dir: Path = setting(default_factory=lambda: workspace().results,
                                flag="--results-dir",
                                help="results tree (default: results/ in the workspace)")
    progress: bool = setting(True, invert="--no-progress", help="no progress bars")
    # Limits (harness.loadgen.limits): None takes the default from the expectations.
    call_timeout_s: Number | None = setting(
        None, flag="--call-timeout", sweep="base", ge=0, le=86_400, unit="s",
        metavar="SECONDS",
        help="longest one backend call may take before the run ends as a backend failure "
        "(default: 20x the expected time of a call, at least 30 s; 0: no limit)")
    max_run_minutes: Number | None = setting(
        None, flag="--max-run-minutes", sweep="base", gt=0, le=10_080, unit="min",
        metavar="MINUTES",
        help="refuse a run expected to take longer, and stop one that does (default: 4x "
        "LoadGen's minimum duration, at least 60)")
    # Variable-length execution (harness.loadgen.sut.SUTSettings).
    seq_bucket: Whole | None = setting(
        1, flag="--seq-bucket", sweep="axis", ge=1, le=FULL_LENGTH, unit="tokens",
        metavar="TOKENS", zero_means_none=True,
        help="run each batch at its longest real length rounded up to a multiple of TOKENS "
        "(0: always padded to 384; a model with a fixed length, like MLPerf's model.pb, is "
        "always padded)")
    sort_by_length: bool = setting(True, invert="--no-sort",
                                   help="batch samples in LoadGen's order, not by length")
    batch_wait_ms: Number | None = setting(
        None, flag="--batch-wait-ms", sweep="axis", ge=0, le=60_000, unit="ms", metavar="MS",
        help="most time a partial batch waits for more queries (default: 5% of the Server "
        "latency bound when --batch-size > 1, else 0)")
    keep_trace: bool = setting(False, flag="--keep-trace",
                               help="keep LoadGen's mlperf_log_trace.json (every sample's "
                               "latency; large, and slows a fast run)")
    rules: choice(run_rules.RULES) = setting(  # type: ignore[valid-type]
        run_rules.LOADGEN, flag="--rules", choices=run_rules.RULES,
        help="loadgen: LoadGen 6's own mlperf.conf; v1.0, v1.1: that MLPerf round's BERT rules "
        "(its seeds, 600 s, minimum query counts, 130 ms Server bound)")
    audit: choice(tuple(run_rules.AUDITS)) | None = setting(  # type: ignore[valid-type]
        None, flag="--audit", choices=tuple(run_rules.AUDITS),
        help="run a compliance test's LoadGen settings (results go to "
        "<results>/compliance/<TEST>/; `compliance` also verifies them)")

    @field_validator("seq_bucket", mode="before")
    @classmethod
    def _zero_pads(cls, value: Any) -> Any:
        return None if isinstance(value, int | str) and str(value).strip() == "0" else value

    @property
    def batch(self) -> int:
        """The batch size this run uses."""
        return self.batch_size or TABLE[self.scenario].default_batch

    def validate(self) -> None:
        """What no single field can say: combinations, and the user.conf (in ms)."""
        from harness.loadgen.settings import check_user_conf

        run_rules.check_rules(self.rules, self.scenario, self.mode, self.audit)
        if self.user_conf is not None and not Path(self.user_conf).is_file():
            raise ConfigError(f"{self.user_conf}: user.conf not found (pass --user-conf PATH)")
        if self.user_conf is not None:
            check_user_conf(Path(self.user_conf))


# ---- what the fields generate ------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Flagged:
    """A declared field reachable from the command line: where it sits in the config."""

    path: tuple[str, ...]  # ("backend_settings", "intra_op_threads")
    field: Declared

    @property
    def flag(self) -> str:
        return self.field.info.flag or self.field.info.invert or ""

    @property
    def dest(self) -> str:
        return "cfg__" + "__".join(self.path)

    @property
    def sweep_key(self) -> str:
        """Its name in a sweep file: the flag's words (``--inter-threads``: inter_threads);
        backend options are the ``backend_options`` table."""
        if self.path[-1] == "options":
            return "backend_options"
        return self.flag.removeprefix("--").replace("-", "_")


def _nested(declared: Declared) -> type | None:
    annotation = declared.annotation
    return annotation if hasattr(annotation, "__pydantic_fields__") else None


def flagged_fields(cls: type = RunConfig, path: tuple[str, ...] = ()) -> Iterator[Flagged]:
    """Every field of ``cls`` and its nested settings classes that has a flag, in order."""
    for declared in declared_fields(cls):
        inner = _nested(declared)
        if inner is not None:
            yield from flagged_fields(inner, (*path, declared.name))
        elif declared.info.flag or declared.info.invert:
            yield Flagged((*path, declared.name), declared)


def sweep_keys(cls: type = RunConfig) -> dict[str, Flagged]:
    """The settings a sweep file may set: ``{key: field}`` (``info.sweep`` says whether a
    point may vary it, "axis", or only the base, "base")."""
    return {f.sweep_key: f for f in flagged_fields(cls) if f.field.info.sweep}


def _default_text(flagged: Flagged) -> str:
    default = flagged.field.default
    if default is dataclasses.MISSING or default is None or flagged.field.kind == "flag":
        return ""
    if isinstance(default, tuple):
        default = ", ".join(map(str, default)) or "none"
    return f"; default: {default}"


def help_text(flagged: Flagged) -> str:
    """A flag's help: what it does, what it accepts, its default (``%`` escaped for
    argparse)."""
    field = flagged.field
    text = field.info.help
    if field.kind != "flag" and flagged.path[-1] != "options":
        text = f"{text} ({field.accepts()}{_default_text(flagged)})"
    return text.replace("%", "%%")


SETTINGS_FLAG = "--settings"


def add_arguments(parser: argparse.ArgumentParser, cls: type = RunConfig,
                  exclude: tuple[str, ...] = (), defaults: dict[str, str] | None = None) -> None:
    """A flag for every flagged field of ``cls`` but those in ``exclude`` (flags). Values stay
    text until :func:`config_from_args` checks them all at once; a flag left out keeps the
    field's default (``defaults``: another default for this command, by flag)."""
    if cls is RunConfig or issubclass(cls, RunConfig):
        parser.add_argument(SETTINGS_FLAG, dest="cfg_settings_file", type=Path, default=None,
                            metavar="TOML", help="settings from a file (keys as in a sweep "
                            "file's [base], e.g. a tuned.toml from `tune`); flags given on "
                            "the command line win")
    for flagged in flagged_fields(cls):
        flag, field = flagged.flag, flagged.field
        if flag in exclude:
            continue
        default = (defaults or {}).get(flag, argparse.SUPPRESS)
        if field.info.invert:
            parser.add_argument(flag, dest=flagged.dest, action="store_false", default=default,
                                help=help_text(flagged))
        elif field.kind == "flag":
            parser.add_argument(flag, dest=flagged.dest, action="store_true", default=default,
                                help=help_text(flagged))
        else:
            parser.add_argument(flag, dest=flagged.dest, default=default,
                                action="append" if field.info.repeat else "store",
                                metavar=field.info.metavar or _metavar(flagged),
                                help=help_text(flagged))


def _metavar(flagged: Flagged) -> str:
    return flagged.flag.removeprefix("--").upper().replace("-", "_")


def _option_pairs(pairs: list[str]) -> dict[str, str]:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--backend-option {pair!r}: expected KEY=VALUE")
        options[key.strip()] = value
    return options


def _insert(values: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for part in path[:-1]:
        values = values.setdefault(part, {})
    values[path[-1]] = value


def config_values(args: argparse.Namespace, cls: type = RunConfig) -> dict[str, Any]:
    """The values the command line gave, as nested ``{field: value}`` (text, unchecked)."""
    values: dict[str, Any] = {}
    for flagged in flagged_fields(cls):
        if not hasattr(args, flagged.dest):
            continue
        value = getattr(args, flagged.dest)
        if flagged.path[-1] == "options":
            value = _option_pairs(value or [])
        elif flagged.path[-1] in ("mirrors", "model_mirrors"):
            value = tuple(Path(v).expanduser().absolute() for v in value)
        elif flagged.field.kind == "path" and isinstance(value, str):
            value = Path(value).expanduser().absolute()  # as the user typed it, from here
        _insert(values, flagged.path, value)
    return values


def flag_of(cls: type = RunConfig) -> Callable[[str], str]:
    """``"backend_settings.intra_op_threads"`` -> ``"--threads"`` (for errors)."""
    flags = {".".join(f.path): f.flag for f in flagged_fields(cls)}

    def name(path: str) -> str:
        return flags.get(path, path)

    return name


def config_from_args(args: argparse.Namespace, cls: type = RunConfig,
                     **fixed: Any) -> Any:
    """The checked config the command line describes (``fixed``: values the command sets
    itself, e.g. the mode of ``accuracy``; a ``--settings`` file under the flags);
    ConfigError names the flag, or the file and key."""
    values: dict[str, Any] = {}
    settings_file = getattr(args, "cfg_settings_file", None)
    if settings_file is not None:
        values = settings_file_values(Path(settings_file), cls)
    values = _merged(values, config_values(args, cls))
    values.update(fixed)
    return build(cls, values, flag_of(cls))


def _merged(under: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``under``, nested tables merged key by key."""
    merged = dict(under)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


def settings_file_values(path: Path, cls: type = RunConfig) -> dict[str, Any]:
    """The settings a TOML file gives, keyed as a sweep file's ``[base]`` (``batch_size``,
    ``threads``, ``backend_options = {...}``), each checked by its declaration; nested
    ``{field: value}`` as :func:`config_values` returns."""
    import tomllib

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the settings file ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    table = data.get("settings", data)  # a [settings] table, or keys at the top
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [settings] must be a table of setting = value")
    keys = sweep_keys(cls)
    values: dict[str, Any] = {}
    for key, value in table.items():
        if not isinstance(key, str) or key.startswith("_"):
            continue
        if key not in keys:
            close = difflib.get_close_matches(key, list(keys), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(f"{path}: unknown setting {key!r}{hint}")
        flagged = keys[key]
        if key == "backend_options":
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: backend_options must be a table of option = value")
            value = dict(value)
        else:
            try:
                check_value(flagged.field, value)
            except SettingValueError as exc:
                raise ConfigError(f"{path}: {key}: {exc}, got {value!r}") from None
        _insert(values, flagged.path, value)
    return values


def config_argv(config: Any, exclude: tuple[str, ...] = ()) -> list[str]:
    """The flags that give ``config`` again (the inverse of :func:`config_from_args`): a
    child run gets exactly these settings (``exclude``: flags its command does not take)."""
    argv: list[str] = []
    for flagged in flagged_fields(type(config)):
        if flagged.flag in exclude:
            continue
        value: Any = config
        for part in flagged.path:
            value = getattr(value, part)
        field = flagged.field
        if field.info.invert:
            argv += [flagged.flag] if value is False else []
        elif field.kind == "flag":
            argv += [flagged.flag] if value else []
        elif flagged.path[-1] == "options":
            for key, option in value.items():
                argv += [flagged.flag, f"{key}={option_text(option)}"]
        elif field.info.repeat:
            for item in value:
                argv += [flagged.flag, str(item)]
        elif value is None:
            argv += [flagged.flag, "0"] if field.info.zero_means_none else []
        else:
            argv += [flagged.flag, f"{value:g}" if isinstance(value, float) else str(value)]
    return argv


def config_record(config: Any) -> dict[str, Any]:
    """The resolved config as ``settings.json`` records it (every declared field)."""
    return dataclasses.asdict(config)


def settings_table(cls: type = RunConfig) -> list[tuple[str, str, str, str]]:
    """``(flag, sweep key, accepts, help)`` of every setting, for ``python -m harness
    settings`` and ``make help``."""
    rows = []
    for flagged in flagged_fields(cls):
        field = flagged.field
        key = flagged.sweep_key if field.info.sweep else ""
        if key and field.info.sweep == "base":
            key += " (base)"
        accepts = "switch" if field.kind == "flag" else field.accepts()
        rows.append((flagged.flag, key, accepts + _default_text(flagged).replace(";", ","),
                     field.info.help))
    return rows
