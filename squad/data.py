"""SQuAD v1.1 data of a run: the official files, their examples and the MLPerf features.

:class:`DataConfig` says where the files and the feature cache live;
:func:`prepare_data` fetches and verifies ``dev-v1.1.json`` and ``vocab.txt`` and loads
(or builds) the features.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from common.files import SHARED_DIR, RemoteFile, ensure_file
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


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where SQuAD files and the feature cache live; mirrors are tried before the URLs."""

    data_dir: Path = Path("datasets/squad")
    cache_dir: Path = Path("datasets/cache")
    mirrors: tuple[Path, ...] = (SHARED_DIR / "squad",)
    download: bool = True
    max_examples: int | None = None


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
