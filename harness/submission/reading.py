"""Bounded reads of a submission tree's files: whatever a file holds, the checker gets a
value or a :class:`TreeFileError` with one line saying why, never a traceback, and never
reads more than a bound (a tree may hold an 8 GiB log, binary junk, a 200,000-deep JSON).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

TEXT_LIMIT = 1 << 20  # summaries, accuracy.txt, verify_*.txt, JSON descriptions: 1 MiB
DETAIL_LOG_LIMIT = 64 << 20  # a 600 s run's detail log is a few MiB at most


class TreeFileError(ValueError):
    """A file of the tree that cannot be read as what it should be (the message says why)."""


def read_bytes(path: Path, limit: int = TEXT_LIMIT) -> bytes:
    """At most ``limit`` bytes of ``path``; a longer file is an error, never read whole.
    OSError (a missing file, a folder) passes through for the caller to name."""
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size > limit:
            raise TreeFileError(f"is {size:,} bytes, over {limit:,}: not a file this checker "
                                "reads whole")
        # read(n) allocates n bytes first: ask for what the file holds, not the limit
        data = handle.read(size + 1)
    if len(data) > limit:
        raise TreeFileError(f"is over {limit:,} bytes: not a file this checker reads whole")
    return data


def read_text(path: Path, limit: int = TEXT_LIMIT) -> str:
    """The text of ``path`` (UTF-8; undecodable bytes replaced), at most ``limit`` bytes."""
    return read_bytes(path, limit).decode("utf-8", errors="replace")


def head(path: Path, count: int) -> bytes:
    """The first ``count`` bytes of ``path`` (b"" when it cannot be read)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(count)
    except OSError:
        return b""


def read_json_object(path: Path, limit: int = TEXT_LIMIT) -> dict[str, Any]:
    """A JSON object from ``path``: bounded, strictly UTF-8, any nesting depth refused
    cleanly."""
    data = read_bytes(path, limit)
    try:
        value = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise TreeFileError(f"is not UTF-8 text (byte {exc.start})") from None
    except RecursionError:
        raise TreeFileError("is JSON nested too deeply to read") from None
    except ValueError as exc:
        raise TreeFileError(f"is not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise TreeFileError(f"is JSON, but a {type(value).__name__}, not an object")
    return value
