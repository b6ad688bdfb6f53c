"""TensorFlow backend on faithful stand-ins for MLPerf's model.pb and on SavedModels."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from backends import BackendError, BackendSettings, FeatureBatch
from common.errors import ConfigError
from common.settings import build
from models.catalog import resolve_model
from tests.helpers import (
    FAST_CONF,
    isolated,
    needs,
    open_backend,
    random_batch,
    squad_data,
    torch_logits,
)
from tests.tiny_models import make_mlperf_frozen_graph, random_google_weights

needs("tf", purpose="the TensorFlow backend tests")

ATOL = 1e-4  # logits, absolute; TF vs transformers measured ~2e-7 on the tiny model
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def weights() -> dict[str, np.ndarray]:
    return random_google_weights(seed=3)


@pytest.fixture(scope="module")
def model_pb(tmp_path_factory, weights) -> Path:
    """Like MLPerf's model.pb: int32 placeholders fixed to [1, 384], output logits."""
    from models.tf_bert import frozen_graph_from_weights, write_frozen_graph

    path = tmp_path_factory.mktemp("tf") / "model.pb"
    return write_frozen_graph(frozen_graph_from_weights(weights, 2, batch_size=1, seq_len=384),
                              path)


@pytest.fixture(scope="module")
def dynamic_pb(tmp_path_factory, weights) -> Path:
    from models.tf_bert import frozen_graph_from_weights, write_frozen_graph

    path = tmp_path_factory.mktemp("tf_dyn") / "dynamic.pb"
    return write_frozen_graph(frozen_graph_from_weights(weights, 2), path)


@pytest.fixture(scope="module")
def torch_reference(weights):
    """transformers' BertForQuestionAnswering on the same weights: an independent model."""
    needs("torch", purpose="the transformers reference model")
    from models.convert import torch_model

    return torch_model(weights, heads=2)


@pytest.mark.parametrize("batch_size", [1, 3])
def test_mlperf_frozen_graph_matches_transformers(model_pb, torch_reference, batch_size) -> None:
    batch = random_batch(batch=batch_size, seed=batch_size)
    want_start, want_end = torch_logits(torch_reference, batch)
    with open_backend("tensorflow", model_pb) as backend:
        start, end = backend.predict(batch)
        info = backend.describe()
    for got, want in ((start, want_start), (end, want_end)):
        assert got.dtype == np.float32 and got.shape == (batch_size, 384)
        assert got.flags["C_CONTIGUOUS"]
        np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)
    assert info["input_names"] == ["input_ids:0", "input_mask:0", "segment_ids:0"]
    assert info["output_names"] == ["logits:0"]
    assert info["input_dtypes"] == ["int32"] * 3
    assert info["fixed_batch_size"] == 1 and info["fixed_sequence_length"] == 384
    assert info["model_format"] == "tf-frozen" and info["version"].startswith("2.")


def test_dynamic_graph_other_shapes_and_int32_features(dynamic_pb, torch_reference) -> None:
    batch = random_batch(batch=2, seq=128, seed=5)
    batch32 = FeatureBatch(*(a.astype(np.int32) for a in
                             (batch.input_ids, batch.input_mask, batch.segment_ids)))
    want_start, want_end = torch_logits(torch_reference, batch)
    with open_backend("tensorflow", dynamic_pb) as backend:
        start, end = backend.predict(batch32)
        assert backend.describe()["fixed_batch_size"] is None
    np.testing.assert_allclose(start, want_start, rtol=0, atol=ATOL)
    np.testing.assert_allclose(end, want_end, rtol=0, atol=ATOL)


@pytest.mark.parametrize("hf_names", [False, True])
def test_saved_model_signatures(tmp_path, dynamic_pb, torch_reference, hf_names) -> None:
    from models.tf_bert import read_frozen_graph, write_saved_model

    saved = write_saved_model(read_frozen_graph(dynamic_pb), tmp_path / "saved", hf_names=hf_names)
    batch = random_batch(batch=2, seq=64, seed=7)
    with open_backend("tensorflow", saved) as backend:
        start, end = backend.predict(batch)
        info = backend.describe()
    want_start, _ = torch_logits(torch_reference, batch)
    np.testing.assert_allclose(start, want_start, rtol=0, atol=ATOL)
    assert end.shape == (2, 64) and info["model_format"] == "tf-savedmodel"
    assert len(info["output_names"]) == (2 if hf_names else 1)
    resolved = resolve_model(str(saved), "tensorflow")
    assert resolved.format == "tf-savedmodel" and resolved.path == saved


