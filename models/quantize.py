"""Int8 ONNX models from fp32 ones: dynamic, or static QDQ calibrated on named SQuAD features.

Usage::

    python -m models.quantize SRC.onnx DST.onnx --method dynamic
    python -m models.quantize SRC.onnx DST.onnx --method static --calibration range:3000:3128

The model is written atomically, with ``DST.onnx.recipe.json`` beside it: source and output
md5, every setting, the calibration features used and the library versions. Graph input and
output names are those of the source model, so the ONNX Runtime backend loads either.

Why the defaults (measured on the demo model, 2-core Zen1 with AVX2 and no VNNI; README):

* Only ``MatMul`` is quantized, and in static QDQ only its inputs (as in MLPerf's int8
  BERT): BERT's compute is all in MatMuls, and quantizing their outputs too puts the
  attention scores (|x| up to ~800 in the demo model) on an 8-bit grid.
* Weights ``QInt8``, activations ``QUInt8`` (dynamic quantization has only uint8
  activations): ONNX Runtime's u8 x s8 kernel is the fast one on x86 (about twice s8 x s8).
* Full 8-bit weights. ``--reduce-range`` (7-bit) exists because without VNNI the u8 x s8
  kernel adds pairs of products in saturating 16 bits; on the demo model 7-bit weights cost
  more (F1 68.59 vs 70.70 on the first 300 questions, per-channel dynamic) than saturation
  did (u8 x u8, which cannot saturate, scored 69.48).
* ``--per-channel`` (one weight scale per output column) is off by default, as in ONNX
  Runtime; it recovers most of the loss on the demo model, whose weight columns differ.
* Static: histogram percentile calibration (99.99 by default, as MLPerf), symmetric,
  2048 bins of |x|, fed one padded 384-token feature at a time and collected in chunks of
  ``CALIBRATION_CHUNK`` features so memory stays bounded (the calibrated activations take
  ~0.15 GB per feature for the demo model, ~1 GB for BERT-Large). Models with outlier
  activation channels (the demo model) need ``--percentile 100`` (min/max): 99.99 clips
  the outliers (F1 -4.9 on 600 questions).
* ONNX Runtime's pre-processing (symbolic shape inference, basic graph optimisation) runs
  first unless ``--no-preprocess``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common.errors import ConfigError, HarnessError
from common.files import atomic_path, file_md5, write_text_atomic
from models.calibration import (
    CalibrationSpec,
    calibration_features,
    chunk_size,
    feature_reader,
    parse_calibration_spec,
)
from squad.data import DataConfig
from squad.features import FeatureSet

METHODS = ("dynamic", "static")
QUANT_TYPES = ("qint8", "quint8")
DEFAULT_PERCENTILE = 99.99
DEFAULT_OP_TYPES = ("MatMul",)
CALIBRATION_CHUNK = 4  # features per calibration pass (memory bound, see module doc)
HISTOGRAM_BINS = 2048
# Ops whose presence means a model is already quantized (QDQ, QOperator or dynamic).
QUANTIZED_OPS = frozenset({
    "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "MatMulInteger",
    "QLinearMatMul", "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "QAttention",
})
RECIPE_SUFFIX = ".recipe.json"


class QuantizeError(HarnessError):
    """The model could not be quantized; the message says why."""


@dataclasses.dataclass(frozen=True)
class QuantizeSettings:
    """How to quantize. ``percentile`` (0-100) and ``calibration`` apply to static only."""

    method: str
    calibration: str | None = None
    percentile: float = DEFAULT_PERCENTILE
    per_channel: bool = False
    weight_type: str = "qint8"
    activation_type: str = "quint8"
    reduce_range: bool = False
    op_types: tuple[str, ...] = DEFAULT_OP_TYPES
    exclude: tuple[str, ...] = ()  # regular expressions; matching node names stay fp32
    preprocess: bool = True

    def validate(self) -> CalibrationSpec | None:
        """Check the settings; return the parsed calibration spec (static) or None."""
        for pattern in self.exclude:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ConfigError(
                    f"--exclude {pattern!r} is not a regular expression: {exc}"
                ) from None
        if self.method not in METHODS:
            raise ConfigError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        for label, value in (("weight", self.weight_type), ("activation", self.activation_type)):
            if value not in QUANT_TYPES:
                raise ConfigError(f"{label} type {value!r}: choose one of {', '.join(QUANT_TYPES)}")
        if self.method == "dynamic":
            if self.calibration is not None:
                raise ConfigError("--calibration applies to --method static only")
            return None
        if self.calibration is None:
            raise ConfigError("--method static needs --calibration (e.g. range:3000:3128)")
        if not 0.0 < self.percentile <= 100.0:
            raise ConfigError(f"--percentile must be in (0, 100], got {self.percentile}")
        return parse_calibration_spec(self.calibration)

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "op_types": list(self.op_types),
                "exclude": list(self.exclude)}


def recipe_path(model_path: Path) -> Path:
    """Where the recipe of ``model_path`` lives: ``model.onnx.recipe.json`` beside it."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.name + RECIPE_SUFFIX)


