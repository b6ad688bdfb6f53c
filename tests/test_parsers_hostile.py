"""Every parser of a file a user hands in survives hostile and random input (issue 25, item 7).

user.conf, sweep files, submission description files, wafer spec TOMLs and ``--settings``
files: Hypothesis generates random bytes, random TOML and TOML near the real keys with hostile
values (``nan``, ``inf``, ``1e300``, ``-1``, ``0``, ``../..``, non-ASCII, dates, nesting). The
property: the parser either accepts the file or raises the one error type the command line
prints as one ``error:`` line (exit 2); never another exception (a traceback), never a hang,
and the memory it takes stays bounded. What an accepted file yields is used the way the
command uses it (a sweep's points, a description's JSON), so a late traceback is caught too.
(The checker's own parsers: tests/test_checker_hostile.py.)
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import subprocess
import sys
import tomllib
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backends.base import BackendError
from backends.wafer.spec import FIELDS as WAFER_FIELDS
from backends.wafer.spec import KINDS, load_spec
from common.errors import HarnessError
from harness.config import RunConfig, settings_file_values, sweep_keys
from harness.loadgen.results import parse_detail_log
from harness.loadgen.settings import USER_CONF_KEYS, check_user_conf
from harness.submission import system_desc
from harness.submission.tree import SubmissionConfig, _plan, read_description_file
from harness.sweep.plan import base_conf_text, expand
from harness.sweep.spec import AXES, BASE_ONLY, load_sweep
from squad.postprocess import read_accuracy_log

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # warnings are allowed
REPO = Path(__file__).resolve().parents[1]
MEMORY_BOUND = 64 << 20  # bytes a parser may allocate for a file of at most a few kB
FAST = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

# ---- hostile values and TOML text ---------------------------------------------------------

HOSTILE_NUMBERS = st.sampled_from([0, -1, 1, 2**63 - 1, -(2**63), 0.0, -0.0, 1e300, -1e300,
                                   1e-300, math.inf, -math.inf, math.nan, 0.5, 3])
HOSTILE_TEXT = st.sampled_from(["", "..", "../../..", "/etc", "a/b", ".hidden", "~", "Système",
                                "nan", "inf", "-1", "1e300", "Server", "Offline", "null",
                                "x" * 300, "\x00", "\u202e", "bert.Offline"])
SCALARS = st.one_of(HOSTILE_NUMBERS, HOSTILE_TEXT, st.integers(), st.floats(),
                    st.text(max_size=20), st.booleans(),
                    st.datetimes(min_value=datetime.datetime(1, 1, 1)), st.dates())
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12)


def toml_value(value: Any) -> str:
    """``value`` as TOML (inline tables for dicts); strings as JSON strings, which TOML reads
    the same except for lone surrogates, themselves hostile input."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") \
            if math.isinf(value) else repr(value)
    if isinstance(value, (int, datetime.date)):
        return value.isoformat() if isinstance(value, datetime.date) else str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def toml_text(tables: dict[str, dict[str, Any]], top: dict[str, Any] | None = None) -> str:
    lines = [f"{json.dumps(k)} = {toml_value(v)}" for k, v in (top or {}).items()]
    for name, table in tables.items():
        lines.append(f"[{json.dumps(name)}]")
        lines += [f"{json.dumps(k)} = {toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def near(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """A table of real keys (and a few invented ones) with hostile values."""
    return st.dictionaries(st.one_of(st.sampled_from(keys), st.text(max_size=10)), VALUES,
                           max_size=6)


RANDOM_BYTES = st.binary(max_size=2000)


def survives(parse: Callable[[Path], Any], path: Path, errors: tuple[type, ...]) -> None:
    """``parse(path)`` accepts the file or raises one of ``errors`` with a one-line message,
    allocating at most :data:`MEMORY_BOUND`."""
    tracemalloc.start()
    try:
        parse(path)
    except errors as exc:
        message = str(exc)
        assert message and "Traceback" not in message
        assert "\n" not in message.strip(), message
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < MEMORY_BOUND, f"{peak} bytes"


# ---- user.conf ----------------------------------------------------------------------------

CONF_LINE = st.one_of(
    st.builds(lambda m, s, k, v: f"{m}.{s}.{k} = {v}",
              st.sampled_from(["bert", "*", "resnet", "", "bert.x"]),
              st.sampled_from(["Offline", "Server", "SingleStream", "MultiStream", "*", "x"]),
              st.sampled_from([*USER_CONF_KEYS, "no_such_key", ""]),
              st.one_of(HOSTILE_NUMBERS.map(str), HOSTILE_TEXT)),
    st.text(max_size=40), st.just("# a comment"), st.just(""))


@FAST
@given(lines=st.lists(CONF_LINE, max_size=8))
def test_user_conf_lines(tmp_path: Path, lines: list[str]) -> None:
    path = tmp_path / "user.conf"
    path.write_text("\n".join(lines), encoding="utf-8", errors="surrogatepass")
    survives(check_user_conf, path, (HarnessError,))


@FAST
@given(data=RANDOM_BYTES)
def test_user_conf_bytes(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "user.conf"
    path.write_bytes(data)
    survives(check_user_conf, path, (HarnessError,))


# ---- sweep files --------------------------------------------------------------------------

def _sweep_then_points(path: Path) -> None:
    spec = load_sweep(path)
    expand(spec, base_conf_text(spec))  # what a sweep does next with an accepted file


@FAST
@given(head=near(["name", "description", "combine"]),
       base=near([*AXES, *BASE_ONLY]), points=near([*AXES, "backend_options"]),
       extra=st.dictionaries(st.sampled_from(["peak", "report", "other"]), near(["method"]),
                             max_size=2))
def test_sweep_files(tmp_path: Path, head: dict, base: dict, points: dict, extra: dict) -> None:
    path = tmp_path / "sweep.toml"
    path.write_text(toml_text({"sweep": head, "base": base, "points": points, **extra}),
                    encoding="utf-8", errors="surrogatepass")
    survives(_sweep_then_points, path, (HarnessError,))


@FAST
@given(data=RANDOM_BYTES)
def test_sweep_file_bytes(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "sweep.toml"
    path.write_bytes(data)
    survives(_sweep_then_points, path, (HarnessError,))


# ---- submission description files ---------------------------------------------------------

def _description_then_json(path: Path) -> None:
    """As ``harness submission --description`` reads it: the plan, then the description."""
    user = read_description_file(path)
    plan = _plan(SubmissionConfig(run=RunConfig(backend="null"), description_file=path))
    identity = {"division": plan.division, "submitter": plan.submitter,
                "status": plan.status, "system_name": plan.system,
                "system_type": plan.system_type}
    description, _ = system_desc.describe_system(identity, {}, user.get("system", {}))
    json.dumps(description)
    json.dumps(user.get("measurements", {}))


@FAST
@given(top=near(["submitter", "division", "system_type", "status", "implementation"]),
       system=near([*system_desc.FIELDS]), measurements=near(["retraining", "input_data_types"]))
def test_description_files(tmp_path: Path, top: dict, system: dict, measurements: dict) -> None:
    path = tmp_path / "submission.toml"
    path.write_text(toml_text({"system": system, "measurements": measurements}, top),
                    encoding="utf-8", errors="surrogatepass")
    survives(_description_then_json, path, (HarnessError,))


@FAST
@given(data=RANDOM_BYTES)
def test_description_file_bytes(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "submission.toml"
    path.write_bytes(data)
    survives(_description_then_json, path, (HarnessError,))


# ---- wafer specs --------------------------------------------------------------------------

REAL_SPEC = (REPO / "backends" / "wafer" / "specs" / "wse2.toml").read_text(encoding="utf-8")
FIELD = st.fixed_dictionaries({}, optional={
    "value": st.one_of(HOSTILE_NUMBERS, VALUES), "kind": st.one_of(st.sampled_from(KINDS),
                                                                    VALUES),
    "source": VALUES})


@FAST
@given(fields=st.dictionaries(st.sampled_from([*WAFER_FIELDS, "other"]), st.one_of(FIELD, VALUES),
                              max_size=8),
       top=near(["name", "title"]))
def test_wafer_spec_files(tmp_path: Path, fields: dict, top: dict) -> None:
    """The real spec with some fields replaced by hostile ones."""
    data = {**tomllib.loads(REAL_SPEC), **top, **fields}
    path = tmp_path / "spec.toml"
    path.write_text(toml_text({k: v for k, v in data.items() if isinstance(v, dict)},
                              {k: v for k, v in data.items() if not isinstance(v, dict)}),
                    encoding="utf-8", errors="surrogatepass")
    survives(load_spec, path, (BackendError, HarnessError))


@FAST
@given(data=RANDOM_BYTES)
def test_wafer_spec_bytes(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "spec.toml"
    path.write_bytes(data)
    survives(load_spec, path, (BackendError, HarnessError))


# ---- --settings files ---------------------------------------------------------------------

@FAST
@given(table=near([*sweep_keys(RunConfig)]), wrapped=st.booleans())
def test_settings_files(tmp_path: Path, table: dict, wrapped: bool) -> None:
    path = tmp_path / "settings.toml"
    text = toml_text({"settings": table}) if wrapped else toml_text({}, table)
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    survives(settings_file_values, path, (HarnessError,))


@FAST
@given(data=RANDOM_BYTES)
def test_settings_file_bytes(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "settings.toml"
    path.write_bytes(data)
    survives(settings_file_values, path, (HarnessError,))


# ---- the command line says it in one line -------------------------------------------------

CORRUPT = {"user.conf": b"bert.Offline.target_qps = nan\n",
           "sweep.toml": b"[sweep]\nname = 1979-05-27\n",
           "settings.toml": b"batch_size = inf\n",
           "spec.toml": b"\xff\xfe[grid_x]\n"}


@pytest.mark.parametrize("name, argv", [
    ("user.conf", ["run", "--backend", "null", "--user-conf", "{path}"]),
    ("sweep.toml", ["sweep", "{path}", "--list"]),
    ("settings.toml", ["run", "--backend", "null", "--settings", "{path}"]),
    ("spec.toml", ["run", "--backend", "wafer", "--backend-option", "spec={path}"]),
])
def test_the_command_line_prints_one_error_line(tmp_path: Path, name: str,
                                                argv: list[str]) -> None:
    path = tmp_path / name
    path.write_bytes(CORRUPT[name])
    (tmp_path / "user.conf").exists() or (tmp_path / "user.conf").write_text("")
    done = subprocess.run([sys.executable, "-m", "harness",
                           *(a.format(path=path) for a in argv), "--no-download"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.count("error: ") == 1, done.stderr
    assert str(path) in done.stderr


def test_the_helpers_write_what_tomllib_reads() -> None:
    """The generator itself: a plain table round-trips (so the tests feed real TOML)."""
    table = {"a": 1, "b": "../x", "c": [1.5, True], "d": {"e": "Système"}}
    assert tomllib.loads(toml_text({"t": table})) == {"t": table}
    assert dataclasses.is_dataclass(RunConfig)


# ---- LoadGen's detail log as the harness reads it back (sweeps, compare, results) ----------

JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
              st.text(max_size=12)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=8)
DETAIL_KEYS = ["result_validity", "result_invalid_reason", "result_samples_per_second",
               "result_completed_samples_per_sec", "result_qps_with_loadgen_overhead",
               "effective_samples_per_query", "result_query_count",
               "result_99.00_percentile_latency_ns", "result_min_latency_ns",
               "result_min_duration_met", "early_stopping_result"]
MLLOG_LINE = st.one_of(
    st.builds(lambda k, v, m: ":::MLLOG " + json.dumps({"key": k, "value": v, "metadata": m}),
              st.one_of(st.sampled_from(DETAIL_KEYS), JSON_VALUES), JSON_VALUES, JSON_VALUES),
    st.text(max_size=40).map(lambda t: ":::MLLOG " + t), st.text(max_size=40))


@FAST
@given(lines=st.lists(MLLOG_LINE, max_size=10))
def test_detail_logs_read_back(tmp_path: Path, lines: list[str]) -> None:
    path = tmp_path / "mlperf_log_detail.txt"
    path.write_text("\n".join(lines), encoding="utf-8", errors="surrogatepass")
    survives(lambda p: parse_detail_log(p, "Offline", "performance"), path, (HarnessError,))


# ---- LoadGen's accuracy log (harness score, accuracy runs, the submission's rescoring) ------

ACCURACY_ENTRY = st.one_of(
    st.fixed_dictionaries({"qsl_idx": st.one_of(st.integers(-2, 10), JSON_VALUES),
                           "data": st.one_of(st.binary(max_size=24).map(bytes.hex),
                                             st.text(max_size=12), JSON_VALUES)}),
    JSON_VALUES)


@FAST
@given(entries=st.one_of(st.lists(ACCURACY_ENTRY, max_size=6), JSON_VALUES),
       deep=st.integers(0, 3000))
def test_accuracy_logs(tmp_path: Path, entries: Any, deep: int) -> None:
    path = tmp_path / "mlperf_log_accuracy.json"
    text = json.dumps(entries) if deep < 2000 else "[" * deep + "]" * deep
    path.write_text(text, encoding="utf-8")
    survives(read_accuracy_log, path, (HarnessError,))
