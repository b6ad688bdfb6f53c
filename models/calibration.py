"""Which SQuAD features calibrate a static int8 model, and the reader that feeds them.

A short text spec names the features, parsed strictly:

Forms (feature indexes are positions in the harness's dev-v1.1 feature list, 0-based)::

    first:N            the first N features
    range:START:STOP   features START, START+1, ..., STOP-1
    indexes:FILE       the indexes listed in FILE, one a line ('#' comments, blank lines ok)

For the demo model, the first 2841 features (2804 questions) are its held-out evaluation
set, so calibrate it elsewhere, e.g. ``range:3000:3128``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from backends import tensor_names
from common.errors import ConfigError
from squad.data import DataConfig, prepare_data
from squad.features import FeatureSet

FORMS = "first:N, range:START:STOP or indexes:FILE"


@dataclasses.dataclass(frozen=True)
class CalibrationSpec:
    """A parsed spec; ``text`` is what the user wrote (recorded in recipes)."""

    text: str
    kind: str
    start: int = 0
    stop: int = 0
    file: Path | None = None

    def indexes(self, num_features: int) -> np.ndarray:
        """The feature indexes (int64, in the order given), checked against ``num_features``."""
        if self.kind == "indexes":
            assert self.file is not None
            chosen = _read_index_file(self.file)
        else:
            chosen = np.arange(self.start, self.stop, dtype=np.int64)
        too_big = chosen[chosen >= num_features]
        if len(too_big):
            raise ConfigError(
                f"calibration {self.text!r}: feature index {int(too_big[0])} is out of range; "
                f"there are {num_features} features (0..{num_features - 1})"
            )
        return chosen


def _int(text: str, what: str, spec: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"calibration {spec!r}: {what} {text!r} is not an integer") from None


def parse_calibration_spec(text: str) -> CalibrationSpec:
    """Parse ``first:N``, ``range:START:STOP`` or ``indexes:FILE``; ConfigError if malformed."""
    kind, sep, rest = text.partition(":")
    if not sep or kind not in ("first", "range", "indexes") or not rest:
        raise ConfigError(f"calibration {text!r}: expected {FORMS}")
    if kind == "first":
        count = _int(rest, "count", text)
        if count < 1:
            raise ConfigError(f"calibration {text!r}: the count must be at least 1")
        return CalibrationSpec(text, kind, 0, count)
    if kind == "range":
        bounds = rest.split(":")
        if len(bounds) != 2:
            raise ConfigError(f"calibration {text!r}: expected range:START:STOP")
        start, stop = (_int(b, label, text) for b, label in zip(bounds, ("START", "STOP"),
                                                                 strict=True))
        if start < 0 or stop <= start:
            raise ConfigError(
                f"calibration {text!r}: need 0 <= START < STOP (STOP is excluded)"
            )
        return CalibrationSpec(text, kind, start, stop)
    path = Path(rest)
    if not path.is_file():
        raise ConfigError(f"calibration {text!r}: index file {path} does not exist")
    _read_index_file(path)  # fail now, not after the model is loaded
    return CalibrationSpec(text, kind, file=path)


def _read_index_file(path: Path) -> np.ndarray:
    """Indexes from a text file, one a line; names the line of any bad or repeated entry."""
    seen: dict[int, int] = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        try:
            index = int(entry)
        except ValueError:
            raise ConfigError(f"{path}:{number}: {entry!r} is not a feature index") from None
        if index < 0:
            raise ConfigError(f"{path}:{number}: feature index {index} is negative")
        if index in seen:
            raise ConfigError(
                f"{path}:{number}: feature {index} is already listed on line {seen[index]}"
            )
        seen[index] = number
    if not seen:
        raise ConfigError(f"{path}: no feature indexes in the file")
    return np.fromiter(seen, dtype=np.int64, count=len(seen))


def _graph_inputs(model_path: Path) -> list[tuple[str, type[np.integer]]]:
    """(name, numpy dtype) of each real graph input (initializers excluded)."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    initializers = {init.name for init in model.graph.initializer}
    dtypes = {onnx.TensorProto.INT64: np.int64, onnx.TensorProto.INT32: np.int32}
    inputs = []
    for value in model.graph.input:
        if value.name in initializers:
            continue
        elem = value.type.tensor_type.elem_type
        if elem not in dtypes:
            raise ConfigError(f"{model_path}: input {value.name!r} is not int32/int64")
        inputs.append((value.name, dtypes[elem]))
    return inputs


def feature_reader(model_path: Path, features, indexes: np.ndarray):
    """An ONNX Runtime CalibrationDataReader feeding ``features[indexes]`` one at a time
    (``[1, S]`` rows, dtypes and names as the graph of ``model_path`` wants)."""
    from onnxruntime.quantization import CalibrationDataReader

    inputs = _graph_inputs(model_path)
    names = {name for name, _ in inputs}
    naming = tensor_names.match_inputs(names)
    if naming is None:
        raise ConfigError(
            f"{model_path}: graph inputs {sorted(names)} are not a known BERT naming "
            f"({tensor_names.accepted_inputs()})"
        )
    dtype_of = dict(inputs)
    arrays = (features.input_ids, features.input_mask, features.segment_ids)

    class FeatureReader(CalibrationDataReader):
        """Supports ONNX Runtime's strided collection (``__len__`` and ``set_range``)."""

        def __init__(self) -> None:
            self.set_range(0, len(indexes))

        def __len__(self) -> int:
            return len(indexes)

        def set_range(self, start_index: int, end_index: int) -> None:
            self._todo = iter(indexes[start_index:end_index].tolist())

        def get_next(self) -> dict[str, np.ndarray] | None:
            row = next(self._todo, None)
            if row is None:
                return None
            return {
                name: np.ascontiguousarray(array[row : row + 1], dtype=dtype_of[name])
                for name, array in zip(naming, arrays, strict=True)
            }

    return FeatureReader()


def chunk_size(count: int, chunk: int) -> int:
    """Largest divisor of ``count`` up to ``chunk`` (ONNX Runtime needs an even split)."""
    return max(d for d in range(1, min(chunk, count) + 1) if count % d == 0)


def calibration_features(
    spec: CalibrationSpec, data: DataConfig | None = None
) -> tuple[FeatureSet, np.ndarray]:
    """All dev features (from ``data``; by default the standard folders) and the spec's
    indexes."""
    prepared = prepare_data(dataclasses.replace(data or DataConfig(), max_examples=None),
                            progress=False)
    return prepared.features, spec.indexes(len(prepared.features))
