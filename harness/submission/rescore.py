"""Re-scoring a full accuracy log: the F1 that ``accuracy.txt`` should state, from the
SQuAD v1.1 dev set (the checker's ``--full-logs``)."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from pathlib import Path

from common.errors import HarnessError
from squad.accuracy import score_accuracy_log
from squad.data import DataConfig, PreparedData, prepare_data
from squad.features import read_vocab

# (full mlperf_log_accuracy.json, questions scored or None for all) -> F1 (percent)
Rescorer = Callable[[Path, "int | None"], float]


class NoScoringData(HarnessError):
    """The SQuAD data to score with is not there: nothing can be re-scored."""


def squad_rescorer(config: DataConfig) -> Rescorer:
    """A rescorer on the SQuAD data of ``config``, prepared once, on first use
    (:class:`NoScoringData` when it cannot be)."""
    prepared: list[PreparedData] = []

    def score(log: Path, questions: int | None) -> float:
        if not prepared:
            try:
                prepared.append(prepare_data(dataclasses.replace(config, max_examples=None),
                                             progress=False))
            except HarnessError as exc:
                raise NoScoringData(str(exc)) from None
        data = prepared[0]
        features = data.features.first_examples(questions)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a partial log: the checker compares the F1
            report, _ = score_accuracy_log(log, features,
                                           data.examples[: features.num_examples],
                                           read_vocab(data.vocab_path))
        return report.scores.f1

    return score
