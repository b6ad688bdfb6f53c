"""The tensor names of BERT SQuAD models, in one table for every backend and converter.

MLPerf's files and Hugging Face exports name their tensors differently, and the MLCommons
files mix the two (``bert_large_v1_1_fake_quant.onnx`` has Hugging Face input names and
MLPerf output names), so inputs and outputs are matched independently.
"""

from __future__ import annotations

from collections.abc import Iterable

# Graph inputs, in FeatureBatch order (input_ids, input_mask, segment_ids).
INPUTS: dict[str, tuple[str, str, str]] = {
    "mlperf": ("input_ids", "input_mask", "segment_ids"),
    "hf": ("input_ids", "attention_mask", "token_type_ids"),
}
# Graph outputs: (start logits, end logits), each [B, S].
OUTPUTS: dict[str, tuple[str, str]] = {
    "mlperf": ("output_start_logits", "output_end_logits"),
    "hf": ("start_logits", "end_logits"),
}
# MLPerf's TensorFlow frozen graph has one output instead: [B, S, 2], start and end last.
LOGITS = "logits"
NAMINGS = tuple(INPUTS)


def match_inputs(names: Iterable[str]) -> tuple[str, str, str] | None:
    """The known naming whose input names are exactly ``names``, or None."""
    given = set(names)
    return next((n for n in INPUTS.values() if set(n) == given), None)


def match_outputs(names: Iterable[str]) -> tuple[str, str] | None:
    """The known (start, end) output pair found among ``names``, or None."""
    given = set(names)
    return next((n for n in OUTPUTS.values() if set(n) <= given), None)


def accepted_inputs() -> str:
    """``{input_ids, input_mask, segment_ids} or {...}``, for error messages."""
    return " or ".join("{" + ", ".join(n) + "}" for n in INPUTS.values())


def accepted_outputs() -> str:
    """``(output_start_logits, output_end_logits) or (...)``, for error messages."""
    return " or ".join("(" + ", ".join(n) + ")" for n in OUTPUTS.values())
