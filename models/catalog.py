"""The model catalog: MLPerf BERT-Large files and local Hugging Face QA checkpoints.

A model is named (``bert-large-fp32-onnx``) or given as a path (an ``.onnx`` file or a
Hugging Face checkpoint directory). Published files are fetched with md5 verification
into ``models/store/<name>/``; a Hugging Face checkpoint run on ONNX Runtime is exported
once to ``models/store/<name>/model.onnx`` and re-exported when its weights change.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

from harness.errors import ConfigError
from harness.files import RemoteFile, ensure_file, file_md5, file_sha256

DEFAULT_MODEL = "minilm-l6-squad-demo"
DEFAULT_STORE = Path("models/store")

# Formats each backend accepts; "hf" checkpoints are exported to ONNX for onnxruntime and
# converted to a frozen graph for tensorflow.
BACKEND_FORMATS = {
    "onnxruntime": ("onnx", "hf"),
    "pytorch": ("pytorch", "hf"),
    "tensorflow": ("tf-frozen", "tf-savedmodel", "hf"),
    "null": ("onnx", "hf", "pytorch", "tf-frozen"),
}


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A catalog entry. ``mlperf``: the MLPerf accuracy targets apply to it."""

    name: str
    description: str
    format: str
    precision: str
    default_backend: str
    file: RemoteFile | None = None
    local_dirs: tuple[str, ...] = ()
    mlperf: bool = False


CATALOG: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "minilm-l6-squad-demo",
            "small real QA model (6x384 MiniLM), Hugging Face format; not an MLPerf model",
            "hf",
            "fp32",
            "onnxruntime",
            local_dirs=("../shared/models/minilm-l6-squad-demo",),
        ),
        ModelSpec(
            "bert-large-fp32-onnx",
            "MLPerf BERT-Large fp32 ONNX (zenodo 3733910)",
            "onnx",
            "fp32",
            "onnxruntime",
            RemoteFile(
                "model.onnx",
                "https://zenodo.org/record/3733910/files/model.onnx",
                "819b25b19cd8e59080c10892689750ca",
            ),
            mlperf=True,
        ),
        ModelSpec(
            "bert-large-int8-onnx",
            "MLPerf BERT-Large int8 fake-quantized ONNX (zenodo 3750364)",
            "onnx",
            "int8",
            "onnxruntime",
            RemoteFile(
                "bert_large_v1_1_fake_quant.onnx",
                "https://zenodo.org/record/3750364/files/bert_large_v1_1_fake_quant.onnx",
                "45f88ffb2915362242703c85c38ec2d4",
            ),
            mlperf=True,
        ),
        ModelSpec(
            "bert-large-fp32-pytorch",
            "MLPerf BERT-Large fp32 PyTorch state dict (zenodo 3733896)",
            "pytorch",
            "fp32",
            "pytorch",
            RemoteFile(
                "model.pytorch",
                "https://zenodo.org/record/3733896/files/model.pytorch",
                "00fbcbfaebfa20d87ac9885120a6e9b4",
            ),
            mlperf=True,
        ),
        ModelSpec(
            "bert-large-fp32-tf",
            "MLPerf BERT-Large fp32 TensorFlow frozen graph (zenodo 3939747)",
            "tf-frozen",
            "fp32",
            "tensorflow",
            RemoteFile(
                "model.pb",
                "https://zenodo.org/record/3939747/files/model.pb",
                "dd72de12e8226f25f0128a1a864b97ad",
            ),
            mlperf=True,
        ),
    )
}


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


def _format_of_path(path: Path) -> str:
    if path.is_dir():
        if (path / "config.json").is_file():
            return "hf"
        if (path / "saved_model.pb").is_file():
            return "tf-savedmodel"
        raise ConfigError(
            f"{path}: a directory with neither config.json (Hugging Face) nor saved_model.pb "
            "(TensorFlow SavedModel)"
        )
    suffix = path.suffix.lower()
    formats = {".onnx": "onnx", ".pytorch": "pytorch", ".pt": "pytorch", ".pb": "tf-frozen"}
    if suffix not in formats:
        raise ConfigError(f"{path}: unknown model format (expected .onnx, .pytorch, .pb or a dir)")
    return formats[suffix]


def _find_hf_dir(spec: ModelSpec, store: Path, mirrors: Sequence[Path]) -> Path:
    candidates = [store / spec.name / "hf", *(Path(m) / spec.name for m in mirrors)]
    candidates += [Path(d) for d in spec.local_dirs]
    for candidate in candidates:
        if (candidate / "config.json").is_file():
            return candidate
    raise ConfigError(
        f"model {spec.name!r}: no Hugging Face checkpoint found. Looked in: "
        + ", ".join(str(c) for c in candidates)
        + ". Put config.json, model.safetensors and vocab.txt in one of them."
    )


