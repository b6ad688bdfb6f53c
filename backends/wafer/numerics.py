"""Real answers computed ahead: a bank of logits keyed by each row's real tokens.

The wafer backend's answers come from another backend (the *numerics* backend, ONNX Runtime
by default), run while LoadGen loads samples (untimed), so the timed phase only looks them
up. The harness runs each batch at its longest real length (columns truncated), so a row
is keyed by its real tokens alone: a 64-bit fingerprint of ``input_ids`` and
``segment_ids`` under ``input_mask`` and the real length, computed for a whole batch at
once (two integer dot products), checked against the stored length. Logits are kept for
the real positions; positions past a row's real length are answered with -10000, never an
answer (as the harness pads logits past a batch's length).

The numerics run at each batch's longest real length, batches of similar lengths, as the
harness itself runs a backend, so the answers (and F1) are the numerics backend's own. They
are cached on disk under ``cache_dir/<key>/``, where the key is a digest of the model file,
the numerics backend, its options and device: a later run looks them up instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from backends.base import Backend, FeatureBatch
from common.stopping import check_stop

PAD_LOGIT = -10000.0
_SEED = 0x5AFE_CAFE
_TABLE = 1024


def _projection(width: int) -> tuple[np.ndarray, np.ndarray]:
    """Two fixed vectors of odd 63-bit integers (the same in every process)."""
    size = max(_TABLE, 1 << (max(width, 1) - 1).bit_length())
    rng = np.random.default_rng(_SEED)
    return tuple(rng.integers(1, 1 << 62, size=size, dtype=np.int64) * 2 + 1
                 for _ in range(2))  # type: ignore[return-value]


_R = _projection(_TABLE)


def fingerprints(batch: FeatureBatch) -> tuple[np.ndarray, np.ndarray]:
    """Per row: a 64-bit fingerprint of its real tokens and its real length."""
    global _R
    ids, mask, segments = batch.arrays()
    width = ids.shape[1]
    if width > len(_R[0]):
        _R = _projection(width)
    mask = np.asarray(mask, np.int64)
    lengths = mask.sum(axis=1)
    with np.errstate(over="ignore"):
        a = (np.asarray(ids, np.int64) * mask) @ _R[0][:width]
        b = (np.asarray(segments, np.int64) * mask) @ _R[1][:width]
        key = a ^ (b * np.int64(0x9E3779B97F4A7C15 - (1 << 64))) ^ (lengths * np.int64(
            0x2545F4914F6CDD1D))
    return key, lengths


class LogitsBank:
    """Logits by fingerprint; rows ``[N, width]`` padded with -10000, grown as needed."""

    def __init__(self, width: int = 384) -> None:
        self._lock = threading.Lock()
        self.index: dict[int, int] = {}
        self.width = width
        self.count = 0
        self.lengths = np.zeros(0, np.int64)
        self.start = np.full((0, width), PAD_LOGIT, np.float32)
        self.end = np.full((0, width), PAD_LOGIT, np.float32)

    def __len__(self) -> int:
        return self.count

    def _grow(self, rows: int, width: int) -> None:
        capacity = len(self.lengths)
        if self.count + rows <= capacity and width <= self.width:
            return
        size = max(self.count + rows, 2 * capacity, 64)
        width = max(width, self.width)
        lengths = np.zeros(size, np.int64)
        start = np.full((size, width), PAD_LOGIT, np.float32)
        end = np.full((size, width), PAD_LOGIT, np.float32)
        lengths[:self.count] = self.lengths[:self.count]
        start[:self.count, :self.width] = self.start[:self.count]
        end[:self.count, :self.width] = self.end[:self.count]
        self.lengths, self.start, self.end, self.width = lengths, start, end, width

    def add(self, keys, lengths, starts, ends) -> None:
        """Rows of logits at their real lengths (``starts[i]`` has ``lengths[i]`` values)."""
        with self._lock:
            fresh = [i for i, k in enumerate(np.asarray(keys).tolist()) if k not in self.index]
            if not fresh:
                return
            self._grow(len(fresh), int(max(int(lengths[i]) for i in fresh)))
            for i in fresh:
                row, n = self.count, int(lengths[i])
                self.start[row, :n] = starts[i][:n]
                self.end[row, :n] = ends[i][:n]
                self.start[row, n:] = PAD_LOGIT
                self.end[row, n:] = PAD_LOGIT
                self.lengths[row] = n
                self.index[int(keys[i])] = row
                self.count += 1

    def find(self, keys: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Row of each key in the bank, -1 where absent."""
        get = self.index.get
        rows = np.fromiter((get(k, -1) for k in keys.tolist()), np.int64, len(keys))
        found = rows >= 0
        if found.any():  # a fingerprint that matches a row of another length is a miss
            bad = found.copy()
            bad[found] = self.lengths[rows[found]] != lengths[found]
            rows[bad] = -1
        return rows

    def gather(self, rows: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
        """Logits of these bank rows at ``width`` columns, float32 and C-contiguous."""
        start, end = self.start, self.end  # a consistent pair even if another thread grows
        if width <= start.shape[1]:
            return (np.ascontiguousarray(start[rows, :width]),
                    np.ascontiguousarray(end[rows, :width]))
        out = [np.full((len(rows), width), PAD_LOGIT, np.float32) for _ in range(2)]
        out[0][:, :start.shape[1]] = start[rows]
        out[1][:, :end.shape[1]] = end[rows]
        return out[0], out[1]

    def export(self, keys: np.ndarray) -> dict[str, np.ndarray]:
        """Arrays for a cache file holding the rows of these keys."""
        rows = np.array([self.index[int(k)] for k in keys.tolist()], np.int64)
        lengths = self.lengths[rows]
        return {
            "keys": np.asarray(keys, np.int64), "lengths": lengths,
            "start": np.concatenate([self.start[r, :n] for r, n in zip(rows, lengths,
                                                                        strict=True)]),
            "end": np.concatenate([self.end[r, :n] for r, n in zip(rows, lengths,
                                                                    strict=True)]),
        }


def compute(backend: Backend, batch: FeatureBatch, lengths: np.ndarray, rows_per_call: int,
            progress: bool = True) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The numerics backend's logits for each row, at its real length: rows in order of
    length, ``rows_per_call`` at a time, each call at its longest real length."""
    ids, mask, segments = batch.arrays()
    order = np.argsort(lengths, kind="stable")
    starts: list[np.ndarray] = [None] * len(order)  # type: ignore[list-item]
    ends: list[np.ndarray] = [None] * len(order)  # type: ignore[list-item]
    bar = None
    if progress and len(order) >= 64:
        try:
            from tqdm import tqdm

            bar = tqdm(total=len(order), desc=f"wafer numerics ({backend.name})",
                       unit="sample", mininterval=1.0, leave=False, file=sys.stderr)
        except ImportError:  # pragma: no cover - tqdm is a harness dependency
            bar = None
    began = time.perf_counter()
    for first in range(0, len(order), rows_per_call):
        check_stop(f"wafer numerics ({backend.name})")  # a Ctrl-C ends this within one call
        rows = order[first:first + rows_per_call]
        width = max(1, int(lengths[rows].max()))
        start, end = backend.predict(FeatureBatch(ids[rows, :width], mask[rows, :width],
                                                  segments[rows, :width]))
        for j, row in enumerate(rows.tolist()):
            n = int(lengths[row])
            starts[row] = np.asarray(start[j, :n], np.float32)
            ends[row] = np.asarray(end[j, :n], np.float32)
        if bar is not None:
            if first == 0:  # say up front how long the answers will take
                spent = time.perf_counter() - began
                print(f"note: wafer numerics: computing the answers of {len(order):,} samples "
                      f"with {backend.name} before LoadGen's timed phase: about "
                      f"{spent / len(rows) * len(order):,.0f} s (cached for the next run)",
                      file=sys.stderr, flush=True)
            bar.update(len(rows))
    if bar is not None:
        bar.close()
    return starts, ends


def model_digest(path: Path | None) -> str:
    """A digest of the model's bytes (a directory: its config and weights files)."""
    if path is None:
        return "no-model"
    path = Path(path)
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in (
        ".json", ".safetensors", ".bin", ".onnx", ".pb", ".pytorch")) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.name.encode())
        with open(file, "rb") as handle:
            digest.update(hashlib.file_digest(handle, "md5").digest())
    return digest.hexdigest()


