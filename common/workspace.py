"""The workspace: the one folder whose ``user.conf``, ``datasets/``, ``models/store/``,
``results/`` and ``submission/`` a command uses, and every default path in it.

It is the folder the command is started in when that folder has a ``user.conf`` (a
workspace of the user's own), else the project folder. Every default is an absolute path
computed here once; nothing changes the working directory.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from common.files import PROJECT_ROOT

USER_CONF = "user.conf"


@dataclasses.dataclass(frozen=True)
class Workspace:
    """Default locations, all under ``root``."""

    root: Path

    @classmethod
    def find(cls, cwd: Path | None = None) -> Workspace:
        """The workspace of a command started in ``cwd`` (default: the current folder)."""
        here = Path(cwd or Path.cwd()).absolute()
        if (here / USER_CONF).is_file() or not (PROJECT_ROOT / USER_CONF).is_file():
            return cls(here)
        return cls(PROJECT_ROOT)

    @property
    def user_conf(self) -> Path:
        return self.root / USER_CONF

    @property
    def results(self) -> Path:
        return self.root / "results"

    @property
    def sweeps(self) -> Path:
        return self.results / "sweeps"

    @property
    def data_dir(self) -> Path:
        return self.root / "datasets" / "squad"

    @property
    def cache_dir(self) -> Path:
        return self.root / "datasets" / "cache"

    @property
    def model_store(self) -> Path:
        return self.root / "models" / "store"

    @property
    def submission(self) -> Path:
        return self.root / "submission"


def workspace() -> Workspace:
    """The workspace of this process (found from the folder it was started in)."""
    return Workspace.find()
