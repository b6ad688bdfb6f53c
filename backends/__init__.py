"""Backend registry: names map to ``"module:Class"`` strings, imported only when asked for.

``get_backend_class("onnxruntime")`` never imports TensorFlow or PyTorch. An unknown name
is answered with the closest known names; a backend whose framework is missing names the
``pip install`` extra that brings it.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
from pathlib import Path

from backends import formats
from backends.base import Backend, BackendError, BackendSettings, FeatureBatch


@dataclasses.dataclass(frozen=True)
class BackendEntry:
    """A registered backend: where its class is, the pyproject extra that installs its
    framework, and the model formats (:mod:`backends.formats`) it loads as they are."""

    target: str  # "module:Class"
    extra: str
    formats: tuple[str, ...]
    # a wrapper runs another backend: (the option naming it, its default); the model is then
    # resolved for that backend's formats
    wraps: tuple[str, str] | None = None

    def install_hint(self) -> str:
        return f"pip install -e '.[{self.extra}]'" if self.extra else "pip install -e ."


REGISTRY: dict[str, BackendEntry] = {
    "onnxruntime": BackendEntry(
        "backends.onnxruntime_backend:OnnxRuntimeBackend", "onnx", (formats.ONNX,)
    ),
    "pytorch": BackendEntry(
        "backends.pytorch_backend:PyTorchBackend", "torch", (formats.PYTORCH, formats.HF)
    ),
    "tensorflow": BackendEntry(
        "backends.tensorflow_backend:TensorFlowBackend", "tf",
        (formats.TF_FROZEN, formats.TF_SAVEDMODEL),
    ),
    "ray": BackendEntry(
        "backends.ray_backend:RayBackend", "ray", (), wraps=("backend", "onnxruntime")
    ),
    # a simulated wafer-scale engine: answers from the numerics backend, timed by a model
    "wafer": BackendEntry(
        "backends.wafer_backend:WaferBackend", "", (), wraps=("numerics", "onnxruntime")
    ),
    # no model: it accepts (and ignores) every format a run can name
    "null": BackendEntry(
        "backends.null:NullBackend", "",
        tuple(f for f in formats.FORMATS if f != formats.TF_CKPT),
    ),
}

__all__ = [
    "REGISTRY",
    "BackendEntry",
    "Backend",
    "BackendError",
    "BackendSettings",
    "FeatureBatch",
    "UnknownBackendError",
    "available_backends",
    "backend_entry",
    "get_backend_class",
    "load_backend",
    "model_backend",
]


class UnknownBackendError(BackendError):
    """The requested backend name is not registered."""


def available_backends() -> list[str]:
    """Registered backend names, sorted."""
    return sorted(REGISTRY)


def get_backend_class(name: str) -> type[Backend]:
    """Import and return the backend class registered as ``name``."""
    entry = backend_entry(name)
    module_name, class_name = entry.target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BackendError(
            f"backend {name!r} needs a library that is not installed ({exc.name or exc}). "
            f"Install it with: {entry.install_hint()}"
        ) from exc
    return getattr(module, class_name)


def load_backend(name: str, model_path: Path | None,
                 settings: BackendSettings | None = None) -> Backend:
    """A backend ``name`` with ``model_path`` loaded (use it as a context manager to close
    it); the converters and exporters validate their output through this."""
    backend = get_backend_class(name)(settings)
    try:
        backend.load(model_path)
    except BaseException:
        backend.close()
        raise
    return backend


def model_backend(name: str, options: dict | None = None) -> str:
    """The backend whose formats decide which model file a run of ``name`` loads: ``name``
    itself, or for a wrapper (``ray``) the backend it runs."""
    entry = backend_entry(name)
    if entry.wraps is None:
        return name
    option, default = entry.wraps
    inner = str((options or {}).get(option, default))
    return "null" if inner == "none" else model_backend(inner)  # no numerics: any format


def backend_entry(name: str) -> BackendEntry:
    """The registry entry of ``name``; an unknown name is answered with the closest ones."""
    if name in REGISTRY:
        return REGISTRY[name]
    close = difflib.get_close_matches(name, REGISTRY, n=3, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise UnknownBackendError(
        f"unknown backend {name!r}.{hint} Known backends: {', '.join(available_backends())}."
    )
