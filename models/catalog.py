"""The model catalog: MLPerf BERT-Large files and local Hugging Face QA checkpoints.

A model is named (``bert-large-fp32-onnx``) or given as a path (an ``.onnx`` file or a
Hugging Face checkpoint directory). Published files are fetched with md5 verification
into ``models/store/<name>/``; a Hugging Face checkpoint run on ONNX Runtime is exported
once to ``models/store/<name>/model.onnx`` and re-exported when its weights change.
``model.onnx.source.json`` beside the export records the source weights' sha256 and the
export's size and sha256; it is written (atomically) only once the export is in place, and
an export that does not match it, or has no readable record, is made again with a warning.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import stat
import warnings
from collections.abc import Sequence
from pathlib import Path

from backends import REGISTRY, backend_entry, formats
from common.errors import ConfigError, HarnessWarning
from common.files import (
    SHARED_DIR,
    RemoteFile,
    ensure_file,
    file_md5,
    file_sha256,
    refuse_links,
    slug,
    write_json_atomic,
)
from common.settings import did_you_mean
from common.workspace import workspace
from models.derived import resolve_int8_model, split_int8_name
from models.resolved import ResolvedModel
from squad.data import DataConfig

DEFAULT_MODEL = "minilm-l6-squad-demo"


class StaleExportWarning(HarnessWarning):
    """A model exported earlier into the store is damaged or unverifiable: made again."""


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
            local_dirs=(str(SHARED_DIR / "models" / "minilm-l6-squad-demo"),),
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
    """The checkpoint as an ONNX file (``target="onnx"``) or a frozen graph (``"tf-frozen"``).

    Made once into ``store/<name>/`` and reused while the checkpoint's weights are
    unchanged and the file matches the size and sha256 recorded when it was made; both are
    validated against the checkpoint before they are written.
    """
    weights = hf_dir / "model.safetensors"
    if not weights.is_file():
        raise ConfigError(f"{hf_dir}: no model.safetensors")
    out = store / name / ("model.onnx" if target == formats.ONNX else "model.pb")
    record = source_record_path(out)
    weights_sha = file_sha256(weights)
    problem = _export_problem(out, record, weights_sha)
    if problem is None:
        return out
    if problem:  # "" : nothing there yet, or the weights changed; no fault to report
        warnings.warn(f"{problem}; making {out} again", StaleExportWarning, stacklevel=3)
    extras = "export" if target == formats.ONNX else "export,tf"
    try:
        if target == formats.ONNX:
            from models.export_onnx import export_hf_qa_to_onnx

            print(f"Exporting {hf_dir} to ONNX ({out}) ...", flush=True)
            export_hf_qa_to_onnx(hf_dir, out)
        else:
            from models.convert import convert

            print(f"Converting {hf_dir} to a TensorFlow frozen graph ({out}) ...", flush=True)
            convert(hf_dir, out, to="tf")
    except ImportError as exc:  # exporting needs torch and transformers (and TF for .pb)
        raise ConfigError(
            f"making {out} from the Hugging Face checkpoint {hf_dir} needs "
            f"{exc.name or exc}, which is not installed: pip install -e '.[{extras}]' "
            "(make install brings every extra)"
        ) from None
    # The checkpoint's config beside the export tells backends its heads (ORT's fusions);
    # a checkpoint kept in the export's own folder already has it there
    config_out = out.parent / "config.json"
    if not (config_out.exists() and config_out.samefile(hf_dir / "config.json")):
        shutil.copyfile(hf_dir / "config.json", config_out)
    # Written only once the export is in place: a record always describes a whole file.
    write_json_atomic(record, {
        "source": str(hf_dir),
        "weights_sha256": weights_sha,
        "output_size": out.stat().st_size,
        "output_sha256": file_sha256(out),
    })
    return out


def source_record_path(out: Path) -> Path:
    """``<export>.source.json``: what an export was made from, and its size and sha256."""
    return out.with_name(f"{out.name}.source.json")


def _export_problem(out: Path, record: Path, weights_sha: str) -> str | None:
    """``None`` when ``out`` can be reused; ``""`` when it must be made for an ordinary
    reason (not made yet, the weights changed); otherwise what is wrong with it."""
    if not out.is_file():
        return ""
    if not record.is_file():
        return f"{record} is missing, so {out} cannot be verified"
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        detail = exc.msg if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
        return f"{record} is unreadable ({detail}: truncated or garbled?)"
    if not isinstance(data, dict):
        return f"{record} is not a JSON object"
    if data.get("weights_sha256") != weights_sha:
        return ""
    size, sha = data.get("output_size"), data.get("output_sha256")
    if not isinstance(size, int) or not isinstance(sha, str):
        return f"{record} records no size and sha256 of {out.name} (made by an older version)"
    if (actual := out.stat().st_size) != size:
        return f"{out} is {actual} bytes, {size} when it was made (truncated?)"
    if file_sha256(out) != sha:
        return f"{out} differs from the sha256 recorded when it was made"
    return None


def _runs_format(fmt: str, asked: str) -> str:
    """The backend that loads ``fmt`` as it is (``asked`` when it does): a model file given
    to the wrong backend names the right one."""
    if fmt in backend_entry(asked).formats:
        return asked
    return next((name for name, entry in REGISTRY.items()
                 if name != "null" and entry.wraps is None and fmt in entry.formats), asked)


def _did_you_mean(name: str) -> str:
    """`` (did you mean bert-large-fp32-onnx?)`` for a name near the catalog's, else ``""``."""
    names = [*CATALOG, *(f"{n}-int8-{kind}" for n in CATALOG for kind in ("dynamic", "static"))]
    return did_you_mean(name, [*CATALOG] if any(n.startswith(name) for n in CATALOG)
                        else names, n=3)


