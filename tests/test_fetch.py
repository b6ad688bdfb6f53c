"""Obtaining files: destination, mirror, URL; md5 always verified; nothing half-written."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from common.errors import DataError
from common.files import RemoteFile, ensure_file


def _remote(tmp_path: Path, content: bytes, url_path: Path | None = None) -> RemoteFile:
    md5 = hashlib.md5(content).hexdigest()
    url = url_path.as_uri() if url_path else "http://127.0.0.1:9/unreachable/f.txt"
    return RemoteFile("f.txt", url, md5)


def test_copy_from_mirror_is_verified(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "f.txt").write_bytes(b"official")
    remote = _remote(tmp_path, b"official")
    dest = ensure_file(remote, tmp_path / "data", [mirror], download=False, progress=False)
    assert dest.read_bytes() == b"official"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["f.txt"]  # no temp leftovers


def test_wrong_md5_everywhere_is_a_clear_error(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "f.txt").write_bytes(b"tampered")
    remote = _remote(tmp_path, b"official")
    with pytest.raises(DataError) as info:
        ensure_file(remote, tmp_path / "data", [mirror], download=True, progress=False)
    message = str(info.value)
    assert remote.md5 in message  # the expected md5
    assert str(mirror / "f.txt") in message and "(wrong)" in message
    assert remote.url in message  # where to get it
    assert str(tmp_path / "data" / "f.txt") in message  # where to put it
    assert not (tmp_path / "data" / "f.txt").exists()


def test_bad_destination_copy_is_replaced_from_mirror(tmp_path: Path) -> None:
    data, mirror = tmp_path / "data", tmp_path / "mirror"
    data.mkdir()
    mirror.mkdir()
    (data / "f.txt").write_bytes(b"truncated")
    (mirror / "f.txt").write_bytes(b"official")
    dest = ensure_file(_remote(tmp_path, b"official"), data, [mirror], download=False,
                       progress=False)
    assert dest.read_bytes() == b"official"


def test_download_from_url_is_verified(tmp_path: Path) -> None:
    served = tmp_path / "served.txt"
    served.write_bytes(b"official")
    dest = ensure_file(_remote(tmp_path, b"official", served), tmp_path / "data", [],
                       progress=False)
    assert dest.read_bytes() == b"official"


def test_download_with_wrong_md5_leaves_nothing(tmp_path: Path) -> None:
    served = tmp_path / "served.txt"
    served.write_bytes(b"corrupted in transit")
    remote = RemoteFile("f.txt", served.as_uri(), hashlib.md5(b"official").hexdigest())
    with pytest.raises(DataError, match="expected"):
        ensure_file(remote, tmp_path / "data", [], progress=False)
    assert list((tmp_path / "data").iterdir()) == []


def test_official_files_from_the_shared_mirror(squad_dir: Path, tmp_path: Path) -> None:
    from squad.data import BERT_VOCAB, SQUAD_DEV

    for remote in (SQUAD_DEV, BERT_VOCAB):
        path = ensure_file(remote, tmp_path, [squad_dir], download=False, progress=False)
        assert path.stat().st_size > 0
