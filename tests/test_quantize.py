"""Int8 quantization of a tiny random BERT: dynamic and static QDQ, recipes, specs, catalog.

Quantizing needs the [onnx] extra and the tiny model's export [export]; the calibration
specs are plain Python and run everywhere.
"""

from __future__ import annotations

import collections
import json
from pathlib import Path

import numpy as np
import pytest

from backends import FeatureBatch
from common.errors import ConfigError
from common.files import file_md5
from models import catalog, derived, quantize
from models.calibration import parse_calibration_spec
from models.quantize import QuantizeError, QuantizeSettings, quantize_model, read_recipe
from squad.features import FeatureSet
from tests.helpers import CPU_1T, needs, open_backend, random_features

SEQ = 384


def load_onnx(path: Path):
    import onnx  # the tests get here through the fp32 fixture, which skips without it

    return onnx.load(str(path))


def op_counts(path: Path) -> collections.Counter:
    return collections.Counter(node.op_type for node in load_onnx(path).graph.node)


def run(path: Path, batch: FeatureBatch) -> tuple[np.ndarray, np.ndarray, dict]:
    with open_backend("onnxruntime", path, CPU_1T) as backend:
        start, end = backend.predict(batch)
        return start, end, backend.describe()


@pytest.fixture(scope="module")
def fp32(tiny_onnx: Path) -> Path:
    return tiny_onnx


@pytest.fixture(scope="module")
def features() -> FeatureSet:
    return random_features(seq=SEQ)


@pytest.fixture(scope="module")
def quantized(fp32: Path, features: FeatureSet, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("int8")
    settings = {
        "dynamic": QuantizeSettings("dynamic"),
        "static": QuantizeSettings("static", calibration="first:8"),
    }
    paths = {}
    for method, setting in settings.items():
        paths[method] = out / f"{method}.onnx"
        quantize_model(fp32, paths[method], setting, features=features)
    return paths


@pytest.mark.parametrize(
    ("method", "expected_ops"),
    [("dynamic", ("DynamicQuantizeLinear", "MatMulInteger")),
     ("static", ("QuantizeLinear", "DequantizeLinear"))],
)
def test_int8_graph_has_integer_ops_and_stays_close(
    method: str, expected_ops: tuple[str, ...], quantized: dict, fp32: Path, features
) -> None:
    path = quantized[method]
    counts = op_counts(path)
    # 2 layers x 4 weight MatMuls + the QA head; static also quantizes the 2 attention MatMuls
    for op in expected_ops:
        assert counts[op] >= 9, (op, counts)
    assert not op_counts(fp32).keys() & quantize.QUANTIZED_OPS
    batch = features.batch(slice(0, 4))
    want_start, want_end, want_info = run(fp32, batch)
    start, end, info = run(path, batch)
    assert info["input_names"] == want_info["input_names"]
    assert info["output_names"] == want_info["output_names"]
    for got, want in ((start, want_start), (end, want_end)):
        assert got.shape == want.shape == (4, SEQ)
        real = batch.input_mask.astype(bool)
        # Loose: int8 noise is a few % of the logit spread; a wrong scale, a zeroed or
        # shuffled weight gives errors of the order of the spread itself.
        error = np.abs(got - want)[real].max()
        assert error < 0.1 * np.ptp(want[real]), (error, np.ptp(want[real]))
        assert np.corrcoef(got[real], want[real])[0, 1] > 0.99


def test_recipe_records_source_output_and_calibration(quantized: dict, fp32: Path) -> None:
    for method, path in quantized.items():
        recipe = read_recipe(path)
        assert recipe is not None and recipe["method"] == method
        assert recipe["precision"] == "int8"
        assert recipe["source"]["md5"] == file_md5(fp32)
        assert recipe["output"]["md5"] == file_md5(path)
        assert recipe["onnxruntime_version"] and recipe["date"]
        assert recipe["settings"]["per_channel"] is False
    calibration = read_recipe(quantized["static"])["calibration"]
    assert calibration["spec"] == "first:8"
    assert calibration["feature_indexes"] == list(range(8))
    assert calibration["percentile"] == 99.99 and calibration["method"] == "percentile"
    assert read_recipe(quantized["dynamic"])["calibration"] is None


def test_fake_quant_stand_in_loads_and_predicts(fp32: Path, features, tmp_path: Path) -> None:
    """Like MLPerf's bert_large_v1_1_fake_quant.onnx: QDQ graph, Hugging Face input names,
    MLPerf output names."""
    import onnx

    model = load_onnx(fp32)
    renames = {"start_logits": "output_start_logits", "end_logits": "output_end_logits"}
    for node in model.graph.node:
        node.output[:] = [renames.get(name, name) for name in node.output]
    for output in model.graph.output:
        output.name = renames[output.name]
    mixed = tmp_path / "mixed_names.onnx"
    onnx.save(model, str(mixed))
    fake_quant = tmp_path / "fake_quant.onnx"
    quantize_model(mixed, fake_quant, QuantizeSettings("static", calibration="range:2:6"),
                   features=features)
    assert op_counts(fake_quant)["QuantizeLinear"] > 0
    graph = load_onnx(fake_quant).graph
    assert [i.name for i in graph.input] == ["input_ids", "attention_mask", "token_type_ids"]
    assert [o.name for o in graph.output] == list(renames.values())
    start, end, info = run(fake_quant, features.batch(slice(0, 3)))
    assert start.shape == end.shape == (3, SEQ)
    assert info["output_names"] == ["output_start_logits", "output_end_logits"]


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [("first", "expected first:N"), ("first:0", "at least 1"), ("first:x", "not an integer"),
     ("last:5", "expected first:N"), ("range:5", "range:START:STOP"),
     ("range:9:3", "START < STOP"), ("indexes:/no/such/file", "does not exist")],
)
def test_bad_calibration_specs_are_explained(spec: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match="calibration") as caught:
        parse_calibration_spec(spec)
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [("1\n2\nx\n", ":3: 'x' is not a feature index"), ("4\n-1\n", "negative"),
     ("4\n5\n4\n", "feature 4 is already listed on line 1"), ("# none\n\n", "no feature")],
)
def test_bad_index_files_name_the_line(tmp_path: Path, content: str, fragment: str) -> None:
    path = tmp_path / "indexes.txt"
    path.write_text(content)
    with pytest.raises(ConfigError, match="indexes.txt") as caught:
        parse_calibration_spec(f"indexes:{path}")
    assert fragment in str(caught.value)


