"""A model file never runs code or touches files: hostile stand-ins are refused before they run.

Each hostile model carries a payload that writes a marker file; where the framework can run
it, the test first proves the payload live (running it directly writes the marker), then
that the backend refuses the file, naming it and the reason in one line, and that the
marker was not written. Positive controls show the normal stand-ins still load. Each test
skips, naming the extra to install, where its framework is missing.
"""

from __future__ import annotations

import builtins
import os
from pathlib import Path

import numpy as np
import pytest

from backends import BackendError, BackendSettings, get_backend_class
from backends.tensor_names import INPUTS, OUTPUTS
from tests.helpers import CPU, needs, open_backend, random_batch
from tests.tiny_models import (
    make_mlperf_frozen_graph,
    make_mlperf_pytorch_state_dict,
    make_onnx_with_names,
)

UNSAFE_ADVICE = ("weights_only", "safe_globals", "trust")


def assert_refused(info: pytest.ExceptionInfo, path: Path, *named: str) -> str:
    """The refusal is one line naming the file and every string in ``named``."""
    message = str(info.value)
    assert "\n" not in message and str(path) in message and "refused" in message
    for text in named:
        assert text in message
    return message


# ---- TensorFlow ---------------------------------------------------------------------------


def _tf():
    needs("tf", purpose="the TensorFlow safety checks")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf


def _payload(tf, marker: Path, how: str, value):
    """``value`` passed through an op that writes ``marker`` when run, in the current graph."""
    if how == "write_file":
        with tf.control_dependencies([tf.io.write_file(str(marker), "ran")]):
            return tf.identity(value)
    if how == "py_func":
        def write() -> np.float32:
            marker.write_text("ran")
            return np.float32(0)

        with tf.control_dependencies([tf.compat.v1.py_func(write, [], tf.float32)]):
            return tf.identity(value)

    @tf.function  # "function": the op hides in a function of the graph's library
    def passthrough(t):
        tf.io.write_file(str(marker), "ran")
        return t

    return passthrough(value)


def _hostile_frozen_graph(tf, path: Path, marker: Path, how: str) -> Path:
    """MLPerf's model.pb stand-in whose ``logits`` depends on a payload writing ``marker``;
    the payload is proved live (running the graph writes the marker, removed after)."""
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(make_mlperf_frozen_graph(path).read_bytes())
    next(n for n in graph_def.node if n.name == "logits").name = "bert_logits"
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
        logits = tf.identity(_payload(tf, marker, how, graph.get_tensor_by_name("bert_logits:0")),
                             name="logits")
    ones = np.ones((1, 384), np.int32)
    with tf.compat.v1.Session(graph=graph) as session:
        session.run(logits, {f"{n}:0": ones for n in INPUTS["mlperf"]})
    assert marker.exists()
    marker.unlink()
    path.write_bytes(graph.as_graph_def().SerializeToString())
    return path


@pytest.mark.parametrize(("how", "op"), [("write_file", "WriteFile"), ("py_func", "PyFunc"),
                                         ("function", "WriteFile")])
def test_frozen_graph_with_side_effects_is_refused_unrun(tmp_path: Path, how, op) -> None:
    tf = _tf()
    marker = tmp_path / "written_by_the_model"
    path = _hostile_frozen_graph(tf, tmp_path / "model.pb", marker, how)
    with pytest.raises(BackendError) as info:
        open_backend("tensorflow", path)
    message = assert_refused(info, path, f"({op})", "not pure computation")
    assert "SaveV2" not in message and not marker.exists()


def _toy_logits(tf, features: dict):
    """``[B, S, 2]`` logits from the features: start = mask, end = segments."""
    return tf.stack([tf.cast(features["input_mask"], tf.float32),
                     tf.cast(features["segment_ids"], tf.float32)], -1)


def _tf2_saved_model(tf, export_dir: Path, marker: Path | None) -> Path:
    """A ``tf.saved_model.save`` SavedModel with a variable; with ``marker``, its serving
    function writes it (proved live by calling the loaded signature, marker removed)."""
    module = tf.Module()
    module.scale = tf.Variable(1.0)
    spec = {k: tf.TensorSpec([None, None], tf.int32, name=k) for k in INPUTS["mlperf"]}

    @tf.function(input_signature=[spec])
    def serve(features: dict) -> dict:
        logits = _toy_logits(tf, features) * module.scale
        if marker is not None:
            tf.io.write_file(str(marker), "ran")
        return {"logits": logits}

    tf.saved_model.save(module, str(export_dir), signatures={"serving_default": serve})
    if marker is not None:
        assert not marker.exists()  # tracing and saving run nothing
        loaded = tf.saved_model.load(str(export_dir))
        ones = tf.ones((1, 4), tf.int32)
        loaded.signatures["serving_default"](**{k: ones for k in INPUTS["mlperf"]})
        assert marker.exists()
        marker.unlink()
    return export_dir


