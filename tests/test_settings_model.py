"""Every setting is declared once (harness.config, common.settings, each backend's Options):
the command line, the sweep file, settings.json and the checks all come from that one
declaration, and every numeric field refuses hostile values in one line."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic.dataclasses import dataclass as pydantic_dataclass

from backends import BackendError, BackendSettings
from backends.null import NullBackend, NullOptions
from common.errors import ConfigError
from common.settings import STRICT, Whole, setting
from harness.config import (
    RunConfig,
    add_arguments,
    config_from_args,
    config_record,
    flagged_fields,
    settings_table,
)
from harness.sweep.spec import load_sweep

REPO = Path(__file__).resolve().parents[1]
HOSTILE = ("nan", "inf", "-1", "0", "1e300", "word")


@pydantic_dataclass(frozen=True, config=STRICT)
class ProbeConfig(RunConfig):
    """RunConfig plus one test-only setting: nothing else is edited."""

    probe_level: Whole = setting(3, flag="--probe-level", sweep="axis", ge=1, le=9,
                                 unit="steps", help="a setting only this test declares")


def parse(cls: type, *argv: str):
    parser = argparse.ArgumentParser()
    add_arguments(parser, cls)
    return config_from_args(parser.parse_args(list(argv)), cls)


def test_a_new_run_setting_is_one_declaration(tmp_path: Path) -> None:
    """Declared once, the setting is a flag, a sweep key and part of settings.json."""
    config = parse(ProbeConfig, "--probe-level", "5", "--scenario", "offline")
    assert config.probe_level == 5 and config.scenario == "Offline"
    assert json.loads(json.dumps(config_record(config), default=str))["probe_level"] == 5
    with pytest.raises(ConfigError, match=r"^--probe-level: got '12'; expected a whole number "
                       r"from 1 to 9 \(steps\)$"):
        parse(ProbeConfig, "--probe-level", "12")
    sweep = tmp_path / "probe.toml"
    sweep.write_text("[base]\nprobe_level = 2\n[points]\nprobe_level = [1, 4]\n")
    spec = load_sweep(sweep, ProbeConfig)
    assert spec.base["probe_level"] == 2 and spec.axes[0].values == (1, 4)
    sweep.write_text("[points]\nprobe_level = [1, 10]\n")
    with pytest.raises(ConfigError, match=r"\[points\] probe_level: expected a whole number "
                       r"from 1 to 9 \(steps\), got 10"):
        load_sweep(sweep, ProbeConfig)
    assert any(row[0] == "--probe-level" for row in settings_table(ProbeConfig))
    # and the real RunConfig does not have it: the sweep refuses the key
    sweep.write_text("[points]\nprobe_level = [1]\n")
    with pytest.raises(ConfigError, match="unknown key 'probe_level'"):
        load_sweep(sweep)


def test_a_new_backend_option_is_one_declaration() -> None:
    @pydantic_dataclass(frozen=True, config=STRICT)
    class ProbeOptions(NullOptions):
        probe_depth: Whole = setting(2, ge=1, le=8, unit="levels", help="test only")

    class ProbeBackend(NullBackend):
        Options = ProbeOptions

    assert "probe_depth" in ProbeBackend.known_options
    assert ProbeBackend(BackendSettings(options={"probe_depth": "4"})).options.probe_depth == 4
    with pytest.raises(BackendError, match=r"option probe_depth: got '0'; expected a whole "
                       r"number from 1 to 8 \(levels\)"):
        ProbeBackend(BackendSettings(options={"probe_depth": "0"}))


NUMERIC = [f for f in flagged_fields() if f.field.kind in ("whole", "number")]


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize("field", NUMERIC, ids=[f.flag for f in NUMERIC])
def test_every_numeric_flag_refuses_hostile_values_in_one_line(field, value: str) -> None:
    declared = field.field
    low = declared.ge if declared.ge is not None else declared.gt
    accepted = (value == "0" and (declared.ge == 0 or declared.info.zero_means_none)) or \
        (value == "-1" and low is not None and low <= -1)
    if accepted:
        assert parse(RunConfig, field.flag, value) is not None
        return
    with pytest.raises(ConfigError) as raised:
        parse(RunConfig, field.flag, value)
    message = str(raised.value)
    assert message.startswith(f"{field.flag}: got ") and "\n" not in message
    assert declared.accepts() in message


@pytest.mark.parametrize("field", NUMERIC[:3], ids=[f.flag for f in NUMERIC[:3]])
def test_the_command_line_exits_2_with_one_error_line(field, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "harness", "run", field.flag, "1e300",
                           "--results-dir", str(tmp_path / "r")], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.count("error:") == 1 and "Traceback" not in done.stderr
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize("key", sorted(k for k, f in __import__(
    "harness.sweep.spec", fromlist=["AXES"]).AXES.items()))
def test_every_sweep_axis_refuses_hostile_values(key: str, value: str, tmp_path: Path) -> None:
    """A sweep file's value is checked by the same declaration (TOML numbers, and text)."""
    sweep = tmp_path / "s.toml"
    number = {"nan": "nan", "inf": "inf", "-1": "-1", "0": "0", "1e300": "1e300",
              "word": "'word'"}[value]
    sweep.write_text(f"[points]\n{key} = [{number}]\n")
    try:
        spec = load_sweep(sweep)
    except ConfigError as exc:
        assert "\n" not in str(exc) and f"[points] {key}" in str(exc)
        return
    # accepted: it must be a value the setting really takes
    accepted = spec.axes[0].values[0]
    assert value in ("0", "-1", "word") or key in ("model", "backend", "scenario", "device")
    assert accepted == 0 or accepted == -1 or isinstance(accepted, str)


