"""LoadGen test settings, the LoadGen 6 way.

mlperf.conf is built into LoadGen 6; the harness calls ``TestSettings.FromConfig`` exactly
once, with one user.conf that it writes beside the results: the user's file verbatim,
followed by the lines the harness adds (a rule set's values, a smaller query sample library,
the short-run setting). What LoadGen read is therefore always on disk next to its logs. A
compliance test's audit.config is read after it, as LoadGen's StartTest reads one (config
type 2, which LoadGen does not count as a second user.conf), and kept beside the logs too.

The user's file is checked before LoadGen sees it (:func:`check_user_conf`), the way
LoadGen 6.0.17's ``TestSettings::FromConfig`` parses it (``loadgen/test_settings_internal.cc``):
errors name the user's file and line, not the copy LoadGen reads, and lines LoadGen would
silently ignore (an unknown key, a key it takes only from mlperf.conf, another benchmark's
model, a misspelt scenario) are warned about.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from pathlib import Path

from common.errors import ConfigError, HarnessWarning
from harness.loadgen.scenarios import EXPECTATION_BOUNDS, MODES, SCENARIOS, TABLE, scenario

LOADGEN_MODEL = "bert"  # the benchmark name mlperf.conf knows

# Short-run setting: enough to see a real LoadGen run in about ten seconds of timed work per
# scenario on a laptop. The results are INVALID for a submission (the real minimum is 600 s
# and, for BERT, 10833 Offline samples or 270336 Server queries), and are marked as such.
# Each scenario keeps the floor of queries its early stopping needs (the scenario table).
SHORT_RUN_LINES = {
    name: (f"*.{name}.min_duration = 10000",
           f"*.{name}.min_query_count = {entry.short_min_queries}")
    for name, entry in TABLE.items()
}
# Also in LoadGen's own defaults: the most samples the QSL holds in memory at once for BERT.
MLPERF_PERFORMANCE_SAMPLE_COUNT = 10833


# The keys FromConfig looks up in a user.conf, by how it reads their value: "int" with
# strtoull (a fraction or exponent is cut off at the '.' or 'e'), "float" with strtod.
# target_latency is an integer for Server, a float for SingleStream and MultiStream.
USER_CONF_KEYS: dict[str, str] = {
    **dict.fromkeys(
        (
            "mode", "use_token_latencies", "ttft_latency", "tpot_latency",
            "infer_token_latencies", "token_latency_scaling_factor", "samples_per_query",
            "performance_issue_unique", "performance_issue_same",
            "performance_issue_same_index", "sample_concatenate_permutation",
            "coalesce_queries", "max_async_queries", "min_duration", "max_duration",
            "min_query_count", "max_query_count", "performance_sample_count_override",
            "accuracy_sample_count_override", "print_timestamps", "accuracy_log_rng_seed",
            "accuracy_log_sampling_target",
        ),
        "int",
    ),
    **dict.fromkeys(("target_qps", "target_latency", "target_latency_percentile"), "float"),
}
# Keys FromConfig reads from its built-in mlperf.conf only: in a user.conf they do nothing.
MLPERF_CONF_ONLY_KEYS = frozenset((
    "qsl_rng_seed", "sample_index_rng_seed", "schedule_rng_seed", "accuracy_log_probability",
    "test05", "test05_qsl_rng_seed", "test05_sample_index_rng_seed", "test05_schedule_rng_seed",
))
PERCENT_KEYS = frozenset(("target_latency_percentile",))  # LoadGen multiplies them by 0.01
MAX_CONF_INT = 2**63 - 1  # past this LoadGen's strtoull saturates or wraps
_INT_VALUE = re.compile(r"\+?(0[xX][0-9a-fA-F]+|[0-9]+)")
_FLOAT_VALUE = re.compile(r"\+?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
# What strtoull or strtod reads whole: LoadGen's test for a value of any key.
_C_NUMBER = re.compile(
    r"[+-]?(0[xX]([0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)([pP][+-]?[0-9]+)?"
    r"|([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|(?i:inf|infinity|nan(\([0-9a-zA-Z_]*\))?))"
)
_C_SPACE = re.compile(r"[ \t\n\v\f\r]+")  # what C's isspace() calls whitespace
USER_CONF_FORM = "'model.Scenario.key = value' (model 'bert' or '*', scenario or '*')"


class UserConfWarning(HarnessWarning):
    """A user.conf line LoadGen would accept but ignore for this benchmark."""


def check_user_conf(path: Path) -> str:
    """Read and check the user's user.conf; return its text.

    Raises :class:`ConfigError` naming ``path`` (and the line) for a file that cannot be
    read, is not UTF-8 text, or has a line other than a comment, a blank or ``model.Scenario
    .key = value`` with a non-negative number LoadGen reads as the key needs. Lines LoadGen
    would ignore warn with :class:`UserConfWarning`.
    """
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read user.conf ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}: not a text user.conf (byte {exc.start}, line {line}, is not UTF-8); "
            f"it holds lines {USER_CONF_FORM}"
        ) from None
    # lines and words as LoadGen's std::getline and operator>> see them
    for number, line in enumerate(text.split("\n"), start=1):
        _check_conf_line(path, number, line)
    return text


def _check_conf_line(path: Path, number: int, line: str) -> None:
    where = f"{path}, line {number}"
    if "\x00" in line:
        raise ConfigError(f"{where}: binary data (a NUL byte); not a text user.conf")
    tokens = [token for token in _C_SPACE.split(line) if token]
    if not tokens or tokens[0] == "#" or (len(tokens) == 1 and tokens[0].startswith("#")):
        return  # blank or comment (a lone "#word" is ignored by LoadGen too)
    shown = line.strip() if len(line.strip()) <= 60 else line.strip()[:57] + "..."
    if tokens[0].startswith("#"):
        raise ConfigError(
            f"{where}: {shown!r}: LoadGen reads a comment only when its '#' stands apart "
            "('# text'); it refuses this line"
        )
    if len(tokens) > 3 and tokens[3].startswith("#"):
        raise ConfigError(
            f"{where}: {shown!r}: LoadGen refuses a comment after the value; put it on a "
            "line of its own"
        )
    if len(tokens) != 3 or tokens[1] != "=" or tokens[0].count(".") != 2:
        raise ConfigError(f"{where}: {shown!r} is not {USER_CONF_FORM}")
    model, scenario, key = tokens[0].split(".")
    value = tokens[2]
    if not (model and scenario and key):
        raise ConfigError(f"{where}: {shown!r} is not {USER_CONF_FORM}")
    kind = USER_CONF_KEYS.get(key)
    if kind == "float" and key == "target_latency" and scenario == "Server":
        kind = "int"  # LoadGen reads Server's target_latency as an integer (ms)
    if kind is not None:
        _check_conf_value(where, key, value, kind)
    elif not _C_NUMBER.fullmatch(value):  # LoadGen refuses the whole file for any key
        raise ConfigError(f"{where}: {key} = {value}: the value must be a number")
    if key in MLPERF_CONF_ONLY_KEYS:
        _warn(f"{where}: {key} is read from LoadGen's built-in mlperf.conf only; "
              "this line is ignored")
    elif kind is None:
        _warn(f"{where}: unknown key {key!r}: LoadGen ignores this line")
    elif model not in (LOADGEN_MODEL, "*"):
        _warn(f"{where}: model {model!r} is not {LOADGEN_MODEL!r} (or '*'): LoadGen ignores "
              "this line for this benchmark")
    elif scenario not in (*SCENARIOS, "*"):
        _warn(f"{where}: unknown scenario {scenario!r} (one of {', '.join(SCENARIOS)} or '*'): "
              "LoadGen ignores this line")
    elif key == "mode":
        _warn(f"{where}: mode overrides the test mode the harness asks LoadGen for "
              "(performance or accuracy); leave it out and use --mode")


def _check_conf_value(where: str, key: str, value: str, kind: str) -> None:
    """Refuse what LoadGen would misread: negatives (strtoull wraps them), fractions of
    integer keys (cut off), octal-looking integers, words; percentiles outside (0, 100]."""
    if value.startswith("-"):
        raise ConfigError(f"{where}: {key} = {value}: a negative value is not allowed")
    integer = _INT_VALUE.fullmatch(value)
    if kind == "int" and integer and len(integer.group(1)) > 1 and \
            integer.group(1)[0] == "0" and integer.group(1)[1] not in "xX":
        raise ConfigError(f"{where}: {key} = {value}: LoadGen reads a leading 0 as octal; "
                          "write the number without it")
    if kind == "int" and not integer:
        hint = " (LoadGen would cut it off at the '.' or 'e')" if _FLOAT_VALUE.fullmatch(
            value) else ""
        raise ConfigError(f"{where}: {key} = {value}: expected a non-negative whole number{hint}")
    if kind == "float" and not integer and not _FLOAT_VALUE.fullmatch(value):
        raise ConfigError(f"{where}: {key} = {value}: expected a non-negative number")
    number = int(value, 16) if integer and value.lower().lstrip("+").startswith("0x") \
        else float(value)
    if key in PERCENT_KEYS and not 0 < number <= 100:
        raise ConfigError(f"{where}: {key} = {value}: expected a percentile in (0, 100]")
    if key in EXPECTATION_BOUNDS:
        low, high, unit = EXPECTATION_BOUNDS[key]
        if not low < number <= high:
            raise ConfigError(f"{where}: {key} = {value}: expected a number above {low:g}, at "
                              f"most {high:,.0f} ({unit})")
    if kind == "int" and number > MAX_CONF_INT:
        raise ConfigError(f"{where}: {key} = {value}: expected a whole number of at most "
                          f"{MAX_CONF_INT:,}")


def _warn(message: str) -> None:
    warnings.warn(message, UserConfWarning, stacklevel=4)


def check_scenario(name: str) -> str:
    """Return the scenario name, or raise ConfigError listing the valid ones."""
    return scenario(name).name


def expected_lines(name: str, expected: dict[str, float] | None) -> list[str]:
    """user.conf lines for what a backend that models its own timing says it will do
    (``backends.device.TimedDevice.expected_performance``): the expectation that sizes the
    scenario's test (Offline ``target_qps``; SingleStream and MultiStream ``target_latency``,
    a MultiStream query of 8 samples being the latency plus 7 more samples at the planned
    rate). Server's ``target_qps`` is the load asked for, never an expectation."""
    if not expected:
        return []
    entry = scenario(name)
    rate, latency = expected.get("samples_per_s"), expected.get("latency_s")
    if entry.scheduled:
        return []
    if entry.expectation == "target_qps" and rate:
        return [f"{LOADGEN_MODEL}.{name}.target_qps = {rate:.6g}"]
    if entry.expectation == "target_latency" and latency:
        extra = (entry.samples_per_query - 1) / rate if rate else 0.0
        if entry.samples_per_query > 1 and not rate:
            return []
        return [f"{LOADGEN_MODEL}.{name}.target_latency = {(latency + extra) * 1e3:.6g}"]
    return []