def _tf1_saved_model(tf, export_dir: Path, variant: str, marker: Path) -> Path:
    """A ``tf.compat.v1.saved_model.Builder`` SavedModel with a variable (restored with
    RestoreV2 by its saver). ``main_op``: its init op writes ``marker``; ``foreign_restore``:
    its restore op reads another checkpoint than the SavedModel's variables."""
    graph = tf.Graph()
    with graph.as_default():
        features = {k: tf.compat.v1.placeholder(tf.int32, [None, None], k)
                    for k in INPUTS["mlperf"]}
        scale = tf.compat.v1.get_variable("scale", initializer=1.0)
        logits = tf.identity(_toy_logits(tf, features) * scale, name="logits")
        main_op = tf.io.write_file(str(marker), "ran") if variant == "main_op" else None
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            builder = tf.compat.v1.saved_model.Builder(str(export_dir))
            signature = tf.compat.v1.saved_model.predict_signature_def(
                features, {"logits": logits})
            builder.add_meta_graph_and_variables(
                session, ["serve"], signature_def_map={"serving_default": signature},
                main_op=main_op)
            builder.save()
    assert not marker.exists()
    if variant == "foreign_restore":
        from tensorflow.core.protobuf import saved_model_pb2

        pb = export_dir / "saved_model.pb"
        saved_model = saved_model_pb2.SavedModel()
        saved_model.ParseFromString(pb.read_bytes())
        graph_def = saved_model.meta_graphs[0].graph_def
        elsewhere = graph_def.node.add(name="elsewhere", op="Const")
        elsewhere.attr["dtype"].type = tf.string.as_datatype_enum
        elsewhere.attr["value"].tensor.CopyFrom(
            tf.make_tensor_proto(str(export_dir.parent / "other" / "variables")))
        restore = next(n for n in graph_def.node if n.op == "RestoreV2")
        restore.input[0] = "elsewhere"
        pb.write_bytes(saved_model.SerializeToString())
    return export_dir


@pytest.mark.parametrize("version", ["tf2", "tf1"])
def test_saved_model_with_side_effects_is_refused_unrun(tmp_path: Path, version) -> None:
    tf = _tf()
    marker = tmp_path / "written_by_the_model"
    path = tmp_path / "saved_model"
    if version == "tf2":  # the serving function writes
        _tf2_saved_model(tf, path, marker)
    else:  # the init op the loader runs writes
        _tf1_saved_model(tf, path, "main_op", marker)
    with pytest.raises(BackendError) as info:
        open_backend("tensorflow", path)
    assert_refused(info, path, "(WriteFile)")
    assert not marker.exists()


def test_saved_model_restoring_another_checkpoint_is_refused(tmp_path: Path) -> None:
    tf = _tf()
    path = _tf1_saved_model(tf, tmp_path / "saved_model", "foreign_restore",
                            tmp_path / "unused")
    with pytest.raises(BackendError) as info:
        open_backend("tensorflow", path)
    assert_refused(info, path, "RestoreV2 of a path other than the SavedModel's variables")


@pytest.mark.parametrize("version", ["tf2", "tf1"])
def test_saved_models_with_variables_and_savers_still_load(tmp_path: Path, version) -> None:
    """Their saver's save path (SaveV2, MergeV2Checkpoints) is never run, so not refused;
    the restore path (RestoreV2 of the SavedModel's own variables) is allowed."""
    tf = _tf()
    marker = tmp_path / "unused"
    path = tmp_path / "saved_model"
    if version == "tf2":
        _tf2_saved_model(tf, path, None)
    else:
        _tf1_saved_model(tf, path, "clean", marker)
    text = (path / "saved_model.pb").read_bytes()
    assert b"SaveV2" in text and b"RestoreV2" in text
    batch = random_batch(batch=2, seq=16)
    with open_backend("tensorflow", path) as backend:
        start, end = backend.predict(batch)
    np.testing.assert_array_equal(start, batch.input_mask.astype(np.float32))
    np.testing.assert_array_equal(end, batch.segment_ids.astype(np.float32))


