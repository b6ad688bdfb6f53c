"""QSL load/unload honoured; the SUT batches, completes and survives a failing backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backends import BackendSettings
from backends.null import NullBackend
from harness.loadgen.qsl import QuerySampleLibrary, SampleNotLoadedError
from harness.loadgen.sut import LoadGenSUT, SUTSettings
from harness.squad.examples import read_squad_examples
from harness.squad.features import FeatureSet, build_features


@pytest.fixture(scope="module")
def features(squad_dir: Path) -> FeatureSet:
    examples = read_squad_examples(squad_dir / "dev-v1.1.json")[:20]
    return build_features(examples, squad_dir / "vocab.txt")


def test_only_loaded_samples_are_served(features: FeatureSet) -> None:
    qsl = QuerySampleLibrary(features, performance_count=5)
    assert qsl.count == len(features) and qsl.performance_count == 5
    qsl.load_query_samples([3, 4])
    batch = qsl.batch([4, 3])
    assert batch.input_ids.dtype == np.int64 and batch.input_ids.shape == (2, 384)
    np.testing.assert_array_equal(batch.input_ids[0], features.input_ids[4])
    with pytest.raises(SampleNotLoadedError, match="sample 7"):
        qsl.batch([3, 7])
    qsl.unload_query_samples([3])
    with pytest.raises(SampleNotLoadedError):
        qsl.batch([3])
    assert qsl.loaded_count == 1 and qsl.loads == 1


class _Sample:
    def __init__(self, sample_id: int, index: int) -> None:
        self.id, self.index = sample_id, index


def _drive(sut: LoadGenSUT, queries: list[list[_Sample]], monkeypatch) -> list:
    """Run the worker against a stand-in for LoadGen's completion call."""
    import mlperf_loadgen as lg

    completed: list = []

    def complete(responses) -> None:
        # copy now: the buffer is only guaranteed alive until this call returns
        completed.extend((r.id, r.size) for r in responses)

    monkeypatch.setattr(lg, "QuerySamplesComplete", complete)
    monkeypatch.setattr(lg, "ConstructSUT", lambda issue, flush: "handle")
    monkeypatch.setattr(lg, "DestroySUT", lambda handle: None)
    sut.construct()
    for query in queries:
        sut.issue_queries(query)
    sut.destroy()
    return completed


def test_offline_query_is_cut_into_batches(features, monkeypatch) -> None:
    qsl = QuerySampleLibrary(features)
    qsl.load_query_samples(list(range(10)))
    backend = NullBackend()
    backend.load(None)
    sut = LoadGenSUT(backend, qsl, SUTSettings(batch_size=4, progress=False))
    completed = _drive(sut, [[_Sample(100 + i, i) for i in range(10)]], monkeypatch)
    assert [sample_id for sample_id, _ in completed] == [100 + i for i in range(10)]
    assert all(size == 384 * 2 * 4 for _, size in completed)  # [384, 2] float32 each
    assert sut.batches == 3  # 4 + 4 + 2


def test_failing_backend_completes_everything_empty_then_reports(features, monkeypatch) -> None:
    qsl = QuerySampleLibrary(features)
    qsl.load_query_samples(list(range(6)))
    backend = NullBackend(BackendSettings(options={"fail_after": 1}))
    backend.load(None)
    sut = LoadGenSUT(backend, qsl, SUTSettings(batch_size=2, progress=False))
    queries = [[_Sample(i, i)] for i in range(6)]
    completed = _drive(sut, queries, monkeypatch)
    assert sorted(sample_id for sample_id, _ in completed) == list(range(6))  # nobody waits
    # one batch (of 1 or 2 samples, depending on what had arrived) ran; the rest are empty
    answered = [size for _, size in completed if size]
    assert sut.batches == 1 and 1 <= len(answered) <= 2
    assert all(size == 384 * 2 * 4 for size in answered)
    with pytest.raises(Exception, match="failing on purpose"):
        sut.raise_if_failed()