def command_line_lines(name: str, target_qps: float | None,
                       target_latency_ms: float | None) -> list[str]:
    """user.conf lines for ``--target-qps`` and ``--target-latency-ms``: each sets the
    expectation of the scenarios it applies to (the scenario table) and is ignored by the
    others."""
    entry = scenario(name)
    value = target_qps if entry.expectation == "target_qps" else target_latency_ms
    return [] if value is None else [f"{LOADGEN_MODEL}.{name}.{entry.expectation} = {value:.6g}"]


def resolved_user_conf(
    user_conf: Path | None, scenario: str, qsl_size: int, short_run: bool,
    rules_lines: Sequence[str] = (), rules_name: str = "",
    expected: Sequence[str] = (), expected_from: str = "",
    command_line: Sequence[str] = (),
) -> str:
    """Text of the single user.conf LoadGen will read for this run.

    ``expected`` (:func:`expected_lines` of the backend ``expected_from``), then
    ``command_line`` (:func:`command_line_lines`) and then ``rules_lines`` (a rule set's
    values, see ``harness.loadgen.rules``) come after the user's file, so that they win,
    and before the harness's own lines.
    """
    check_scenario(scenario)
    parts: list[str] = []
    if user_conf is not None:
        parts.append(f"# --- from {user_conf}\n" + check_user_conf(user_conf))
    if expected:
        parts.append(f"# --- expected performance: {expected_from} (added by the harness)\n"
                     + "\n".join(expected) + "\n")
    if command_line:
        parts.append("# --- from the command line (--target-qps, --target-latency-ms)\n"
                     + "\n".join(command_line) + "\n")
    if rules_lines:
        parts.append(f"# --- rules {rules_name} (added by the harness)\n"
                     + "\n".join(rules_lines) + "\n")
    added: list[str] = []
    if qsl_size < MLPERF_PERFORMANCE_SAMPLE_COUNT:
        # A QSL smaller than mlperf.conf's 10833 (--max-examples): LoadGen must not index past it.
        added.append(f"*.*.performance_sample_count_override = {qsl_size}")
    if short_run:
        added.extend(SHORT_RUN_LINES[scenario])
    if added:
        parts.append("# --- added by the harness\n" + "\n".join(added) + "\n")
    return "\n".join(parts)


