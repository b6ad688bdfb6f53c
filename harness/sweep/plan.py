"""A sweep's points as runs: each point's settings, id, ``run`` command line and user.conf.

A point is the base configuration with its axis values put in. Its id is readable (the axis
values) and unique to everything that decides its result (every setting and the text of the
base user.conf): a point whose id has a finished run is done, so editing the sweep file or
the user.conf re-runs exactly the points it changes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from pathlib import Path
from typing import Any

from common.errors import ConfigError
from common.files import slug
from harness.config import flagged_fields
from harness.loadgen.scenarios import TABLE
from harness.loadgen.settings import LOADGEN_MODEL
from harness.sweep.spec import OPTION_PREFIX, USER_CONF_AXES, SweepSpec, Value

# LoadGen's TestMode.FindPeakPerformance, as a user.conf reads it (harness.sweep.peak).
FIND_PEAK_MODE = 3
# How the ``run`` command line spells each sweep key (generated from harness.config).
FLAGS = {f.sweep_key: f for f in flagged_fields() if f.field.info.sweep
         and f.sweep_key != "backend_options"}
SHORT_NAMES = {"target_qps": "qps", "target_latency_ms": "lat", "batch_size": "bs",
               "threads": "t", "inter_threads": "it", "scenario": "", "backend": "",
               "min_duration_ms": "dur", "batch_wait_ms": "wait", "max_examples": "n"}


def number_text(value: Value) -> str:
    """A value as a user.conf, a command line and a folder name write it: ``40``, ``12.5``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:.6f}".rstrip("0").rstrip(".")
    return str(value)


@dataclasses.dataclass(frozen=True)
class Point:
    """One run of the sweep."""

    values: dict[str, Value]  # the axis values (``backend_options.NAME`` for options)
    settings: dict[str, Any]  # base with the values put in; options under backend_options
    id: str
    conf_text: str  # the base user.conf this point starts from ("" for none)
    find_peak_mode: bool = False  # LoadGen's own peak search, in this one run

    @property
    def label(self) -> str:
        """``target_qps=40 batch_size=1`` (``base`` for a sweep without axes)."""
        return " ".join(f"{k.removeprefix(OPTION_PREFIX)}={number_text(v)}"
                        for k, v in self.values.items()) or "base"

    @property
    def scenario(self) -> str:
        return self.settings.get("scenario", "Offline")

    def setting(self, name: str, default: Any = None) -> Any:
        if name.startswith(OPTION_PREFIX):
            return self.settings.get("backend_options", {}).get(name[len(OPTION_PREFIX):],
                                                                default)
        return self.settings.get(name, default)

    def numbers(self) -> dict[str, Any]:
        """Every setting by its plain name (options without their prefix), for formulas."""
        return {**{k: v for k, v in self.settings.items() if k != "backend_options"},
                **self.settings.get("backend_options", {})}

    def user_conf(self) -> str:
        """The point's user.conf: the base file, with the lines this point sets commented
        out, then this point's lines (specific ``bert.<Scenario>.key`` lines, which LoadGen
        prefers to the harness's ``*.<Scenario>`` short-run lines)."""
        own = {USER_CONF_AXES[k]: v for k, v in self.settings.items() if k in USER_CONF_AXES}
        own.update(self.settings.get("conf", {}))
        if self.find_peak_mode:
            own["mode"] = FIND_PEAK_MODE
        # --target-qps / --target-latency-ms set the scenario's expectation on the command
        # line (after this file, so they win); the base file's own line is commented out too
        expectation = TABLE[self.scenario].expectation  # target_qps or target_latency
        flag_key = "target_qps" if expectation == "target_qps" else "target_latency_ms"
        by_flag = {expectation: True} if self.settings.get(flag_key) is not None else {}
        lines = [f"# user.conf of sweep point {self.label} ({self.id})"]
        if self.conf_text:
            lines.append("# --- the base user.conf; what this point sets is commented out")
            for line in self.conf_text.splitlines():
                lines.append(f"# set by the sweep: {line}"
                             if self._sets(line, {**own, **by_flag}) else line)
        lines.append("# --- this point")
        for key, value in own.items():
            lines.append(f"{LOADGEN_MODEL}.{self.scenario}.{key} = {number_text(value)}")
        return "\n".join(lines) + "\n"

    def _sets(self, line: str, own: dict) -> bool:
        words = line.split()
        if len(words) != 3 or words[1] != "=" or words[0].count(".") != 2:
            return False
        _, scenario, key = words[0].split(".")
        return key in own and scenario in (self.scenario, "*")

    def run_args(self, results_dir: Path, conf_path: Path, extra: list[str]) -> list[str]:
        """``run`` and its flags for this point (``extra``: data flags from the command line)."""
        args = ["run"]
        for name, flagged in FLAGS.items():
            value = self.settings.get(name)
            if value is None or value is False:
                continue
            args += [flagged.flag] if value is True else [flagged.flag, number_text(value)]
        for key, value in self.settings.get("backend_options", {}).items():
            args += ["--backend-option", f"{key}={number_text(value)}"]
        args += ["--user-conf", str(conf_path), "--results-dir", str(results_dir),
                 "--no-progress", *self.settings.get("args", []), *extra]
        return args