def _derive_from_checkpoint(name: str, hf_dir: Path, store: Path, target: str) -> Path:
    """The checkpoint as an ONNX file (``target="onnx"``) or a TF frozen graph (``"tf"``).

    Made once into ``store/<name>/`` and reused while the checkpoint's weights are
    unchanged; both are validated against the checkpoint before they are written.
    """
    weights = hf_dir / "model.safetensors"
    if not weights.is_file():
        raise ConfigError(f"{hf_dir}: no model.safetensors")
    out = store / name / ("model.onnx" if target == "onnx" else "model.pb")
    record = out.with_name(f"{out.name}.source.json")
    weights_sha = file_sha256(weights)
    if out.is_file() and record.is_file():
        if json.loads(record.read_text()).get("weights_sha256") == weights_sha:
            return out
    if target == "onnx":
        from models.export_onnx import export_hf_qa_to_onnx

        print(f"Exporting {hf_dir} to ONNX ({out}) ...", flush=True)
        export_hf_qa_to_onnx(hf_dir, out)
    else:
        from models.convert import convert

        print(f"Converting {hf_dir} to a TensorFlow frozen graph ({out}) ...", flush=True)
        convert(hf_dir, out, to="tf")
    record.write_text(json.dumps({"source": str(hf_dir), "weights_sha256": weights_sha}, indent=2))
    return out


def resolve_model(
    name_or_path: str,
    backend: str,
    store: Path = DEFAULT_STORE,
    mirrors: Sequence[Path] = (),
    download: bool = True,
) -> ResolvedModel:
    """Find (fetch, export) the file ``backend`` needs for the model; errors say the fix."""
    spec = CATALOG.get(name_or_path)
    if spec is None:
        path = Path(name_or_path)
        if not path.exists():
            from models.derived import resolve_int8_model, split_int8_name

            # "<catalog model>-int8-dynamic|static": quantized from the fp32 ONNX once
            base = split_int8_name(name_or_path)
            if base is not None and base[0] in CATALOG:
                return resolve_int8_model(name_or_path, backend, store, mirrors, download)
            raise ConfigError(
                f"unknown model {name_or_path!r}: not in the catalog ({', '.join(CATALOG)}; "
                "each also as NAME-int8-dynamic or NAME-int8-static) "
                "and no such file or directory"
            )
        spec = ModelSpec(path.stem or path.name, f"local {path}", _format_of_path(path), "fp32",
                         backend, local_dirs=(str(path),) if path.is_dir() else ())
        # a SavedModel is a directory the backend loads as is
        source_path: Path | None = (
            path if path.is_file() or spec.format == "tf-savedmodel" else None
        )
    else:
        source_path = None
    accepted = BACKEND_FORMATS.get(backend, ())
    if spec.format not in accepted:
        raise ConfigError(
            f"model {spec.name!r} is in {spec.format!r} format, which backend {backend!r} cannot "
            f"run; use BACKEND={spec.default_backend} or another model"
        )
    if source_path is None and spec.file is not None:
        source_path = ensure_file(spec.file, store / spec.name, mirrors, download=download)
    if source_path is None:  # a Hugging Face checkpoint
        hf_dir = _find_hf_dir(spec, store, mirrors)
        source = str(hf_dir)
        if backend == "onnxruntime":
            source_path = _derive_from_checkpoint(spec.name, hf_dir, store, "onnx")
        elif backend == "tensorflow":
            source_path = _derive_from_checkpoint(spec.name, hf_dir, store, "tf")
        elif backend == "pytorch":  # reads config.json and the weights itself: no export
            if not (hf_dir / "model.safetensors").is_file():
                raise ConfigError(f"{hf_dir}: no model.safetensors")
            source_path = hf_dir
        else:
            source_path = hf_dir / "model.safetensors"
    else:
        source = str(source_path)
    return ResolvedModel(
        spec.name, source_path, {".onnx": "onnx", ".pb": "tf-frozen"}.get(
            source_path.suffix, spec.format),
        spec.precision, file_md5(_weights_file(source_path)), source, spec.mlperf,
    )


def _weights_file(path: Path) -> Path:
    """The file whose md5 identifies the model: a checkpoint directory's weights."""
    if (path / "saved_model.pb").is_file():  # TF SavedModel: graph and constants live here
        return path / "saved_model.pb"
    return path / "model.safetensors" if path.is_dir() else path


def vocab_for_model(resolved: ResolvedModel) -> Path | None:
    """The model's own vocab.txt when it ships one (Hugging Face checkpoints)."""
    candidate = Path(resolved.source) / "vocab.txt"
    return candidate if candidate.is_file() else None
