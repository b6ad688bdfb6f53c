"""SQuAD v1.1 data of a run: the official files, their examples and the MLPerf features.

:class:`DataConfig` says where the files and the feature cache live;
:func:`prepare_data` fetches and verifies ``dev-v1.1.json`` and ``vocab.txt`` and loads
(or builds) the features.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from pydantic.dataclasses import dataclass as pydantic_dataclass

from common.files import SHARED_DIR, RemoteFile, ensure_file
from common.settings import STRICT, Whole, setting
from common.workspace import workspace
from squad.examples import SquadExample, read_squad_examples
from squad.features import FeatureSet, load_or_build_features

SQUAD_DEV = RemoteFile(
    "dev-v1.1.json",
    "https://rajpurkar.github.io/SQuAD-explorer/dataset/dev-v1.1.json",
    "3e85deb501d4e538b6bc56f786231552",
)
BERT_VOCAB = RemoteFile(
    "vocab.txt",
    "https://zenodo.org/record/3733868/files/vocab.txt",
    "64800d5d8528ce344256daf115d4965e",
)


# The questions of SQuAD v1.1's dev set: --max-examples takes at most this many.
DEV_QUESTIONS = 10570


@pydantic_dataclass(frozen=True, config=STRICT)
class DataConfig:
    """Where SQuAD files and the feature cache live; mirrors are tried before the URLs."""

    data_dir: Path = setting(default_factory=lambda: workspace().data_dir, flag="--data-dir",
                             help="where dev-v1.1.json and vocab.txt are kept (default: "
                             "datasets/squad in the workspace)")
    cache_dir: Path = setting(default_factory=lambda: workspace().cache_dir, flag="--cache-dir",
                              help="feature cache directory (default: datasets/cache in the "
                              "workspace)")
    mirrors: tuple[Path, ...] = setting(
        (SHARED_DIR / "squad",), flag="--mirror", repeat=True,
        help="local directory holding the official files, tried before the URLs (repeatable; "
        "default: shared/squad beside the project)")
    download: bool = setting(True, invert="--no-download", help="never use the network")
    max_examples: Whole | None = setting(
        None, flag="--max-examples", sweep="axis", ge=1, le=DEV_QUESTIONS, unit="questions",
        help="only the first N questions (all of their features)")


@dataclasses.dataclass(frozen=True)
class PreparedData:
    """Verified files, examples and the (possibly limited) features of a run."""

    squad_path: Path
    vocab_path: Path
    examples: list[SquadExample]
    features: FeatureSet
    cache_path: Path


def prepare_data(config: DataConfig, progress: bool = True) -> PreparedData:
    """Fetch/verify dev-v1.1.json and vocab.txt, then load or build the features."""
    squad_path = ensure_file(SQUAD_DEV, config.data_dir, config.mirrors, config.download, progress)
    vocab_path = ensure_file(BERT_VOCAB, config.data_dir, config.mirrors, config.download, progress)
    examples = read_squad_examples(squad_path)
    features, cache_path = load_or_build_features(
        examples, squad_path, vocab_path, config.cache_dir, progress=progress
    )
    return PreparedData(
        squad_path, vocab_path, examples, features.first_examples(config.max_examples), cache_path
    )