def _merge(base: dict[str, Any], values: dict[str, Value]) -> dict[str, Any]:
    settings = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for name, value in values.items():
        if name.startswith(OPTION_PREFIX):
            settings.setdefault("backend_options", {})[name[len(OPTION_PREFIX):]] = value
        else:
            settings[name] = value
    settings.pop("user_conf", None)
    return settings


def _id(values: dict[str, Value], settings: dict[str, Any], conf_text: str,
        find_peak_mode: bool) -> str:
    identity = json.dumps({"settings": settings, "user_conf": conf_text,
                           "find_peak_mode": find_peak_mode}, sort_keys=True, default=str)
    digest = hashlib.sha1(identity.encode()).hexdigest()[:8]
    words = []
    for name, value in values.items():
        short = SHORT_NAMES.get(name, name.removeprefix(OPTION_PREFIX))
        words.append(f"{short}{number_text(value)}" if short else number_text(value))
    readable = slug("_".join(words)) if words else "base"
    return f"{readable[:80]}-{digest}"


def base_conf_text(spec: SweepSpec, cwd: Path | None = None) -> str:
    """The text of the base user.conf (``[base] user_conf``, default ``./user.conf`` when
    there is one; relative paths are the current folder's)."""
    name = spec.base.get("user_conf", "user.conf" if "user_conf" not in spec.base else None)
    if name is None:
        return ""
    path = Path(cwd or Path.cwd()) / name
    if not path.is_file():
        if "user_conf" in spec.base:
            raise ConfigError(f"{spec.path}: [base] user_conf: {path} not found")
        return ""
    return path.read_text(encoding="utf-8")


def make_point(spec: SweepSpec, values: dict[str, Value], conf_text: str,
               find_peak_mode: bool = False) -> Point:
    """The point with these axis values (or any values: the peak search's probes)."""
    settings = _merge(spec.base, values)
    return Point(values=dict(values), settings=settings,
                 id=_id(values, settings, conf_text, find_peak_mode), conf_text=conf_text,
                 find_peak_mode=find_peak_mode)


def expand(spec: SweepSpec, conf_text: str, skip: tuple[str, ...] = ()) -> list[Point]:
    """Every point of the sweep, in order (``skip``: axes left out, e.g. target_qps when the
    peak search chooses it)."""
    axes = [axis for axis in spec.axes if axis.name not in skip]
    names = [axis.name for axis in axes]
    if spec.combine == "zip":
        combos = list(zip(*(axis.values for axis in axes), strict=True)) if axes else [()]
    else:
        combos = list(itertools.product(*(axis.values for axis in axes)))
    return [make_point(spec, dict(zip(names, combo, strict=True)), conf_text)
            for combo in combos]