def test_index_file_and_range_resolve_in_order(tmp_path: Path) -> None:
    path = tmp_path / "indexes.txt"
    path.write_text("# calibration set\n7\n3  # a comment\n\n5\n")
    assert parse_calibration_spec(f"indexes:{path}").indexes(10).tolist() == [7, 3, 5]
    assert parse_calibration_spec("range:3000:3003").indexes(10833).tolist() == [3000, 3001, 3002]
    with pytest.raises(ConfigError, match="index 10 is out of range; there are 10 features"):
        parse_calibration_spec("first:11").indexes(10)


def test_settings_and_source_errors(fp32: Path, quantized: dict, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs --calibration"):
        quantize_model(fp32, tmp_path / "x.onnx", QuantizeSettings("static"))
    with pytest.raises(ConfigError, match="static only"):
        quantize_model(fp32, tmp_path / "x.onnx",
                       QuantizeSettings("dynamic", calibration="first:2"))
    with pytest.raises(QuantizeError, match="already quantized"):
        quantize_model(quantized["dynamic"], tmp_path / "x.onnx", QuantizeSettings("dynamic"))
    with pytest.raises(ConfigError, match="not a regular expression"):
        QuantizeSettings("dynamic", exclude=("(",)).validate()
    assert quantize.main([str(fp32), str(tmp_path / "x.onnx"), "--method", "static",
                          "--calibration", "range:1"]) == 2
    assert not (tmp_path / "x.onnx").exists()


def test_exclude_keeps_matching_nodes_in_fp32(fp32: Path, tmp_path: Path) -> None:
    out = tmp_path / "partial.onnx"
    quantize_model(fp32, out, QuantizeSettings("dynamic", exclude=(derived.FFN_OUTPUT_PROJECTION,)))
    float_matmuls = [n.name for n in load_onnx(out).graph.node if n.op_type == "MatMul"]
    assert len(float_matmuls) == 2 + 4  # 2 FFN outputs + 4 activation x activation (attention)
    assert all("attention" in n or "/output/dense/" in n for n in float_matmuls)


def test_catalog_builds_a_derived_int8_model_once(request: pytest.FixtureRequest, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    needs("onnx", "export", purpose="building an int8 model from a Hugging Face checkpoint")
    tiny_hf_dir = request.getfixturevalue("tiny_hf_dir")
    spec = catalog.ModelSpec("tiny", "tiny test model", "hf", "fp32", "onnxruntime",
                             local_dirs=(str(tiny_hf_dir),))
    monkeypatch.setitem(catalog.CATALOG, "tiny", spec)
    store = tmp_path / "store"
    resolved = catalog.resolve_model("tiny-int8-dynamic", "onnxruntime", store)
    assert resolved.path == store / "tiny-int8-dynamic" / "model.onnx"
    assert resolved.precision == "int8" and resolved.format == "onnx"
    assert resolved.md5 == file_md5(resolved.path)
    built = resolved.path.stat().st_mtime_ns
    assert catalog.resolve_model("tiny-int8-dynamic", "onnxruntime", store).md5 == resolved.md5
    assert resolved.path.stat().st_mtime_ns == built  # reused, not rebuilt
    recipe = json.loads(quantize.recipe_path(resolved.path).read_text())
    assert recipe["source"]["md5"] == file_md5(store / "tiny" / "model.onnx")
    with pytest.raises(ConfigError, match="cannot run"):
        catalog.resolve_model("tiny-int8-dynamic", "tensorflow", store)
