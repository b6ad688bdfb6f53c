"""QSL load/unload honoured; the SUT batches, completes and survives a failing backend."""

from __future__ import annotations

import ctypes
import threading
import time
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pytest

from backends import BackendSettings
from backends.device import TimedDevice
from backends.null import NullBackend
from harness.loadgen.qsl import QuerySampleLibrary, SampleNotLoadedError
from harness.loadgen.sut import PAD_LOGIT, BackendCallTimeout, LoadGenSUT, SUTSettings
from squad.examples import read_squad_examples
from squad.features import FeatureSet, build_features


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


def _drive(sut: LoadGenSUT, queries: list[list[tuple[int, int]]], monkeypatch,
           flush: bool = False) -> list:
    """Run the worker against a stand-in for LoadGen: ``queries`` of (id, index) pairs are
    issued in turn; returns (id, size, logits or None) for each completed sample."""
    import mlperf_loadgen as lg

    completed: list = []

    def complete(responses) -> None:
        # copy now: the buffer is only guaranteed alive until this call returns
        for r in responses:
            logits = None
            if r.size:
                raw = (ctypes.c_char * r.size).from_address(r.data)
                logits = np.frombuffer(bytes(raw), np.float32).reshape(-1, 2)
            completed.append((r.id, r.size, logits))

    monkeypatch.setattr(lg, "QuerySamplesComplete", complete)
    monkeypatch.setattr(lg, "ConstructFastSUT", lambda issue, flush: "handle")
    monkeypatch.setattr(lg, "DestroyFastSUT", lambda handle: None)
    sut.construct()
    for query in queries:
        sut.issue_queries([i for i, _ in query], [x for _, x in query])
    if flush:
        sut.flush_queries()
    sut.destroy()
    return completed


def _null_sut(features, settings: SUTSettings, count: int = 10, **options) -> LoadGenSUT:
    qsl = QuerySampleLibrary(features)
    qsl.load_query_samples(list(range(count)))
    backend = NullBackend(BackendSettings(options=options))
    backend.load(None)
    return LoadGenSUT(backend, qsl, settings)


class _Recording(NullBackend):
    """The null backend as a timed device of one call at a time, recording the shape and
    arrival time of each batch it is given."""

    shapes: list
    issued: list

    def predict(self, batch):
        self.shapes.append(batch.input_ids.shape)
        return super().predict(batch)

    def predict_async(self, batch, arrival_s=None) -> Future:
        self.issued.append(arrival_s)
        future: Future = Future()
        future.set_result(self.predict(batch))
        return future

    def max_in_flight(self) -> int:
        return 1

    def stage(self, batch) -> None:
        pass

    def expected_performance(self, model_path):
        return None

    def preferred_batch_size(self):
        return None


def _recording_sut(features, settings: SUTSettings, count: int) -> LoadGenSUT:
    """A SUT over the first ``count`` samples whose backend records its batch shapes."""
    qsl = QuerySampleLibrary(features)
    qsl.load_query_samples(list(range(count)))
    backend = _Recording()
    backend.shapes, backend.issued = [], []
    backend.load(None)
    assert isinstance(backend, TimedDevice)
    return LoadGenSUT(backend, qsl, settings)


def test_offline_query_is_cut_into_batches_of_similar_length(features, monkeypatch) -> None:
    sut = _recording_sut(features, SUTSettings(batch_size=4, progress=False), 10)
    qsl, backend = sut.qsl, sut.backend
    completed = _drive(sut, [[(100 + i, i) for i in range(10)]], monkeypatch)
    assert sorted(sample_id for sample_id, _, _ in completed) == [100 + i for i in range(10)]
    assert all(size == 384 * 2 * 4 for _, size, _ in completed)  # [384, 2] float32 each
    assert sut.batches == 3  # 4 + 4 + 2
    # batched in order of real length, each batch run at its longest sample's length
    lengths = sorted(qsl.lengths[:10])
    assert [shape[1] for shape in backend.shapes] == [lengths[3], lengths[7], lengths[9]]
    assert max(lengths) < 384  # so the test shows truncation


