"""The system description (``systems/<system>.json``): every field the MLCommons
checkers ask for, filled from the host where it can be and from the user's file for the rest.
"""

from __future__ import annotations

import os
import platform
import shutil
from pathlib import Path
from typing import Any

from harness.loadgen.rulesets import DEFAULT, RULESETS
from harness.system import cpu_model, memory_gib

DEFAULT_RULES = RULESETS[DEFAULT]

# The checkers' required fields (SYSTEM_DESC_REQUIRED_FIELDS + ..._SINCE_V1), in the order
# MLPerf's published descriptions use, and the fields they know but do not require (power
# submissions): allowed, not written. The same in every round so far.
FIELDS = DEFAULT_RULES.system_fields
POWER_FIELDS = DEFAULT_RULES.system_optional_fields
INTEGER_FIELDS = ("number_of_nodes", "host_processors_per_node", "host_processor_core_count",
                  "accelerators_per_node")
STATUSES = DEFAULT_RULES.system_statuses
NOT_APPLICABLE = "N/A"


def _cpuinfo() -> list[dict[str, str]]:
    processors: list[dict[str, str]] = [{}]
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    for line in text.splitlines():
        if not line.strip():
            if processors[-1]:
                processors.append({})
            continue
        key, _, value = line.partition(":")
        processors[-1][key.strip()] = value.strip()
    return [p for p in processors if p]


def _caches() -> str | None:
    """``L1d 48K, L1i 32K, L2 1024K, L3 32768K`` from sysfs (per core, L3 shared)."""
    root = Path("/sys/devices/system/cpu/cpu0/cache")
    parts = []
    for index in sorted(root.glob("index*")):
        try:
            level = (index / "level").read_text().strip()
            kind = (index / "type").read_text().strip()
            size = (index / "size").read_text().strip()
        except OSError:
            continue
        suffix = {"Data": "d", "Instruction": "i"}.get(kind, "")
        parts.append(f"L{level}{suffix} {size}")
    return ", ".join(parts) or None


def _max_frequency(processors: list[dict[str, str]]) -> str | None:
    try:
        khz = int(Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").read_text())
        return f"{khz / 1e6:.2f} GHz"
    except (OSError, ValueError):
        pass
    mhz = processors[0].get("cpu MHz") if processors else None
    try:
        return f"{float(mhz) / 1000:.2f} GHz" if mhz else None
    except ValueError:
        return None


def _operating_system() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return f"{line.split('=', 1)[1].strip(chr(34))} (Linux {platform.release()})"
    except OSError:
        pass
    return platform.platform()


def host_facts(storage_path: Path = Path(".")) -> dict[str, Any]:
    """What this machine says about itself, in the description's fields."""
    processors = _cpuinfo()
    sockets = len({p.get("physical id") for p in processors if "physical id" in p}) or 1
    cores = processors[0].get("cpu cores") if processors else None
    facts: dict[str, Any] = {
        "number_of_nodes": 1,
        "host_processor_model_name": cpu_model(),
        "host_processors_per_node": sockets,
        "host_processor_core_count": int(cores) if cores and cores.isdigit()
        else max(1, (os.cpu_count() or 1) // sockets),
        "operating_system": _operating_system(),
    }
    frequency, caches, memory = _max_frequency(processors), _caches(), memory_gib()
    if frequency:
        facts["host_processor_frequency"] = frequency
    if caches:
        facts["host_processor_caches"] = caches
    if memory is not None:
        facts["host_memory_capacity"] = f"{memory:g} GiB"
    try:
        facts["host_storage_capacity"] = f"{shutil.disk_usage(storage_path).total / 1e9:.0f} GB"
    except OSError:
        pass
    return facts


def describe_system(identity: dict[str, Any], software: dict[str, Any],
                    user: dict[str, Any], storage_path: Path = Path(".")
                    ) -> tuple[dict[str, Any], list[str]]:
    """The description and the fields left at a default (neither the host nor the user's
    file said). ``identity``: division, submitter, status, system_name, system_type;
    ``software``: framework, other_software_stack; ``user``: any field, winning over all."""
    description: dict[str, Any] = {field: NOT_APPLICABLE for field in FIELDS}
    description.update(hw_notes="", sw_notes="", accelerators_per_node=0)
    defaulted = [f for f in FIELDS if f not in ("hw_notes", "sw_notes")]
    for source in (identity, host_facts(storage_path), software, user):
        for key, value in source.items():
            description[key] = value
            if key in defaulted:
                defaulted.remove(key)
    if description.get("accelerators_per_node") == 0:
        # no accelerator: its fields do not apply
        defaulted = [f for f in defaulted if not f.startswith("accelerator")]
    return description, defaulted