def read_recipe(model_path: Path) -> dict[str, Any] | None:
    """The recipe beside ``model_path``, or None when there is none (or it is unreadable)."""
    try:
        return json.loads(recipe_path(model_path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def graph_op_types(model_path: Path) -> set[str]:
    """Operator types used in the main graph of an ONNX file."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    return {node.op_type for node in model.graph.node}


def _excluded_nodes(model_path: Path, patterns: tuple[str, ...]) -> list[str]:
    """Names of nodes matching any of the regular expressions (``re.search``)."""
    if not patterns:
        return []
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    return [n.name for n in graph.node if any(re.search(p, n.name) for p in patterns)]


def _quant_type(name: str):
    from onnxruntime.quantization import QuantType

    return {"qint8": QuantType.QInt8, "quint8": QuantType.QUInt8}[name]


def _preprocess(src: Path, out: Path, scratch: Path) -> None:
    """ONNX Runtime's quantization pre-pass (symbolic shapes, basic optimisation)."""
    from onnxruntime.quantization import quant_pre_process

    # On failure, symbolic shape inference dumps its partial model into the current
    # directory: run it from the scratch directory so nothing lands in the user's tree.
    cwd = Path.cwd()
    os.chdir(scratch)
    try:
        # auto_merge: the export's attention-mask arithmetic gives symbolic-shape inference
        # two names for one axis; without merging it gives up.
        quant_pre_process(str(src), str(out.resolve()), auto_merge=True)
    except Exception as exc:
        raise QuantizeError(
            f"ONNX Runtime's pre-processing of {src} failed ({exc}); retry with --no-preprocess"
        ) from exc
    finally:
        os.chdir(cwd)


def _quantize_to(src: Path, out: Path, settings: QuantizeSettings, reader) -> None:
    """Run ONNX Runtime's quantizer from ``src`` into ``out`` (not atomic by itself)."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        quantize_dynamic,
        quantize_static,
    )

    # Optimizer-fused graphs hold contrib-op outputs with no inferred type; the quantizer
    # then needs this fallback (see MEASURED.md). It is harmless for plain exports.
    extra: dict[str, Any] = {"DefaultTensorType": onnx.TensorProto.FLOAT}
    with tempfile.TemporaryDirectory(prefix="quantize.") as scratch:
        model_in = src
        if settings.preprocess:
            model_in = Path(scratch) / "preprocessed.onnx"
            _preprocess(src.resolve(), model_in, Path(scratch))
        common = dict(
            op_types_to_quantize=list(settings.op_types),
            nodes_to_exclude=_excluded_nodes(model_in, settings.exclude),
            per_channel=settings.per_channel,
            reduce_range=settings.reduce_range,
            weight_type=_quant_type(settings.weight_type),
        )
        if settings.method == "dynamic":
            quantize_dynamic(str(model_in), str(out), **common, extra_options=extra)
            return
        extra.update(
            CalibPercentile=settings.percentile,
            CalibTensorRangeSymmetric=True,
            # collect in chunks (ORT's 'strided' option works for every calibrator)
            CalibStridedMinMax=chunk_size(len(reader), CALIBRATION_CHUNK),
            WeightSymmetric=True,
            # QDQ on the MatMul inputs only, as in MLPerf's int8 BERT: quantizing outputs too
            # puts the attention scores (|x| up to ~800 in the demo model) on an 8-bit grid.
            OpTypesToExcludeOutputQuantization=list(settings.op_types),
        )
        quantize_static(
            str(model_in), str(out), reader, quant_format=QuantFormat.QDQ,
            activation_type=_quant_type(settings.activation_type),
            calibrate_method=CalibrationMethod.Percentile, extra_options=extra, **common,
        )


def quantize_model(
    src: Path, dst: Path, settings: QuantizeSettings, data: DataConfig | None = None,
    features: FeatureSet | None = None,
) -> dict[str, Any]:
    """Quantize ``src`` into ``dst`` (atomically) and write the recipe; return the recipe.

    ``data`` (a :class:`squad.data.DataConfig`) says where the SQuAD features come
    from for static calibration; ``features`` (a FeatureSet) overrides it, for tests.
    """
    src, dst = Path(src), Path(dst)
    spec = settings.validate()
    if not src.is_file():
        raise QuantizeError(f"source model {src} does not exist")
    already = graph_op_types(src) & QUANTIZED_OPS
    if already:
        raise QuantizeError(f"{src} is already quantized (it has {', '.join(sorted(already))})")
    reader, indexes = None, None
    if spec is not None:
        if features is None:
            features, indexes = calibration_features(spec, data)
        else:
            indexes = spec.indexes(len(features))
        reader = feature_reader(src, features, indexes)
    import onnxruntime

    started = time.perf_counter()
    try:
        with atomic_path(dst) as tmp:
            _quantize_to(src, tmp, settings, reader)
    except HarnessError:
        raise
    except Exception as exc:  # the quantizer raises many types (ValueError, ORT Fail...)
        raise QuantizeError(f"quantizing {src} ({settings.method}) failed: {exc}") from exc
    recipe = {
        "precision": "int8",
        "source": {"path": str(src), "md5": file_md5(src)},
        "output": {"path": str(dst), "md5": file_md5(dst)},
        "method": settings.method,
        "settings": settings.to_json(),
        "calibration": None if spec is None else {
            "spec": spec.text,
            "feature_indexes": [int(i) for i in indexes],
            "method": "percentile",
            "percentile": settings.percentile,
            "histogram_bins": HISTOGRAM_BINS,  # the first chunk's; later ones extend it
            "chunk_features": chunk_size(len(indexes), CALIBRATION_CHUNK),
            "symmetric": True,
            "feature_cache_key": (features.meta or {}).get("key"),
            "questions": sorted({int(q) for q in features.example_index[indexes]}),
        },
        "onnxruntime_version": onnxruntime.__version__,
        "seconds": round(time.perf_counter() - started, 1),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_text_atomic(recipe_path(dst), json.dumps(recipe, indent=2) + "\n")
    return recipe


def ensure_quantized(
    src: Path, dst: Path, settings: QuantizeSettings, data: DataConfig | None = None
) -> Path:
    """Quantize once: reuse ``dst`` while its recipe matches ``src``'s md5, the settings and
    the file itself; otherwise (re)build it. Returns ``dst``."""
    recipe = read_recipe(dst)
    if recipe is not None and Path(dst).is_file():
        same = (
            recipe.get("source", {}).get("md5") == file_md5(src)
            and recipe.get("settings") == settings.to_json()
            and recipe.get("output", {}).get("md5") == file_md5(dst)
        )
        if same:
            return Path(dst)
    print(f"Quantizing {src} ({settings.method}) into {dst} ...", flush=True)
    quantize_model(src, dst, settings, data)
    return Path(dst)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m models.quantize",
        description="Quantize an fp32 BERT SQuAD ONNX model to int8 (dynamic or static QDQ).",
    )
    parser.add_argument("src", type=Path, help="fp32 .onnx model")
    parser.add_argument("dst", type=Path, help="int8 .onnx file to write (recipe beside it)")
    parser.add_argument("--method", choices=METHODS, required=True)
    parser.add_argument("--calibration", metavar="SPEC", default=None,
                        help="static only: dev features to calibrate on: first:N, "
                        "range:START:STOP (feature indexes, STOP excluded) or indexes:FILE")
    parser.add_argument("--percentile", type=float, default=DEFAULT_PERCENTILE,
                        help="static only: calibration percentile (default: %(default)s)")
    parser.add_argument("--per-channel", action="store_true", help="per-channel weight scales")
    parser.add_argument("--weight-type", choices=QUANT_TYPES, default="qint8")
    parser.add_argument("--activation-type", choices=QUANT_TYPES, default="quint8",
                        help="static only (dynamic activations are always uint8)")
    parser.add_argument("--reduce-range", action="store_true",
                        help="7-bit weights, against u8 x s8 saturation without VNNI "
                        "(cost accuracy on the demo model; see module doc)")
    parser.add_argument("--op-types", default=",".join(DEFAULT_OP_TYPES),
                        help="comma-separated op types to quantize (default: %(default)s)")
    parser.add_argument("--exclude", action="append", default=[], metavar="REGEX",
                        help="keep nodes whose name matches in fp32 (repeatable), e.g. "
                        "'(?<!attention)/output/dense/MatMul' for the FFN output projections")
    parser.add_argument("--no-preprocess", action="store_true",
                        help="skip ONNX Runtime's shape inference/optimisation pre-pass")
    parser.add_argument("--mirror", type=Path, action="append", default=None,
                        help="directory holding dev-v1.1.json and vocab.txt "
                        "(default: ../shared/squad)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the process exit status."""
    args = build_parser().parse_args(argv)
    settings = QuantizeSettings(
        method=args.method, calibration=args.calibration, percentile=args.percentile,
        per_channel=args.per_channel, weight_type=args.weight_type,
        activation_type=args.activation_type, reduce_range=args.reduce_range,
        op_types=tuple(t for t in args.op_types.split(",") if t), exclude=tuple(args.exclude),
        preprocess=not args.no_preprocess,
    )
    data = DataConfig(mirrors=tuple(args.mirror)) if args.mirror else DataConfig()
    try:
        recipe = quantize_model(args.src, args.dst, settings, data)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.dst} (md5 {recipe['output']['md5']}, {recipe['seconds']} s) "
          f"and {recipe_path(args.dst)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
