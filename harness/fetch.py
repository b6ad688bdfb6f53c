"""Obtaining published files: from the destination, a local mirror, or the official URL.

Every copy is checked against its md5 before use; downloads and copies go to a temporary
file that replaces the destination only once verified, so nothing half-written is ever
left where a later run would trust it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from harness.atomic import atomic_path
from harness.errors import DataError

DOWNLOAD_TIMEOUT_S = 30


@dataclasses.dataclass(frozen=True)
class RemoteFile:
    """A published file: its name, official URL and md5 (hex)."""

    name: str
    url: str
    md5: str | None


SQUAD_DEV = RemoteFile(
    "dev-v1.1.json",
    "https://rajpurkar.github.io/SQuAD-explorer/dataset/dev-v1.1.json",
    "3e85deb501d4e538b6bc56f786231552",
)
BERT_VOCAB = RemoteFile(
    "vocab.txt",
    "https://zenodo.org/record/3733868/files/vocab.txt",
    "64800d5d8528ce344256daf115d4965e",
)


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