def _refuse_special_files(path: Path) -> None:
    """A FIFO, socket or device given as a model (or inside a model folder) would block the
    first read forever: refused in one line before anything opens it."""
    candidates = [path]
    if path.is_dir():
        try:
            candidates += sorted(path.iterdir())[:1000]
        except OSError as exc:
            raise ConfigError(f"model {path}: cannot list the folder "
                              f"({exc.strerror or exc})") from None
    for candidate in candidates:
        try:
            mode = candidate.stat().st_mode
        except OSError:
            continue  # a dangling link: the format check says what is missing
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise ConfigError(f"model {candidate}: not a regular file but a FIFO, socket or "
                              "device, which would block the run; give the model file itself")


def resolve_model(
    name_or_path: str,
    backend: str,
    store: Path | None = None,
    mirrors: Sequence[Path] = (),
    download: bool = True,
    data: DataConfig | None = None,
) -> ResolvedModel:
    """Find (fetch, export) the file ``backend`` needs for the model; errors say the fix.

    ``data`` is where SQuAD features come from when a derived int8 model must be calibrated
    (the run's own data settings); by default the standard folders.
    """
    store = Path(store) if store is not None else workspace().model_store
    entry = backend_entry(backend)
    spec = CATALOG.get(name_or_path)
    source_path: Path | None = None
    if spec is None:
        path = Path(name_or_path)
        if not path.exists():
            # "<catalog model>-int8-dynamic|static": quantized from the fp32 ONNX once
            base = split_int8_name(name_or_path)
            if base is not None and base[0] in CATALOG:
                if formats.ONNX not in entry.formats:
                    raise ConfigError(
                        f"model {name_or_path!r} is an int8 ONNX model, which backend "
                        f"{backend!r} cannot run; use --backend onnxruntime"
                    )
                fp32 = resolve_model(base[0], "onnxruntime", store, mirrors, download, data)
                return resolve_int8_model(name_or_path, fp32, store,
                                          data or DataConfig(download=download))
            raise ConfigError(
                f"unknown model {name_or_path!r}{_did_you_mean(name_or_path)}: not in the "
                f"catalog ({', '.join(CATALOG)}; each also as NAME-int8-dynamic or "
                "NAME-int8-static) and no such file or directory"
            )
        _refuse_special_files(path)
        try:
            fmt = formats.detect_format(path)
        except formats.ModelFormatError as exc:
            raise ConfigError(str(exc)) from None
        hf = fmt == formats.HF
        # a safe single name for models/store and results/, however the path is spelt
        name = slug(path.resolve().stem or path.resolve().name)
        spec = ModelSpec(name, f"local {path}", fmt, "fp32", _runs_format(fmt, backend),
                         local_dirs=(str(formats.checkpoint_dir(path)),) if hf else ())
        source_path = None if hf else path
    # the store's folders are written and replaced: never through a link planted there
    refuse_links(store, store / spec.name, "the model store")
    derive_to = None
    if spec.format not in entry.formats:
        # a Hugging Face checkpoint is exported for backends that load ONNX or frozen graphs
        derive_to = next((f for f in (formats.ONNX, formats.TF_FROZEN) if f in entry.formats),
                         None) if spec.format == formats.HF else None
        if derive_to is None:
            raise ConfigError(
                f"model {spec.name!r} is in {spec.format!r} format, which backend {backend!r} "
                f"cannot run (it loads {', '.join(entry.formats)}); use "
                f"--backend {spec.default_backend}, another model, or convert it with "
                "`python -m models.convert`"
            )
    if source_path is None and spec.file is not None:
        source_path = ensure_file(spec.file, store / spec.name, mirrors, download=download)
    fmt = spec.format
    if source_path is None:  # a Hugging Face checkpoint
        hf_dir = _find_hf_dir(spec, store, mirrors)
        source = str(hf_dir)
        if derive_to is not None:
            source_path = _derive_from_checkpoint(spec.name, hf_dir, store, derive_to)
            fmt = derive_to
        else:  # the backend reads config.json and the weights itself: no export
            if not (hf_dir / "model.safetensors").is_file():
                raise ConfigError(f"{hf_dir}: no model.safetensors")
            source_path = hf_dir
    else:
        source = str(source_path)
    return ResolvedModel(
        spec.name, source_path, fmt, spec.precision, file_md5(_weights_file(source_path)),
        source, spec.mlperf,
    )


def _weights_file(path: Path) -> Path:
    """The file whose md5 identifies the model: a checkpoint directory's weights."""
    if (path / formats.SAVED_MODEL_FILE).is_file():  # TF SavedModel: graph and constants live here
        return path / "saved_model.pb"
    return path / "model.safetensors" if path.is_dir() else path


def vocab_for_model(resolved: ResolvedModel) -> Path | None:
    """The model's own vocab.txt when it ships one (Hugging Face checkpoints)."""
    candidate = Path(resolved.source) / "vocab.txt"
    return candidate if candidate.is_file() else None