def test_frozen_graph_stand_ins_still_load(tmp_path: Path) -> None:
    _tf()
    for gelu in ("erf", "tanh"):  # transformers' GELU, and Google's (MLPerf's model.pb)
        path = make_mlperf_frozen_graph(tmp_path / f"{gelu}.pb", layers=1, gelu=gelu,
                                        batch_size=None, seq_len=None)
        with open_backend("tensorflow", path) as backend:
            start, _ = backend.predict(random_batch(batch=1, seq=32))
        assert start.shape == (1, 32)


def test_every_model_tf_bert_builds_is_pure_computation(tmp_path: Path) -> None:
    """The allow-list covers every op of the BERT graphs models.tf_bert builds (both GELUs,
    fixed and dynamic shapes) and of the SavedModels it writes."""
    _tf()
    from tensorflow.core.protobuf import saved_model_pb2

    from backends.model_safety import TF_PURE_OPS, check_tf_saved_model
    from models.tf_bert import frozen_graph_from_weights, write_saved_model
    from tests.tiny_models import random_google_weights

    weights = random_google_weights(layers=1, pooler=False)
    ops: set[str] = set()
    for gelu in ("erf", "tanh"):
        for shape in ((1, 384), (None, None)):
            graph_def = frozen_graph_from_weights(weights, 2, gelu=gelu, batch_size=shape[0],
                                                  seq_len=shape[1])
            ops |= {n.op for n in graph_def.node}
    for hf_names in (False, True):
        path = write_saved_model(graph_def, tmp_path / f"sm{hf_names}", hf_names=hf_names)
        saved_model = saved_model_pb2.SavedModel()
        saved_model.ParseFromString((path / "saved_model.pb").read_bytes())
        check_tf_saved_model(saved_model.meta_graphs[0], path)  # raises if not allowed
    assert ops <= TF_PURE_OPS, sorted(ops - TF_PURE_OPS)


# ---- ONNX ---------------------------------------------------------------------------------


def _onnx():
    needs("onnx", purpose="the ONNX safety checks")
    import onnx

    return onnx


def _plain_onnx(path: Path) -> Path:
    return make_onnx_with_names(path, list(INPUTS["mlperf"]), list(OUTPUTS["hf"]))


def _with_start_through(onnx, path: Path, *nodes, initializers=(), functions=()) -> Path:
    """The plain stand-in with ``start_logits`` recomputed by ``nodes`` from ``start_in``."""
    model = onnx.load(str(path))
    first = model.graph.node[0]
    first.output[0] = "start_in"
    model.graph.node.extend(nodes)
    model.graph.initializer.extend(initializers)
    model.functions.extend(functions)
    for function in functions:
        model.opset_import.append(onnx.helper.make_opsetid(function.domain, 1))
    for node in nodes:
        if node.domain and node.domain not in {o.domain for o in model.opset_import}:
            model.opset_import.append(onnx.helper.make_opsetid(node.domain, 1))
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("where", ["graph", "subgraph"])
def test_onnx_custom_domain_is_refused_before_onnxruntime(tmp_path: Path, where) -> None:
    onnx = _onnx()
    from onnx import TensorProto, helper

    evil = helper.make_node("Backdoor", ["start_in"], ["start_logits"], domain="evil.domain")
    if where == "subgraph":  # hidden in a branch of an If
        branch = helper.make_graph(
            [evil], "branch", [], [helper.make_tensor_value_info("start_logits",
                                                                 TensorProto.FLOAT, None)])
        evil = helper.make_node(
            "If", ["cond"], ["start_logits"], then_branch=branch, else_branch=branch)
        cond = helper.make_tensor("cond", TensorProto.BOOL, [], [True])
        path = _with_start_through(onnx, _plain_onnx(tmp_path / "m.onnx"), evil,
                                   initializers=[cond])
    else:
        path = _with_start_through(onnx, _plain_onnx(tmp_path / "m.onnx"), evil)
    with pytest.raises(BackendError) as info:
        open_backend("onnxruntime", path)
    assert_refused(info, path, "evil.domain: Backdoor", "custom_ops_library=PATH")
    assert info.value.__cause__ is None  # ours, not ONNX Runtime's failure