class DiskCache:
    """Cache files of computed logits for one model and numerics setup: ``*.npz`` shards,
    each written atomically; a damaged shard is ignored with a warning."""

    def __init__(self, root: Path, identity: dict[str, Any]) -> None:
        text = json.dumps(identity, sort_keys=True, default=str)
        self.key = hashlib.sha256(text.encode()).hexdigest()[:20]
        self.folder = Path(root) / self.key
        self.identity = identity

    def load_into(self, bank: LogitsBank) -> int:
        if not self.folder.is_dir():
            return 0
        before = len(bank)
        for shard in sorted(self.folder.glob("*.npz")):
            try:
                with np.load(shard) as data:
                    keys, lengths = data["keys"], data["lengths"]
                    start, end = data["start"], data["end"]
                    offsets = np.concatenate([[0], np.cumsum(lengths)])
                    if offsets[-1] != len(start) or len(start) != len(end):
                        raise ValueError("inconsistent lengths")
                    bank.add(keys, lengths,
                             [start[offsets[i]:offsets[i + 1]] for i in range(len(keys))],
                             [end[offsets[i]:offsets[i + 1]] for i in range(len(keys))])
            except Exception as exc:  # noqa: BLE001 - a damaged file is recomputed
                warnings.warn(f"wafer logits cache {shard} is unreadable ({exc}); ignoring it",
                              stacklevel=2)
        return len(bank) - before

    def save(self, arrays: dict[str, np.ndarray]) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        info = self.folder / "info.json"
        if not info.is_file():
            _atomic(info, json.dumps(self.identity, indent=2, default=str).encode())
        name = hashlib.sha256(np.sort(arrays["keys"]).tobytes()).hexdigest()[:16]
        target = self.folder / f"rows-{name}.npz"
        handle, temp = tempfile.mkstemp(dir=self.folder, suffix=".npz.partial")
        try:
            with os.fdopen(handle, "wb") as out:
                np.savez(out, **arrays)
            os.chmod(temp, 0o644)
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        return target


def _atomic(path: Path, data: bytes) -> None:
    handle, temp = tempfile.mkstemp(dir=path.parent, suffix=".partial")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
