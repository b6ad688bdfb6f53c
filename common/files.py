"""Files: atomic writes, digests, path-safe names, and fetching published files.

Atomic writes: readers see the old file or the complete new one, never a part.
Published files come from the destination, a local mirror, or the official URL; every copy
is checked against its md5 before use, and downloads and copies go to a temporary file that
replaces the destination only once verified, so nothing half-written is ever left where a
later run would trust it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shutil
import tempfile
import unicodedata
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from common.errors import ConfigError, DataError, HarnessError

DOWNLOAD_TIMEOUT_S = 30
# The checkout, and the shared/ folder beside it that holds the official data and the demo
# model: defaults are found from here, wherever the harness is run from.
PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = PROJECT_ROOT.parent / "shared"


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(dest: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; it replaces ``dest`` only if the block succeeds.

    The temporary file lives in the same directory so the final ``os.replace`` is a rename,
    and gets the mode a plain ``open()`` would give (``mkstemp`` makes owner-only files).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        tmp.chmod(_default_mode())
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def slug(text: str) -> str:
    """A safe single path component: lower case, ``[a-z0-9._-]`` only, never starting with a
    dot or a dash (so never ``.``, ``..`` or hidden), at most 100 characters.

    ASCII punctuation and spaces become dashes (``My System`` -> ``my-system``); a name that
    loses more (accents or other non-ASCII letters, nothing left, cut at 100 characters)
    gets the first 8 hex digits of its sha256 (``Système`` -> ``systeme-1abaf88d``), so two
    distinct such names never share a folder."""
    text = str(text)
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    name = re.sub(r"[^a-z0-9._-]+", "-", plain.lower()).strip("-.")
    lossy = not name or len(name) > _SLUG_MAX or not text.isascii()
    name = name[:_SLUG_MAX - 9].strip("-.") if lossy else name
    if lossy:
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        name = f"{name or 'unnamed'}-{digest}"
    return name


_SLUG_MAX = 100
_COMPONENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")


def path_component(text: str, what: str) -> str:
    """``text`` when it is one safe folder name (letters, digits, ``. _ + -``, starting with
    a letter or digit, at most 100 characters); a one-line :class:`ConfigError` otherwise,
    naming ``what`` (``"submitter"``) and a name that would do. Used where the name is shown
    as it is (a submitter) and so cannot be changed silently as :func:`slug` does."""
    if isinstance(text, str) and _COMPONENT.fullmatch(text):
        return text
    raise ConfigError(f"{what} {str(text)!r} cannot be a folder name: use letters, digits "
                      f"and . _ + - (at most 100, starting with a letter or digit), e.g. "
                      f"{slug(text)!r}")


def refuse_links(root: Path, path: Path, what: str = "the tree") -> Path:
    """``path`` when it lies under ``root`` with no symbolic link between them; a one-line
    :class:`HarnessError` otherwise. ``root`` itself may be a link (the user's choice, to a
    bigger disk say); a link planted below it would carry writes, moves and deletes outside.
    Parts of ``path`` that do not exist yet are fine (they will be made as folders)."""
    root, path = Path(root), Path(path)
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        raise HarnessError(f"{path} is outside {root}; {what}: only written inside it") \
            from None
    if ".." in parts:
        raise HarnessError(f"{path}: '..' in a path below {root}; {what}: only written "
                           "inside it")
    current = root
    for part in parts:
        current = current / part
        if current.is_symlink():
            raise HarnessError(f"{current} is a symbolic link (to {os.readlink(current)}); "
                               f"nothing is written through a link below {root} ({what}): "
                               "remove it (the top folder itself may be a link)")
        if not current.exists():
            break
    return path


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    return file_digest(path, "sha256")


@dataclasses.dataclass(frozen=True)
class RemoteFile:
    """A published file: its name, official URL and md5 (hex)."""

    name: str
    url: str
    md5: str | None



def file_digest(path: Path, algorithm: str = "md5") -> str:
    """Hex digest of a file's bytes (``hashlib`` algorithm name), read in 1 MiB blocks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_md5(path: Path) -> str:
    """Hex md5 of a file (how the published files are identified)."""
    return file_digest(path, "md5")


def _download(remote: RemoteFile, dest: Path, progress: bool) -> None:
    """Download to a temporary file, verify, then move into place."""
    with atomic_path(dest) as tmp:
        with open(tmp, "wb") as out, urllib.request.urlopen(
            remote.url, timeout=DOWNLOAD_TIMEOUT_S
        ) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            bar = None
            if progress:
                from tqdm import tqdm

                bar = tqdm(total=total, unit="B", unit_scale=True, desc=remote.name)
            for block in iter(lambda: response.read(1 << 20), b""):
                out.write(block)
                if bar is not None:
                    bar.update(len(block))
            if bar is not None:
                bar.close()
        if remote.md5 and (actual := file_md5(tmp)) != remote.md5:
            raise DataError(f"downloaded {remote.url} has md5 {actual}, expected {remote.md5}")


def ensure_file(
    remote: RemoteFile,
    dest_dir: Path,
    mirrors: Sequence[Path] = (),
    download: bool = True,
    progress: bool = True,
) -> Path:
    """Return ``dest_dir/remote.name`` with a verified md5, fetching it if needed.

    Looks at the destination, then each mirror directory, then the official URL.
    Raises :class:`DataError` listing every place tried, the expected md5 and the fix.
    """
    dest = Path(dest_dir) / remote.name
    tried: list[str] = []

    def verified(path: Path) -> bool:
        if not path.is_file():
            tried.append(f"{path}: not there")
            return False
        if remote.md5 is None:
            return True
        actual = file_md5(path)
        if actual != remote.md5:
            tried.append(f"{path}: md5 {actual} (wrong)")
            return False
        return True

    if verified(dest):
        return dest
    for mirror in mirrors:
        candidate = Path(mirror) / remote.name
        if candidate.resolve() != dest.resolve() and verified(candidate):
            with atomic_path(dest) as tmp:
                shutil.copyfile(candidate, tmp)
            return dest
    if download:
        try:
            _download(remote, dest, progress)
            return dest
        except DataError as exc:
            tried.append(str(exc))
        except OSError as exc:  # URLError is an OSError: no network, DNS, HTTP errors
            tried.append(f"{remote.url}: {getattr(exc, 'reason', exc)}")
    raise DataError(
        f"{remote.name}: no copy with md5 {remote.md5} found. Tried:\n  - "
        + "\n  - ".join(tried)
        + f"\nFix: put the official file at {dest} (or in a mirror directory given with "
        f"--mirror), or fetch it from {remote.url} on a machine with a network."
    )