def test_logits_past_a_samples_batch_length_are_padding(features, monkeypatch) -> None:
    sut = _null_sut(features, SUTSettings(batch_size=3, progress=False, seq_bucket=16))
    completed = _drive(sut, [[(i, i) for i in range(6)]], monkeypatch)
    qsl = sut.qsl
    for sample_id, _, logits in completed:
        seq = -(-int(qsl.lengths[sample_id]) // 16) * 16  # at least its own length, bucketed
        assert (logits[seq + 16:] == PAD_LOGIT).all()
        # the null backend's answer (first context token) is where the padded run puts it
        context = features.segment_ids[sample_id].astype(bool) & \
            features.input_mask[sample_id].astype(bool)
        assert int(np.argmax(logits[:, 0])) == int(np.argmax(context))


def test_padded_mode_runs_every_batch_at_the_full_length(features, monkeypatch) -> None:
    sut = _recording_sut(features, SUTSettings(batch_size=2, progress=False, seq_bucket=None), 4)
    backend = sut.backend
    _drive(sut, [[(i, i) for i in range(4)]], monkeypatch)
    assert backend.shapes == [(2, 384), (2, 384)]


def test_a_partial_batch_waits_for_more_queries_within_its_budget(features, monkeypatch) -> None:
    sut = _recording_sut(features, SUTSettings(batch_size=4, progress=False, batch_wait_s=30), 4)
    backend = sut.backend
    import mlperf_loadgen as lg

    monkeypatch.setattr(lg, "QuerySamplesComplete", lambda responses: None)
    monkeypatch.setattr(lg, "ConstructFastSUT", lambda issue, flush: "handle")
    monkeypatch.setattr(lg, "DestroyFastSUT", lambda handle: None)
    sut.construct()
    issued = []
    for i in range(4):  # Server: one query at a time, slower than the worker
        before = time.monotonic()
        sut.issue_queries([i], [i])
        issued.append((before, time.monotonic()))
        time.sleep(0.05)
    sut.destroy()
    assert [shape[0] for shape in backend.shapes] == [4]  # one full batch, not four of one
    # the batch arrived when its first query was issued (a timed device's arrival)
    assert issued[0][0] <= backend.issued[0] <= issued[0][1]


def test_failing_backend_completes_everything_empty_then_reports(features, monkeypatch) -> None:
    sut = _null_sut(features, SUTSettings(batch_size=2, progress=False), 6, fail_after=1)
    completed = _drive(sut, [[(i, i)] for i in range(6)], monkeypatch)
    assert sorted(sample_id for sample_id, _, _ in completed) == list(range(6))  # nobody waits
    # one batch (of 1 or 2 samples, depending on what had arrived) ran; the rest are empty
    answered = [size for _, size, _ in completed if size]
    assert sut.batches == 1 and 1 <= len(answered) <= 2
    assert all(size == 384 * 2 * 4 for size in answered)
    with pytest.raises(Exception, match="failing on purpose"):
        sut.raise_if_failed()


def test_server_holds_queries_after_a_stop_until_the_flush(features, monkeypatch) -> None:
    sut = _null_sut(features, SUTSettings(batch_size=1, progress=False, hold_on_stop=True), 6,
                    fail_after=1)
    completed = _drive(sut, [[(i, i)] for i in range(6)], monkeypatch, flush=True)
    assert sorted(sample_id for sample_id, _, _ in completed) == list(range(6))
    assert sut.batches == 1 and sut.stopped


def test_a_call_that_never_returns_is_given_up_and_the_rest_completed(
        features, monkeypatch) -> None:
    sut = _null_sut(features, SUTSettings(batch_size=2, progress=False, call_timeout_s=0.3), 8,
                    hang_after=1)
    completed = _drive(sut, [[(i, i) for i in range(8)]], monkeypatch)
    assert sorted(sample_id for sample_id, _, _ in completed) == list(range(8))
    assert sum(1 for _, size, _ in completed if size) == 2  # the first batch only
    with pytest.raises(BackendCallTimeout, match="did not return within 0.3 s"):
        sut.raise_if_failed()


def test_a_stop_completes_what_is_pending_without_the_backend(features, monkeypatch) -> None:
    sut = _null_sut(features, SUTSettings(batch_size=2, progress=False), 8)
    sut.stop("interrupted by SIGINT")
    completed = _drive(sut, [[(i, i) for i in range(8)]], monkeypatch)
    assert sorted(sample_id for sample_id, _, _ in completed) == list(range(8))
    assert sut.batches == 0 and sut.stop_reason == "interrupted by SIGINT"


class _Later(NullBackend):
    """An asynchronous device: each call's future is completed ``delay_s`` later by a timer
    thread, which records when."""

    delay_s = 0.3
    finished: list

    def predict_async(self, batch) -> Future:
        future: Future = Future()
        answer = self.predict(batch)

        def finish() -> None:
            self.finished.append(time.monotonic())
            future.set_result(answer)

        threading.Timer(self.delay_s, finish).start()
        return future

    def max_in_flight(self) -> int:
        return 4


def test_destroy_waits_for_outstanding_calls_without_polling(features, monkeypatch) -> None:
    import mlperf_loadgen as lg

    qsl = QuerySampleLibrary(features)
    qsl.load_query_samples(list(range(8)))
    backend = _Later()
    backend.finished = []
    backend.load(None)
    sut = LoadGenSUT(backend, qsl, SUTSettings(batch_size=2, progress=False))
    slept: list = []
    monkeypatch.setattr(time, "sleep", slept.append)  # a polling loop would show here
    monkeypatch.setattr(lg, "QuerySamplesComplete", lambda responses: None)
    monkeypatch.setattr(lg, "ConstructFastSUT", lambda issue, flush: "handle")
    monkeypatch.setattr(lg, "DestroyFastSUT", lambda handle: None)
    sut.construct()
    sut.issue_queries(list(range(8)), list(range(8)))  # 4 calls, all in flight at once
    sut.destroy()
    returned = time.monotonic()
    assert sut.batches == 4 and sut.completed == 8 and len(backend.finished) == 4
    # returned after the last answer, and promptly: woken by it, not by a timer
    assert 0 <= returned - max(backend.finished) < 0.1
    assert slept == []


def test_a_calls_timeout_counts_from_when_it_runs_not_while_it_waits(features, monkeypatch):
    """One query of 6 samples, batch 1: the call thread runs the batches one after another
    (0.9 s in all), each 0.15 s, within the 0.3 s timeout."""
    sut = _null_sut(features, SUTSettings(batch_size=1, progress=False, call_timeout_s=0.3),
                    6, delay_ms=150)
    completed = _drive(sut, [[(i, i) for i in range(6)]], monkeypatch)
    assert sorted(sample_id for sample_id, size, _ in completed if size) == list(range(6))
    assert sut.batches == 6 and sut.error is None and not sut.stopped


class _Gated(NullBackend):
    """The null backend, whose calls each wait until the test opens the gate; ``entered``
    is set when the first call starts."""

    entered: threading.Event
    gate: threading.Event
    sizes: list

    def predict(self, batch):
        self.sizes.append(len(batch))
        self.entered.set()
        self.gate.wait()
        return super().predict(batch)


def _gated_sut(features, settings: SUTSettings, count: int, monkeypatch) -> tuple:
    """A SUT whose backend waits at a gate, LoadGen stubbed; (sut, backend, completed)."""
    import mlperf_loadgen as lg

    qsl = QuerySampleLibrary(features)
    qsl.load_query_samples(list(range(count)))
    backend = _Gated()
    backend.entered, backend.gate, backend.sizes = threading.Event(), threading.Event(), []
    backend.load(None)
    completed: list = []
    monkeypatch.setattr(lg, "QuerySamplesComplete",
                        lambda responses: completed.extend((r.id, r.size) for r in responses))
    monkeypatch.setattr(lg, "ConstructFastSUT", lambda issue, flush: "handle")
    monkeypatch.setattr(lg, "DestroyFastSUT", lambda handle: None)
    return LoadGenSUT(backend, qsl, settings), backend, completed


def test_queries_issued_during_a_call_form_the_next_batch_together(
        features, monkeypatch) -> None:
    """Server with no batch wait: what arrived while the device was busy goes in one batch
    (up to batch_size), as soon as the call returns."""
    sut, backend, completed = _gated_sut(
        features, SUTSettings(batch_size=4, progress=False), 6, monkeypatch)
    sut.construct()
    sut.issue_queries([0], [0])
    assert backend.entered.wait(10)
    for i in range(1, 6):
        sut.issue_queries([i], [i])
    backend.gate.set()
    sut.destroy()
    assert backend.sizes == [1, 4, 1]
    assert sorted(sample_id for sample_id, size in completed if size) == list(range(6))


def test_a_stop_completes_the_batches_pending_behind_a_call_without_the_backend(
        features, monkeypatch) -> None:
    sut, backend, completed = _gated_sut(
        features, SUTSettings(batch_size=2, progress=False), 20, monkeypatch)
    sut.construct()
    sut.issue_queries(list(range(20)), list(range(20)))  # 10 batches, 9 behind the first
    assert backend.entered.wait(10)
    sut.stop("interrupted by SIGINT")
    backend.gate.set()
    sut.destroy()
    assert sorted(sample_id for sample_id, _ in completed) == list(range(20))
    assert all(size == 0 for _, size in completed)  # the call running at the stop included
    assert backend._calls == 1  # nothing pending reached the backend after the stop