def test_onnx_contrib_ops_and_local_functions_still_load(tmp_path: Path) -> None:
    """com.microsoft (ORT's transformer-optimizer and quantization ops) is allowed, and a
    model-local function in its own domain (as exporters write) is checked, not refused."""
    onnx = _onnx()
    from onnx import helper

    twice = helper.make_function(
        "local.fns", "Twice", ["x"], ["y"], [helper.make_node("Add", ["x", "x"], ["y"])],
        [helper.make_opsetid("", 17)])
    path = _with_start_through(
        onnx, _plain_onnx(tmp_path / "m.onnx"),
        helper.make_node("Gelu", ["start_in"], ["gelu"], domain="com.microsoft"),
        helper.make_node("Twice", ["gelu"], ["start_logits"], domain="local.fns"),
        functions=[twice])
    batch = random_batch(batch=2, seq=8)
    with open_backend("onnxruntime", path) as backend:
        start, _ = backend.predict(batch)
        info = backend.describe()
    gelu_of_one = 0.8413447  # x * Phi(x) at 1; a mask is 0 or 1
    np.testing.assert_allclose(start, 2 * gelu_of_one * batch.input_mask, rtol=1e-6)
    assert info["custom_ops_library"] is None


def test_onnx_local_function_with_custom_op_is_refused(tmp_path: Path) -> None:
    onnx = _onnx()
    from onnx import helper

    hides = helper.make_function(
        "local.fns", "Innocent", ["x"], ["y"],
        [helper.make_node("Backdoor", ["x"], ["y"], domain="evil.domain")],
        [helper.make_opsetid("", 17), helper.make_opsetid("evil.domain", 1)])
    path = _with_start_through(
        onnx, _plain_onnx(tmp_path / "m.onnx"),
        helper.make_node("Innocent", ["start_in"], ["start_logits"], domain="local.fns"),
        functions=[hides])
    with pytest.raises(BackendError) as info:
        open_backend("onnxruntime", path)
    assert_refused(info, path, "evil.domain: Backdoor")


def _with_external_weight(onnx, path: Path, location: str) -> Path:
    """The stand-in with ``start_logits = start_in + w``, ``w`` stored at ``location``."""
    from onnx import TensorProto, helper

    weight = helper.make_tensor("w", TensorProto.FLOAT, [1], [0.0])
    weight.ClearField("float_data")
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "4")):
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    return _with_start_through(onnx, path, helper.make_node("Add", ["start_in", "w"],
                                                            ["start_logits"]),
                               initializers=[weight])


@pytest.mark.parametrize("where", ["parent", "absolute", "symlink", "memory"])
def test_onnx_external_data_outside_its_folder_is_refused(tmp_path: Path, where) -> None:
    onnx = _onnx()
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.float32(42).tobytes())
    folder = tmp_path / "model"
    folder.mkdir()
    location = {"parent": "../secret.bin", "absolute": str(secret), "symlink": "link.bin",
                "memory": "*/_ORT_MEM_ADDR_/*"}[where]
    if where == "symlink":
        (folder / "link.bin").symlink_to(secret)
    path = _with_external_weight(onnx, _plain_onnx(folder / "m.onnx"), location)
    with pytest.raises(BackendError) as info:
        open_backend("onnxruntime", path)
    assert_refused(info, path, f"tensor 'w' keeps its data in {location!r}")


def test_onnx_external_data_inside_its_folder_loads(tmp_path: Path) -> None:
    onnx = _onnx()
    (tmp_path / "weights.bin").write_bytes(np.float32(0.5).tobytes())
    path = _with_external_weight(onnx, _plain_onnx(tmp_path / "m.onnx"), "weights.bin")
    batch = random_batch(batch=1, seq=8)
    with open_backend("onnxruntime", path) as backend:
        start, _ = backend.predict(batch)
    np.testing.assert_array_equal(start, batch.input_mask.astype(np.float32) + 0.5)


def test_onnx_custom_ops_library_only_when_named(tmp_path: Path) -> None:
    _onnx()
    cls = get_backend_class("onnxruntime")
    assert "custom_ops_library" in cls.known_options
    path = _plain_onnx(tmp_path / "m.onnx")
    settings = BackendSettings(device="cpu", options={"custom_ops_library": tmp_path / "no.so"})
    with pytest.raises(BackendError, match="custom_ops_library .*no.so is not a file"):
        open_backend("onnxruntime", path, settings)
    not_a_library = tmp_path / "fake.so"
    not_a_library.write_bytes(b"not a shared library")
    settings = BackendSettings(device="cpu", options={"custom_ops_library": not_a_library})
    with pytest.raises(BackendError, match="cannot register the custom-op library"):
        open_backend("onnxruntime", path, settings)


# ---- PyTorch ------------------------------------------------------------------------------


