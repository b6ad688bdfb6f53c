"""Model names and paths resolve through the backends' declared formats and the run's data."""

from __future__ import annotations

from pathlib import Path

import pytest

from backends import REGISTRY, formats
from common.errors import ConfigError, DataError
from models import catalog
from squad.data import DataConfig
from tests.helpers import needs


@pytest.fixture()
def tiny_in_catalog(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The tiny checkpoint as catalog model "tiny": its ONNX export and int8 builds need
    the [onnx] and [export] extras (checked before the checkpoint is built)."""
    needs("onnx", "export", purpose="building ONNX models from a Hugging Face checkpoint")
    tiny_hf_dir = request.getfixturevalue("tiny_hf_dir")
    spec = catalog.ModelSpec("tiny", "tiny test model", formats.HF, "fp32", "onnxruntime",
                             local_dirs=(str(tiny_hf_dir),))
    monkeypatch.setitem(catalog.CATALOG, "tiny", spec)
    return "tiny"


def test_every_catalog_format_is_loaded_by_some_backend() -> None:
    loadable = {f for entry in REGISTRY.values() if entry.extra for f in entry.formats}
    assert {spec.format for spec in catalog.CATALOG.values()} <= loadable


@pytest.mark.parametrize(
    ("name", "make", "expected"),
    [
        ("m.onnx", lambda p: p.write_bytes(b"x"), formats.ONNX),
        ("model.pytorch", lambda p: p.write_bytes(b"x"), formats.PYTORCH),
        ("w.pth", lambda p: p.write_bytes(b"x"), formats.PYTORCH),
        ("w.safetensors", lambda p: p.write_bytes(b"x"), formats.PYTORCH),
        ("model.pb", lambda p: p.write_bytes(b"x"), formats.TF_FROZEN),
        ("hf", lambda p: (p.mkdir(), (p / "config.json").write_text("{}")), formats.HF),
        ("sm", lambda p: (p.mkdir(), (p / "saved_model.pb").write_bytes(b"")),
         formats.TF_SAVEDMODEL),
        ("model.ckpt-1", lambda p: Path(f"{p}.index").write_bytes(b""), formats.TF_CKPT),
    ],
)
def test_one_detector_names_every_format(tmp_path: Path, name, make, expected) -> None:
    path = tmp_path / name
    make(path)
    assert formats.detect_format(path) == expected


def test_weights_of_a_checkpoint_directory_are_that_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"")
    assert formats.detect_format(tmp_path / "model.safetensors") == formats.HF
    assert formats.checkpoint_dir(tmp_path / "model.safetensors") == tmp_path


@pytest.mark.parametrize("name", ["model.txt", "empty-dir", "missing.onnx"])
def test_unknown_formats_list_what_is_accepted(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    if name == "model.txt":
        path.write_text("x")
    elif name == "empty-dir":
        path.mkdir()
    with pytest.raises(formats.ModelFormatError) as raised:
        formats.detect_format(path)
    assert str(path) in str(raised.value)
    with pytest.raises(ConfigError):  # the catalog says the same as a user error
        catalog.resolve_model(str(path), "onnxruntime")


def test_a_format_no_backend_loads_names_the_formats_it_does(tmp_path: Path) -> None:
    state_dict = tmp_path / "model.pytorch"
    state_dict.write_bytes(b"x")
    with pytest.raises(ConfigError, match=r"loads onnx\)") as raised:
        catalog.resolve_model(str(state_dict), "onnxruntime")
    assert "python -m models.convert" in str(raised.value)


@pytest.mark.slow
def test_int8_model_built_during_a_run_calibrates_from_the_runs_data(
    tiny_in_catalog: str, tmp_path: Path, squad_dir: Path
) -> None:
    store = tmp_path / "store"
    # data the run cannot find: the error names the run's folder, not the default one
    missing = DataConfig(data_dir=tmp_path / "run-data", cache_dir=tmp_path / "run-cache",
                         mirrors=(tmp_path / "no-mirror",), download=False)
    with pytest.raises(DataError, match=str(tmp_path / "run-data")):
        catalog.resolve_model(f"{tiny_in_catalog}-int8-static", "onnxruntime", store,
                              data=missing)
    # the run's own data: the calibration features are built into the run's cache
    data = DataConfig(data_dir=tmp_path / "run-data", cache_dir=tmp_path / "run-cache",
                      mirrors=(squad_dir,), download=False)
    resolved = catalog.resolve_model(f"{tiny_in_catalog}-int8-static", "onnxruntime", store,
                                     data=data)
    assert resolved.precision == "int8" and resolved.path.is_file()
    assert (tmp_path / "run-data" / "dev-v1.1.json").is_file()
    assert list((tmp_path / "run-cache").iterdir()), "features were not built in the run's cache"


def test_a_run_hands_its_data_settings_to_model_resolution(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness import runner

    seen = {}

    class Stop(Exception):
        pass

    def fake_resolve(*args, **kwargs):
        seen.update(kwargs)
        raise Stop

    monkeypatch.setattr(runner, "resolve_model", fake_resolve)
    data = DataConfig(data_dir=tmp_path / "d", cache_dir=tmp_path / "c", mirrors=(tmp_path,))
    conf = tmp_path / "user.conf"
    conf.write_text("")
    with pytest.raises(Stop):
        runner.execute(runner.RunConfig(backend="null", model="x-int8-static", data=data,
                                        user_conf=conf))
    assert seen["data"] == data
