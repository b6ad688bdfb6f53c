"""A ``tuned.toml`` (any ``--settings`` file) as the base of a sweep.

``run``, ``accuracy``, ``compliance`` and ``submission`` read such a file through
:func:`harness.config.config_from_args`; ``sweep FILE --settings TUNED`` puts its settings
under the sweep file's ``[base]`` (the sweep file wins, key by key), so a sweep explores
around exactly what ``tune`` chose.
"""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path
from typing import Any

from harness.config import settings_file_values


def sweep_base(path: Path) -> dict[str, Any]:
    """The file's settings keyed as a sweep's ``[base]``, each checked by its declaration
    (ConfigError names the file and the key)."""
    settings_file_values(Path(path))  # checks every key and value, one line on error
    data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    table = data.get("settings", data)
    return {k: (dict(v) if isinstance(v, dict) else v) for k, v in table.items()
            if not k.startswith("_")}


def with_settings(base: dict[str, Any], path: Path | None) -> dict[str, Any]:
    """``base`` (a sweep's) over the settings file's values; ``base`` unchanged without one."""
    return base if path is None else {**sweep_base(path), **base}


def add_sweep_argument(parser: argparse.ArgumentParser) -> None:
    """``sweep --settings TOML``."""
    parser.add_argument("--settings", type=lambda t: Path(t).expanduser().absolute(),
                        default=None, metavar="TOML",
                        help="settings under the sweep file's [base] (e.g. a tuned.toml from "
                        "`tune`; the file's [base] wins, key by key)")