class _WritesMarker:
    """Unpickling this runs ``open(marker, "w")``: the file appears."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (builtins.open, (str(self.marker), "w"))


@pytest.mark.parametrize("layout", ["zip", "legacy", "raw_pickle"])
def test_pickle_that_would_run_code_is_refused_without_unsafe_advice(tmp_path: Path,
                                                                     layout) -> None:
    needs("torch", purpose="the PyTorch safety checks")
    import pickle

    import torch

    marker = tmp_path / "written_by_the_model"
    path = tmp_path / "model.pytorch"
    content = {"qa_outputs.bias": torch.zeros(2), "payload": _WritesMarker(marker)}
    if layout == "raw_pickle":  # a plain pickle (protocol 4), not torch.save's layout
        path.write_bytes(pickle.dumps({"payload": _WritesMarker(marker)}, protocol=4))
        pickle.loads(path.read_bytes())
    else:
        torch.save(content, path, _use_new_zipfile_serialization=layout == "zip")
        torch.load(path, weights_only=False)  # proves the payload live
    assert marker.exists()
    marker.unlink()
    with pytest.raises(BackendError) as info:
        open_backend("pytorch", path)
    message = assert_refused(info, path, "would run code")
    for advice in UNSAFE_ADVICE:
        assert advice not in message.lower()
    assert not marker.exists()


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")
def test_torchscript_archive_is_refused_without_unsafe_advice(tmp_path: Path) -> None:
    needs("torch", purpose="the PyTorch safety checks")
    import torch

    path = tmp_path / "model.pt"
    torch.jit.script(torch.nn.Linear(2, 2)).save(str(path))
    with pytest.raises(BackendError) as info:
        open_backend("pytorch", path)
    message = assert_refused(info, path, "TorchScript archive")
    for advice in (*UNSAFE_ADVICE, "jit.load"):
        assert advice not in message.lower()


def test_pytorch_state_dict_stand_in_still_loads(tmp_path: Path) -> None:
    needs("torch", purpose="the PyTorch safety checks")
    path = make_mlperf_pytorch_state_dict(tmp_path / "model.pytorch", hidden=64, heads=1,
                                          intermediate=128)
    with open_backend("pytorch", path, CPU) as backend:
        start, _ = backend.predict(random_batch(batch=1, seq=16))
    assert start.shape == (1, 16)


def test_torch_refusal_never_repeats_unsafe_advice() -> None:
    """torch 2.6+'s texts (copied) for refusals where no GLOBAL is named."""
    from backends.model_safety import torch_refusal, without_unsafe_advice

    unsafe = ("Weights only load failed. In PyTorch 2.6, we changed the default value of the "
              "`weights_only` argument in `torch.load` from `False` to `True`. Re-running "
              "`torch.load` with `weights_only` set to `False` will likely succeed, but it can "
              "result in arbitrary code execution. Do it only if you got the file from a "
              "trusted source.")
    issue = ("Please file an issue with the following so that we can make `weights_only=True` "
             "compatible with your use case: WeightsUnpickler error: ")
    docs = "Check the documentation of torch.load to learn more about types accepted by default"
    cases = {
        f"{unsafe}\n{issue}\n\nUnsupported operand 149\n\n{docs}": "pickle opcode 149",
        f"{unsafe}\n{issue}\n\nOnly persistent_load of storage is allowed, but got <class "
        f"'str'>\n\n{docs}": "Only persistent_load of storage is allowed, but got <class 'str'>",
        f"{unsafe}\n\n\nTrying to load unsupported GLOBAL posix.system whose module posix is "
        f"blocked.\n\n{docs}": "it calls posix.system",
        f"{unsafe}\n{docs}": "it is not a plain pickle of tensors",
    }
    for text, want in cases.items():
        got = torch_refusal(text)
        assert want in got and not any(a in got.lower() for a in UNSAFE_ADVICE), got
    assert without_unsafe_advice(f"Cannot use ``weights_only=True`` here. {unsafe}") == ""
    assert without_unsafe_advice("PytorchStreamReader failed reading zip archive") \
        == "PytorchStreamReader failed reading zip archive"


def test_checks_import_no_framework() -> None:
    """The checks read protobuf messages only: model_safety imports no framework."""
    import subprocess
    import sys

    code = ("import sys, backends.model_safety; "
            "sys.exit(bool({'tensorflow', 'torch', 'onnx', 'onnxruntime'} & set(sys.modules)))")
    root = Path(__file__).resolve().parents[1]
    assert subprocess.run([sys.executable, "-c", code], cwd=root, check=False).returncode == 0
