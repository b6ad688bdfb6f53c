"""What a model name resolves to: the file a backend loads, and where it came from."""

from __future__ import annotations

import dataclasses
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class ResolvedModel:
    """The file a backend will load, and where it came from (recorded with results)."""

    name: str
    path: Path
    format: str
    precision: str
    md5: str
    source: str
    mlperf: bool

    def to_json(self) -> dict:
        return {**dataclasses.asdict(self), "path": str(self.path)}