def test_wrong_tensor_names_are_listed(tmp_path) -> None:
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        ids = tf.compat.v1.placeholder(tf.int32, [None, None], name="ids")
        mask = tf.compat.v1.placeholder(tf.int32, [None, None], name="mask")
        tf.cast(ids + mask, tf.float32, name="scores")
    path = tmp_path / "odd.pb"
    path.write_bytes(graph.as_graph_def().SerializeToString())
    with pytest.raises(BackendError) as info:
        open_backend("tensorflow", path)
    message = str(info.value)
    for text in (str(path), "ids:0 [None, None] int32", "mask:0", "scores:0",
                 "segment_ids", "token_type_ids", "logits"):
        assert text in message


def test_missing_corrupt_and_non_savedmodel_paths(tmp_path, model_pb) -> None:
    garbage = tmp_path / "broken.pb"
    garbage.write_bytes(model_pb.read_bytes()[:5000])
    empty_dir = tmp_path / "not_saved"
    empty_dir.mkdir()
    for path, expected in ((tmp_path / "absent.pb", "does not exist"),
                           (garbage, "cannot load"), (empty_dir, "saved_model.pb")):
        with pytest.raises(BackendError, match=expected) as info:
            open_backend("tensorflow", path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_fixed_sequence_length_and_settings_errors(model_pb) -> None:
    with open_backend("tensorflow", model_pb) as backend:
        with pytest.raises(BackendError, match="exactly 384 tokens"):
            backend.predict(random_batch(batch=1, seq=128))
    # bad shared settings never reach a backend: the settings refuse them when made
    with pytest.raises(ConfigError, match="cpu, gpu, auto"):
        build(BackendSettings, {"device": "tpu"})
    with pytest.raises(ConfigError, match="a whole number from 0"):
        build(BackendSettings, {"intra_op_threads": -1})
    backend = open_backend("tensorflow", model_pb)
    backend.close()
    with pytest.raises(BackendError, match="load"):
        backend.predict(random_batch(batch=1))


def test_gpu_required_but_absent(model_pb) -> None:
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    with pytest.raises(BackendError, match="sees no GPU"):
        open_backend("tensorflow", model_pb, BackendSettings(device="gpu"))


def test_threads_apply_once_per_process_and_import_is_cheap(model_pb) -> None:
    """Fresh process: importing the backend loads no TF; a second load cannot change threads."""
    code = f"""
import sys
from backends import BackendError, BackendSettings, get_backend_class
cls = get_backend_class("tensorflow")
assert "tensorflow" not in sys.modules, "importing the backend imported TensorFlow"
first = cls(BackendSettings(intra_op_threads=1, inter_op_threads=1, device="cpu"))
first.load({str(model_pb)!r})
assert first.describe()["intra_op_threads"] == 1
cls(BackendSettings(intra_op_threads=1, inter_op_threads=1)).load({str(model_pb)!r})
try:
    cls(BackendSettings(intra_op_threads=2)).load({str(model_pb)!r})
except BackendError as exc:
    assert "new process" in str(exc), exc
    sys.exit(0)
sys.exit("no error for a thread change")
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.slow
def test_accuracy_run_end_to_end(tmp_path, squad_dir: Path) -> None:
    """LoadGen accuracy mode through harness.runner.execute, in a fresh process."""
    import json

    from harness.runner import RunConfig
    from squad.postprocess import read_accuracy_log

    model = make_mlperf_frozen_graph(tmp_path / "model.pb", seed=1)
    conf = tmp_path / "user.conf"
    conf.write_text(FAST_CONF)
    data = squad_data(tmp_path, squad_dir, max_examples=5)
    config = RunConfig(
        scenario="Offline", mode="accuracy", backend="tensorflow", model=str(model),
        system="tf-test", batch_size=2, user_conf=conf, data=data,
        results_dir=tmp_path / "results", progress=False,
        backend_settings=BackendSettings(intra_op_threads=1, inter_op_threads=1, device="cpu"),
    )
    outcome = isolated(config, timeout_s=300)
    run = outcome.directory
    settings = json.loads((run / "settings.json").read_text())
    assert settings["backend"]["backend"] == "tensorflow"
    assert settings["backend"]["fixed_batch_size"] == 1  # batches of 2 fed row by row
    assert settings["model"]["format"] == "tf-frozen"
    logits = read_accuracy_log(run / "mlperf_log_accuracy.json")
    assert sorted(logits) == list(range(settings["data"]["features"]))
    assert all(s.dtype == np.float32 and s.shape == (384,) for s, _ in logits.values())
    assert (run / "predictions.json").is_file() and outcome.accuracy is not None
