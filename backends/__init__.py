"""Backend registry: names map to ``"module:Class"`` strings, imported only when asked for.

``get_backend_class("onnxruntime")`` never imports TensorFlow or PyTorch. An unknown name
is answered with the closest known names; a backend whose framework is missing names the
``pip install`` extra that brings it.
"""

from __future__ import annotations

import difflib
import importlib

from backends.base import Backend, BackendError, BackendSettings, FeatureBatch

# name -> (import path, pyproject extra that installs its framework)
REGISTRY: dict[str, tuple[str, str]] = {
    "onnxruntime": ("backends.onnxruntime_backend:OnnxRuntimeBackend", "onnx"),
    "pytorch": ("backends.pytorch_backend:PyTorchBackend", "torch"),
    "tensorflow": ("backends.tensorflow_backend:TensorFlowBackend", "tf"),
    "null": ("backends.null:NullBackend", ""),
}

__all__ = [
    "REGISTRY",
    "Backend",
    "BackendError",
    "BackendSettings",
    "FeatureBatch",
    "UnknownBackendError",
    "available_backends",
    "get_backend_class",
]


class UnknownBackendError(BackendError):
    """The requested backend name is not registered."""


def available_backends() -> list[str]:
    """Registered backend names, sorted."""
    return sorted(REGISTRY)


def get_backend_class(name: str) -> type[Backend]:
    """Import and return the backend class registered as ``name``."""
    if name not in REGISTRY:
        close = difflib.get_close_matches(name, REGISTRY, n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UnknownBackendError(
            f"unknown backend {name!r}.{hint} Known backends: {', '.join(available_backends())}."
        )
    target, extra = REGISTRY[name]
    module_name, class_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        fix = f"pip install -e '.[{extra}]'" if extra else "pip install -e ."
        raise BackendError(
            f"backend {name!r} needs a library that is not installed ({exc.name or exc}). "
            f"Install it with: {fix}"
        ) from exc
    return getattr(module, class_name)
