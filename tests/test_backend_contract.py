"""The backend contract, checked on every registered backend: the tests come from the registry.

A backend added to ``backends.REGISTRY`` gets these tests as soon as it names a small
stand-in model below; each is skipped, naming the extra to install, where its framework is
missing. Framework-specific behaviour (tensor names, file layouts, conversions) is tested
in the backend's own module.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from backends import (
    REGISTRY,
    BackendError,
    BackendSettings,
    formats,
    get_backend_class,
    model_backend,
)
from backends.base import DEVICES
from backends.tensor_names import INPUTS, OUTPUTS
from common.errors import ConfigError
from common.settings import build, declared_fields
from tests.helpers import CPU, needs, open_backend, random_batch
from tests.tiny_models import (
    make_mlperf_frozen_graph,
    make_mlperf_pytorch_state_dict,
    make_onnx_with_names,
)

SEQ = 384
# backend -> a function writing a small model it loads into a folder (None: no model)
STAND_INS: dict[str, Callable[[Path], Path | None]] = {
    "onnxruntime": lambda d: make_onnx_with_names(
        d / "model.onnx", list(INPUTS["mlperf"]), list(OUTPUTS["mlperf"])),
    "pytorch": lambda d: make_mlperf_pytorch_state_dict(
        d / "model.pytorch", hidden=64, heads=1, intermediate=128),
    "tensorflow": lambda d: make_mlperf_frozen_graph(d / "model.pb"),
    "null": lambda d: None,
    # the wafer backend takes its answers from ONNX Runtime by default
    "wafer": lambda d: make_onnx_with_names(
        d / "model.onnx", list(INPUTS["mlperf"]), list(OUTPUTS["mlperf"])),
    # the ray backend runs ONNX Runtime in its actors by default
    "ray": lambda d: make_onnx_with_names(
        d / "model.onnx", list(INPUTS["mlperf"]), list(OUTPUTS["mlperf"])),
}
BACKENDS = sorted(REGISTRY)


def test_every_registered_backend_has_a_stand_in() -> None:
    assert set(STAND_INS) == set(REGISTRY)


@pytest.fixture(scope="module", params=BACKENDS)
def backend_name(request: pytest.FixtureRequest) -> str:
    entry = REGISTRY[request.param]
    if entry.extra:
        needs(entry.extra, purpose=f"the {request.param} backend")
    if entry.wraps is not None:  # a wrapper needs the backend it runs by default
        needs(REGISTRY[entry.wraps[1]].extra, purpose=f"the {request.param} backend")
    if request.param == "ray":  # one local Ray instance for these tests: each backend joins it
        import ray

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        request.addfinalizer(ray.shutdown)
    return request.param


@pytest.fixture(scope="module")
def model(backend_name: str, tmp_path_factory: pytest.TempPathFactory) -> Path | None:
    return STAND_INS[backend_name](tmp_path_factory.mktemp(backend_name))


def test_the_stand_in_is_in_a_format_the_backend_declares(backend_name, model) -> None:
    if model is None:
        pytest.skip(f"{backend_name} loads no model")
    # a wrapper (ray) loads what the backend it runs loads
    assert formats.detect_format(model) in REGISTRY[model_backend(backend_name)].formats


@pytest.mark.parametrize("batch_size", [1, 3])
def test_predict_returns_float32_logits_for_each_row(backend_name, model, batch_size) -> None:
    batch = random_batch(batch_size, SEQ)
    with open_backend(backend_name, model) as backend:
        start, end = backend.predict(batch)
    for logits in (start, end):
        assert logits.shape == (batch_size, SEQ)
        assert logits.dtype == np.float32 and logits.flags.c_contiguous
        assert np.isfinite(logits).all()
    assert not np.array_equal(start, end)  # two outputs, not one fed twice


def test_a_row_does_not_depend_on_its_batch(backend_name, model) -> None:
    batch = random_batch(3, SEQ, seed=7)
    with open_backend(backend_name, model) as backend:
        together = backend.predict(batch)
        for row in range(3):
            alone = backend.predict(type(batch)(*(a[row:row + 1] for a in batch.arrays())))
            for got, want in zip(alone, together, strict=True):
                np.testing.assert_allclose(got[0], want[row], rtol=0, atol=1e-4)


def test_predict_needs_a_loaded_model_and_not_a_closed_one(backend_name, model) -> None:
    backend = get_backend_class(backend_name)(CPU)
    with pytest.raises(BackendError, match="load"):
        backend.predict(random_batch(1, SEQ))
    backend.load(model)
    backend.predict(random_batch(1, SEQ))
    backend.close()
    with pytest.raises(BackendError, match="load"):
        backend.predict(random_batch(1, SEQ))


def test_asking_for_an_absent_gpu_is_a_clear_error(backend_name, model) -> None:
    if backend_name == "null":
        pytest.skip("the null backend runs no model, on any device")
    backend = get_backend_class(backend_name)(BackendSettings(device="gpu"))
    try:
        backend.load(model)
    except BackendError as exc:
        assert "gpu" in str(exc).lower() and ("cpu" in str(exc) or "CUDA" in str(exc))
    else:
        backend.close()
        pytest.skip("this machine has a GPU the backend can use")


def test_a_bad_device_or_thread_count_is_refused_before_any_backend_exists() -> None:
    with pytest.raises(ConfigError, match="device: got 'tpu'; expected one of "
                       + ", ".join(DEVICES)):
        build(BackendSettings, {"device": "tpu"})
    with pytest.raises(ConfigError, match="intra_op_threads: got -1; expected a whole number "
                       "from 0 to 1,024"):
        build(BackendSettings, {"intra_op_threads": -1})


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "1e300", "word", True])
def test_every_option_of_every_backend_refuses_a_bad_value_in_one_line(backend_name,
                                                                         value) -> None:
    """Each backend's options are typed: a number, a switch or a choice refuses what it
    cannot be, naming the backend, the option and what it accepts (text options take any
    text, so they are left out)."""
    backend_class = get_backend_class(backend_name)
    assert backend_class.Options is not None, f"{backend_name} declares no typed options"
    for declared in declared_fields(backend_class.Options):
        if declared.kind in ("text", "path"):
            continue
        if declared.kind == "flag" and value is True:
            continue
        with pytest.raises(BackendError) as raised:
            backend_class(BackendSettings(options={declared.name: value}))
        message = str(raised.value)
        assert "\n" not in message
        assert f"{backend_name} backend: option {declared.name}: got" in message
        assert f"expected {declared.accepts()}" in message


def test_an_unknown_option_is_refused_naming_the_known_ones(backend_name) -> None:
    backend_class = get_backend_class(backend_name)
    with pytest.raises(BackendError) as raised:
        backend_class(BackendSettings(options={"graph_optimisation_level": "basic"}))
    message = str(raised.value)
    assert "graph_optimisation_level" in message
    assert all(known in message for known in backend_class.known_options)


def test_a_missing_model_file_is_named(backend_name, tmp_path: Path) -> None:
    if backend_name == "null":
        pytest.skip("the null backend reads no file")
    missing = tmp_path / "nowhere" / "model.onnx"
    with pytest.raises(BackendError, match="nowhere"):
        open_backend(backend_name, missing)


def test_version_and_description_are_recorded(backend_name, model) -> None:
    with open_backend(backend_name, model) as backend:
        assert backend.version() and isinstance(backend.version(), str)
        described = backend.describe()
    assert described["backend"] == backend_name
    json.dumps(described)  # recorded in settings.json beside every result