def make_test_settings(conf_path: Path, scenario: str, mode: str,
                       audit_config: Path | None = None, overrides: dict | None = None):
    """Build ``mlperf_loadgen.TestSettings`` from the resolved user.conf (one FromConfig call).

    ``audit_config``: a compliance test's audit.config, read after the user.conf the way
    LoadGen's StartTest reads one it finds in the working directory (model ``*``, config
    type 2). ``overrides``: attributes set last, e.g. RNG seeds, which LoadGen 6 takes from
    neither file.
    """
    import mlperf_loadgen as lg

    check_scenario(scenario)
    if mode not in MODES:
        raise ConfigError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    settings = lg.TestSettings()
    settings.scenario = getattr(lg.TestScenario, scenario)
    settings.mode = (
        lg.TestMode.AccuracyOnly if mode == "accuracy" else lg.TestMode.PerformanceOnly
    )
    # FromConfig reports problems through its return code, not an exception.
    status = settings.FromConfig(str(conf_path), LOADGEN_MODEL, scenario)
    if status != 0:
        raise ConfigError(
            f"{conf_path}: LoadGen rejected this user.conf (FromConfig returned {status}); "
            "check its lines have the form 'model.Scenario.key = value'"
        )
    if audit_config is not None:
        status = settings.FromConfig(str(audit_config), "*", scenario, 2)
        if status != 0:
            raise ConfigError(f"{audit_config}: LoadGen rejected this audit.config "
                              f"(FromConfig returned {status})")
    for name, value in (overrides or {}).items():
        setattr(settings, name, value)
    return settings
