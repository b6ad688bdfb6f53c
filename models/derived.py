"""Int8 models derived from catalog models by name: ``<model>-int8-dynamic``, ``-int8-static``.

``resolve_model("minilm-l6-squad-demo-int8-static", "onnxruntime")`` (the catalog) resolves
the fp32 ONNX model (exporting it if needed), then this module quantizes it once into
``models/store/minilm-l6-squad-demo-int8-static/model.onnx`` with the recipe below, and
reuses that file while its recipe still names the same source md5 and settings.

The recipes are the ones measured best on the demo model (see the README): per-channel
weights, full 8-bit range and, for static, ranges from the full min/max (percentile 100)
of 128 features outside the demo model's held-out questions (features 3000-3127, from
articles 8-47, which it was trained on, as MLPerf calibrates on training data). Use
``python -m models.quantize`` for other recipes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from common.errors import ConfigError
from common.files import file_md5, refuse_links
from models.quantize import QuantizeSettings, ensure_quantized
from models.resolved import ResolvedModel
from squad.data import DataConfig

# For ``--exclude``: the FFN output projections, whose inputs carry the demo model's outlier
# activations, in Hugging Face exports ("/inner/bert/encoder/layer.0/output/dense/MatMul")
# and TF-style graphs ("bert/encoder/layer_0/output/dense/MatMul"), not attention's output
# projection. Keeping them fp32 gave held-out F1 66.02 (dynamic) and 66.15 (static) against
# 65.88 and 65.54 all-int8; both already meet the 1-point target, so recipes stay all-int8.
FFN_OUTPUT_PROJECTION = r"(?<!attention)/output/dense/MatMul"
DEMO_CALIBRATION = "range:3000:3128"

INT8_RECIPES: dict[str, QuantizeSettings] = {
    "dynamic": QuantizeSettings("dynamic", per_channel=True),
    "static": QuantizeSettings(
        "static", calibration=DEMO_CALIBRATION, percentile=100.0, per_channel=True
    ),
}
def split_int8_name(name: str) -> tuple[str, str] | None:
    """``("minilm-l6-squad-demo", "static")`` for ``"minilm-l6-squad-demo-int8-static"``."""
    for method in INT8_RECIPES:
        suffix = f"-int8-{method}"
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], method
    return None


def resolve_int8_model(
    name: str, fp32: ResolvedModel, store: Path, data: DataConfig
) -> ResolvedModel:
    """The derived int8 model ``name`` of the fp32 ONNX model ``fp32``, built once into
    ``store/<name>/model.onnx``; ``data`` is where the calibration features come from."""
    parts = split_int8_name(name)
    if parts is None:
        raise ConfigError(f"{name!r} is not <model>-int8-dynamic or <model>-int8-static")
    if fp32.precision != "fp32":
        raise ConfigError(f"{name!r}: {parts[0]!r} is already {fp32.precision}, not fp32")
    out = refuse_links(Path(store), Path(store) / name / "model.onnx", "the model store")
    ensure_quantized(fp32.path, out, INT8_RECIPES[parts[1]], data)
    return dataclasses.replace(fp32, name=name, path=out, format="onnx", precision="int8",
                               md5=file_md5(out))
