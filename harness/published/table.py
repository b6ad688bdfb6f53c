"""The published MLPerf Inference BERT results (v1.0, v1.1) as a table: load and filter it.

``bert_results.csv`` beside this module is derived data: one row per accepted BERT result
(see SOURCE.md for the repositories, commits, licence and the command that rebuilds it,
:mod:`harness.published.build`). ``metric`` is samples/s in Offline and Server (Server:
scheduled samples per second) and the 90th percentile latency in ms in SingleStream, where
lower is better.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from common.errors import ConfigError

TABLE_PATH = Path(__file__).with_name("bert_results.csv")
COLUMNS = ("round", "division", "submitter", "system", "system_name", "system_type",
           "accelerator", "accelerators", "host_processor", "host_cores", "host_processors",
           "framework", "benchmark", "scenario", "metric", "unit", "valid", "f1", "power",
           "power_unit", "source")
ROUNDS = ("v1.0", "v1.1")
BENCHMARKS = ("bert-99", "bert-99.9")
LOWER_IS_BETTER = {"SingleStream"}
# Accelerator families, first match wins (for colours and the per-accelerator figure).
_FAMILIES = (("A100", "NVIDIA A100"), ("A30", "NVIDIA A30"), ("A40", "NVIDIA A40"),
             ("A10", "NVIDIA A10"), ("T4", "NVIDIA T4"), ("Xavier", "NVIDIA Jetson/Xavier"),
             ("AGX", "NVIDIA Jetson/Xavier"), ("Cloud AI 100", "Qualcomm Cloud AI 100"),
             ("AI100", "Qualcomm Cloud AI 100"))

# Colours of the families in the pictures (the PNG and the results page), and of your runs.
FAMILY_COLOURS = {"NVIDIA A100": "#76b900", "NVIDIA A30": "#1f77b4", "NVIDIA A40": "#17becf",
                  "NVIDIA A10": "#9467bd", "NVIDIA T4": "#8c564b",
                  "NVIDIA Jetson/Xavier": "#e377c2", "Qualcomm Cloud AI 100": "#ff7f0e",
                  "CPU": "#7f7f7f", "other": "#bcbd22"}
RUN_COLOUR = "#d62728"


@dataclass(frozen=True)
class Published:
    """One published result; ``metric`` in ``unit`` (samples/s, or ms in SingleStream)."""

    round: str
    division: str
    submitter: str
    system: str
    system_name: str
    accelerator: str
    accelerators: int
    host_processor: str
    host_cores: int
    framework: str
    benchmark: str
    scenario: str
    metric: float
    unit: str
    f1: float | None
    power: float | None
    power_unit: str
    source: str

    @property
    def cpu_only(self) -> bool:
        """No accelerator: the figure per host core is the fair one."""
        return self.accelerators == 0 or self.accelerator.upper() in ("", "N/A", "NONE")

    @property
    def family(self) -> str:
        """The accelerator family, ``CPU`` for CPU-only systems."""
        return accelerator_family(self.accelerator, self.accelerators)

    @property
    def per_unit(self) -> float | None:
        """samples/s per accelerator (per host core for CPU-only systems); None in
        SingleStream (a latency is not divided) or when the count is unknown."""
        if self.scenario in LOWER_IS_BETTER:
            return None
        count = self.host_cores if self.cpu_only else self.accelerators
        return self.metric / count if count else None


def accelerator_family(name: str, count: int | None = None) -> str:
    """``NVIDIA A100``, ``Qualcomm Cloud AI 100``, ``CPU``... from a model name."""
    if count == 0 or name.strip().upper() in ("", "N/A", "NONE"):
        return "CPU"
    for token, family in _FAMILIES:
        if re.search(rf"\b{re.escape(token)}", name, re.IGNORECASE):
            return family
    return "other"


def _int(text: str) -> int:
    try:
        return int(float(text))
    except ValueError:
        return 0


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def load(path: Path = TABLE_PATH) -> list[Published]:
    """Every row of the table."""
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            raw = list(csv.DictReader(handle))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the published table ({exc.strerror or exc}); "
                          "rebuild it with python -m harness.published.build") from None
    try:
        return [_row(r) for r in raw]
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: not the published table ({exc!r}); rebuild it with "
                          "python -m harness.published.build") from None


def _row(r: dict[str, str]) -> Published:
    """One CSV row as a :class:`Published`."""
    processors = max(_int(r.get("host_processors", "")), 1)
    return Published(
        round=r["round"], division=r["division"], submitter=r["submitter"],
        system=r["system"], system_name=r.get("system_name", ""),
        accelerator=r["accelerator"], accelerators=_int(r["accelerators"]),
        host_processor=r["host_processor"],
        host_cores=_int(r["host_cores"]) * processors, framework=r["framework"],
        benchmark=r["benchmark"], scenario=r["scenario"], metric=float(r["metric"]),
        unit=r["unit"], f1=_float(r["f1"]), power=_float(r["power"]),
        power_unit=r["power_unit"], source=r["source"])


def select(rows: Iterable[Published], *, scenario: str | None = None,
           benchmark: str | None = None, accelerator: str | None = None,
           round: str | None = None, division: str | None = None) -> list[Published]:
    """Rows matching every filter given; ``accelerator`` matches the model name or family as
    a case-insensitive substring (``cpu`` matches CPU-only systems)."""
    if round is not None and round not in ROUNDS:
        raise ConfigError(f"unknown round {round!r}: one of {', '.join(ROUNDS)}")
    if benchmark is not None and benchmark not in BENCHMARKS:
        raise ConfigError(f"unknown benchmark {benchmark!r}: one of {', '.join(BENCHMARKS)}")
    needle = (accelerator or "").lower()
    return [r for r in rows
            if (scenario is None or r.scenario.lower() == scenario.lower())
            and (benchmark is None or r.benchmark == benchmark)
            and (round is None or r.round == round)
            and (division is None or r.division == division)
            and (not needle or needle in r.accelerator.lower() or needle in r.family.lower())]


def ranked(rows: Iterable[Published]) -> list[Published]:
    """Best first: highest samples/s, or lowest latency in SingleStream."""
    return sorted(rows, key=lambda r: r.metric if r.scenario in LOWER_IS_BETTER else -r.metric)
