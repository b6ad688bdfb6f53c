"""What machine this is: recorded with every result and used for the default system name."""

from __future__ import annotations

import os
import platform
from pathlib import Path

from common.files import slug


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo, or the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> float | None:
    """Total memory in GiB, if the OS says."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / (1 << 20), 1)
    except (OSError, ValueError):
        pass
    return None


def describe_host() -> dict:
    """Host facts for settings.json."""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": memory_gib(),
        "os": platform.platform(),
        "node": platform.node(),
    }


def default_system_name(backend: str) -> str:
    """``<cpu>-<cores>c-<backend>``, e.g. ``amd-epyc-7b12-2c-onnxruntime``."""
    cpu = cpu_model()
    for noise in ("(R)", "(TM)", "Processor", "CPU", "64-Core", "32-Core", "16-Core", "8-Core"):
        cpu = cpu.replace(noise, " ")
    return slug(f"{' '.join(cpu.split())}-{os.cpu_count()}c-{backend}")