@pytest.mark.parametrize("value", [*HOSTILE, "99999999999999999999999"])
@pytest.mark.parametrize("scenario", ["Offline", "Server", "SingleStream", "MultiStream"])
def test_user_conf_targets_refuse_hostile_values(scenario: str, value: str,
                                                 tmp_path: Path) -> None:
    """The user.conf's expectation of each scenario is bounded like the flags that set it."""
    from harness.loadgen.scenarios import TABLE
    from harness.loadgen.settings import check_user_conf

    key = TABLE[scenario].expectation
    conf = tmp_path / "user.conf"
    conf.write_text(f"bert.{scenario}.{key} = {value}\n")
    with pytest.raises(ConfigError) as raised:
        check_user_conf(conf)
    message = str(raised.value)
    assert message.startswith(f"{conf}, line 1: {key} = {value}: ") and "\n" not in message


def test_a_config_survives_the_command_line_both_ways(tmp_path: Path) -> None:
    """config_argv (what a child run gets) and config_from_args are inverses: a submission or
    sweep child runs exactly the settings it was given."""
    from harness.config import config_argv

    config = RunConfig(scenario="Server", backend="null", batch_size=4, short_run=True,
                       backend_settings=BackendSettings(intra_op_threads=2,
                                                        options={"delay_ms": 1.5}),
                       seq_bucket=None, target_qps=12.5, progress=False,
                       sort_by_length=False, results_dir=tmp_path / "r",
                       user_conf=tmp_path / "user.conf", max_run_minutes=7.0)
    again = parse(RunConfig, *config_argv(config))
    assert again.backend_settings.options == {"delay_ms": "1.5"}  # text, as typed
    assert again == RunConfig(**{**config.__dict__,
                                 "backend_settings": again.backend_settings})


def test_a_settings_file_gives_defaults_that_flags_override(tmp_path: Path) -> None:
    """--settings FILE (e.g. tune's tuned.toml): keys as a sweep's [base], checked by the
    same declarations; the command line wins; a bad key or value is one line."""
    tuned = tmp_path / "tuned.toml"
    tuned.write_text("[settings]\nbatch_size = 16\nthreads = 2\n"
                     "backend_options = { instances = 2 }\n")
    config = parse(RunConfig, "--settings", str(tuned), "--threads", "1",
                   "--backend-option", "arena=off")
    assert config.batch_size == 16 and config.backend_settings.intra_op_threads == 1
    assert config.backend_settings.options == {"instances": 2, "arena": "off"}
    tuned.write_text("batch_size = 0\n")
    with pytest.raises(ConfigError, match=r"tuned.toml: batch_size: expected a whole number "
                       r"from 1 to 65,536 \(samples\), got 0"):
        parse(RunConfig, "--settings", str(tuned))
    tuned.write_text("batchsize = 3\n")
    with pytest.raises(ConfigError, match="unknown setting 'batchsize' .did you mean "
                       "batch_size"):
        parse(RunConfig, "--settings", str(tuned))
