"""The simulated wafer-scale backend: specs, shapes, the two modes, the device model, the
real-time engine and the numerics. Fast (seconds); LoadGen runs are in test_wafer_run.py."""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path

import numpy as np
import pytest

from backends import BackendError, BackendSettings, FeatureBatch, get_backend_class, load_backend
from backends.device import TimedDevice
from backends.wafer import cli
from backends.wafer.calibration import ANCHORS, CALIBRATIONS, anchor, anchor_table, calibrate
from backends.wafer.device import PipelinedDevice, StreamingDevice, make_device, simulate
from backends.wafer.engine import Engine
from backends.wafer.numerics import LogitsBank, fingerprints
from backends.wafer.plan import PlanOptions, plan
from backends.wafer.report import plan_text
from backends.wafer.shapes import ZOO, ZOO_TABLE, from_config, from_model, layer_costs, named
from backends.wafer.spec import FIELDS, KINDS, PRESETS, load_spec, parse_spec
from backends.wafer_backend import empty_logits
from tests.helpers import needs, random_batch

BERT_LARGE = named("bert-large")


def wafer(**options) -> BackendSettings:
    return BackendSettings(device="cpu", options=options)


# ---- specs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_field_says_what_kind_of_figure_it_is_and_where_from(name) -> None:
    spec = load_spec(name)
    assert set(spec.figures) == set(FIELDS)
    for field, figure in spec.figures.items():
        assert figure.kind in ("published", "third-party", "derived"), field
        assert len(figure.source) > 10, field
    assert spec.cores == spec.grid_x * spec.grid_y
    json.dumps(spec.to_json())


def test_presets_hold_the_public_figures() -> None:
    wse2, wse3 = load_spec("wse2"), load_spec("wse3")
    assert (wse2.grid_x, wse2.grid_y, wse2.clock_ghz, wse2.sram_kb_per_core) == \
        (750, 994, 1.1, 48)
    assert wse2.figures["sram_kb_per_core"].kind == "published"
    assert wse2.figures["grid_x"].kind == "third-party"
    assert wse2.host_io_bytes_per_s == pytest.approx(150e9)  # 1.2 Tb/s
    assert wse3.cores == 762 * 1172
    assert wse3.peak_flops("fp16") == pytest.approx(15.7e15, rel=0.01)


def test_an_override_is_recorded_with_the_figure_it_replaced() -> None:
    spec = load_spec("wse2", {"clock_ghz": "0.85"})
    assert spec.clock_ghz == 0.85
    figure = spec.figures["clock_ghz"]
    assert figure.kind == "override" and "1.1" in figure.source and "third-party" in figure.source
    assert "override" in KINDS


@pytest.mark.parametrize("overrides, message", [
    ({"clock": 1}, "unknown wafer spec field 'clock'"),
    ({"clock_ghz": "fast"}, "clock_ghz = 'fast': expected a number > 0 and <= 10 GHz"),
    ({"grid_x": 10.5}, "grid_x = 10.5: expected a whole number"),
    ({"pipelined_efficiency": 1.5}, r"pipelined_efficiency = 1.5: expected a number > 0 and <= 1"),
    ({"systems": 0}, r"systems = 0: expected a whole number > 0 and <= 192 systems"),
])
def test_bad_overrides_are_refused(overrides, message) -> None:
    with pytest.raises(BackendError, match=message):
        load_spec("wse2", overrides)


BAD_VALUES = ("nan", "inf", -1, 0, 1e300, "fast")


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("value", BAD_VALUES)
def test_every_spec_field_refuses_bad_values_naming_field_value_and_range(field, value) -> None:
    declared = FIELDS[field]
    if value == 0 and not declared.above and declared.low == 0:  # a delay may be 0
        assert load_spec("wse2", {field: value}).figures[field].value == 0
        return
    with pytest.raises(BackendError) as caught:
        load_spec("wse2", {field: value})
    message = str(caught.value)
    assert "\n" not in message
    assert f"{field} = {value!r}" in message and declared.range_text() in message


@pytest.mark.parametrize("field", FIELDS)
def test_a_spec_file_with_a_bad_number_names_the_field(field, tmp_path: Path) -> None:
    text = Path(load_spec("wse2").path).read_text()
    start = text.index(f"[{field}]\nvalue = ") + len(f"[{field}]\nvalue = ")
    bad = tmp_path / "bad.toml"
    bad.write_text(text[:start] + "nan" + text[text.index("\n", start):])
    with pytest.raises(BackendError, match=f"{field} = nan: expected"):
        load_spec(bad)


@pytest.mark.parametrize("value", BAD_VALUES)
def test_the_cli_answers_a_bad_field_with_one_error_line(value, capsys) -> None:
    assert cli.main(["plan", "--model", "bert-base", "--set", f"clock_ghz={value}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "clock_ghz" in err


@pytest.mark.parametrize("option", ["seq", "stream_batch", "in_flight", "numerics_batch"])
@pytest.mark.parametrize("value", BAD_VALUES)
def test_whole_number_backend_options_refuse_bad_values(option, value) -> None:
    expected = re.escape(f"option {option}: got {value!r}; expected a whole number from 1 to ")
    with pytest.raises(BackendError, match=expected):
        get_backend_class("wafer")(wafer(**{option: value}))


def test_a_spec_file_must_give_every_field_with_its_provenance(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="missing field"):
        parse_spec({"grid_x": {"value": 1, "kind": "published", "source": "x"}})
    text = (Path(load_spec("wse2").path)).read_text().replace('kind = "published"',
                                                              'kind = "rumour"', 1)
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    with pytest.raises(BackendError, match="rumour"):
        load_spec(bad)
    with pytest.raises(BackendError, match="no such preset"):
        load_spec("wse9")


def test_backend_options_override_spec_fields_and_describe_says_so() -> None:
    backend = load_backend("wafer", None, wafer(numerics="none", arch="bert-large",
                                                **{"spec.clock_ghz": 0.55}))
    with backend:
        described = backend.describe()
    field = described["spec"]["fields"]["clock_ghz"]
    assert field["value"] == 0.55 and field["kind"] == "override"
    with pytest.raises(BackendError, match="unknown wafer spec field"):
        get_backend_class("wafer")(wafer(**{"spec.nope": 1}))


# ---- shapes -----------------------------------------------------------------------------------


def test_shapes_from_an_onnx_graph_match_its_config(tiny_onnx: Path, tiny_hf_dir: Path) -> None:
    from_graph = from_model(tiny_onnx)
    from_cfg = from_model(tiny_hf_dir)
    got = (from_graph.layers, from_graph.hidden, from_graph.heads, from_graph.ffn,
           from_graph.vocab, from_graph.positions)
    assert got == (2, 64, 2, 128, 30522, 512)
    assert (from_cfg.layers, from_cfg.hidden, from_cfg.heads, from_cfg.ffn) == (2, 64, 2, 128)
    assert layer_costs(from_graph, 384) == layer_costs(from_cfg, 384)
    assert from_graph.task_head == "qa"


def test_the_demo_models_shapes(demo_model_dir: Path) -> None:
    arch = from_model(demo_model_dir)
    assert (arch.layers, arch.hidden, arch.heads, arch.ffn, arch.vocab) == \
        (6, 384, 12, 1536, 30522)
    assert arch.param_count() == pytest.approx(22.6e6, rel=0.01)


def test_an_onnx_graph_without_a_transformer_is_timed_from_its_weights(tmp_path) -> None:
    needs("onnx", purpose="building an ONNX graph")
    from tests.tiny_models import make_onnx_with_names

    arch = from_model(make_onnx_with_names(tmp_path / "m.onnx", ["a", "b", "c"], ["x", "y"]))
    assert arch.family == "generic" and "host I/O only" in arch.source
    assert plan(arch, load_spec("wse2")).throughput > 0


def test_shapes_from_configs_of_other_families() -> None:
    gpt2 = from_config({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
                        "n_embd": 768, "n_layer": 12, "n_head": 12, "vocab_size": 50257,
                        "n_positions": 1024})
    assert gpt2.causal and gpt2.task_head == "lm"
    assert gpt2.param_count() == pytest.approx(124.4e6, rel=0.01)
    t5 = from_config({"architectures": ["T5ForConditionalGeneration"], "model_type": "t5",
                      "d_model": 512, "num_layers": 8, "num_decoder_layers": 8, "num_heads": 6,
                      "d_kv": 64, "d_ff": 1024, "vocab_size": 32128})
    assert t5.decoder_layers == 8 and t5.attn_width == 384
    with pytest.raises(BackendError, match="hidden size"):
        from_config({"model_type": "mystery"})


@pytest.mark.parametrize("name, published", [
    ("bert-base-msl128", 110e6), ("bert-large-msl128", 336e6), ("roberta-base", 125e6),
    ("roberta-large", 355e6), ("gpt2-small", 124e6), ("gpt2-medium", 355e6),
    ("gpt2-large", 774e6), ("gpt3-xl", 1.32e9), ("gpt3-6.7b", 6.66e9), ("gpt3-13b", 12.85e9),
    ("gpt3-20b", 20.3e9), ("gptj-6b", 6.05e9), ("t5-small", 52e6), ("t5-base", 223e6),
    ("transformer-base", 60e6), ("transformer-large", 209e6), ("unet-2d", 1.93e6),
])
def test_named_architectures_have_their_published_sizes(name, published) -> None:
    assert ZOO[name].param_count() == pytest.approx(published, rel=0.02)


def test_fc_mnist_sizes_are_exact() -> None:
    assert ZOO["fc-mnist"].param_count() == 545_810
    assert ZOO["fc-mnist-pytorch"].param_count() == 62_710


def test_bert_large_flops_match_the_published_estimate() -> None:
    # ~237 GFLOP per BERT-Large MSL128 training sample = 3x the forward pass (WAFER_FACTS)
    forward = sum(c.flops for c in layer_costs(named("bert-large-msl128")))
    assert 3 * forward == pytest.approx(237e9, rel=0.03)
    # padded to 384 versus a real length: skip_padding has less work
    assert sum(c.flops for c in layer_costs(BERT_LARGE, 178)) < \
        0.5 * sum(c.flops for c in layer_costs(BERT_LARGE, 384))


# ---- the two modes ----------------------------------------------------------------------------


def test_bert_large_on_wse2_is_pipelined_one_replica_and_compute_bound() -> None:
    result = plan(BERT_LARGE, load_spec("wse2"))
    assert result.mode == "pipelined" and "limit 1B" in result.reason
    assert result.replicas == 1 and "compute" in result.bound
    assert 5000 < result.throughput < 9000
    encoders = [s for s in result.stages if s.name.startswith("encoder")]
    assert len(encoders) == 24 and len({s.cores for s in encoders}) == 1  # balanced
    assert sum(s.cores for s in result.stages) <= load_spec("wse2").cores
    # SRAM per core respects the usable share
    assert max(s.sram_per_core for s in result.stages) <= load_spec("wse2").sram_bytes_per_core
    text = plan_text(result)
    assert "encoder.23" in text and "samples/s" in text and "mode: pipelined" in text


def test_small_models_are_replicated_across_the_wafer() -> None:
    small = plan(named("minilm-l6"), load_spec("wse2"))
    assert small.replicas > 4
    assert small.throughput > 10 * plan(BERT_LARGE, load_spec("wse2")).throughput


def test_halving_the_clock_halves_throughput() -> None:
    for mode in ("pipelined", "streaming"):
        full = plan(BERT_LARGE, load_spec("wse2"), PlanOptions(mode=mode, stream_batch=256))
        half = plan(BERT_LARGE, load_spec("wse2", {"clock_ghz": 0.55}),
                    PlanOptions(mode=mode, stream_batch=256))
        assert half.throughput / full.throughput == pytest.approx(0.5, rel=1e-6 if
                                                                   mode == "pipelined" else 0.01)


def test_a_model_over_the_parameter_limit_streams() -> None:
    result = plan(named("gpt3-6.7b"), load_spec("wse2"))
    assert result.mode == "streaming" and "1B layer-pipelined limit" in result.reason


def test_a_model_too_big_for_sram_streams_and_follows_the_streaming_bound() -> None:
    spec = load_spec("wse2", {"sram_kb_per_core": 0.5})
    result = plan(BERT_LARGE, spec)
    assert not result.fits_pipelined
    assert result.mode == "streaming" and "does not fit in SRAM" in result.reason
    with pytest.raises(BackendError, match="cannot run layer pipelined"):
        plan(BERT_LARGE, spec, PlanOptions(mode="pipelined"))
    # per layer max(weight bytes / stream bandwidth, batch FLOPs / achieved FLOP/s)
    costs = layer_costs(BERT_LARGE, 384)
    flops = spec.core_flops("fp16") * spec.cores
    batch = result.stream_batch
    expected = sum(max(c.params * 2 / spec.stream_bytes_per_s, batch * c.flops / flops)
                   for c in costs)
    assert result.throughput == pytest.approx(batch / expected, rel=1e-9)
    # at batch 1 every layer is stream-bound: the stream bandwidth over the weight bytes
    one = plan(BERT_LARGE, spec, PlanOptions(stream_batch=1))
    weights = sum(c.params for c in costs) * 2
    assert one.throughput == pytest.approx(spec.stream_bytes_per_s / weights, rel=0.05)
    assert result.throughput > 5 * one.throughput  # the default batch amortises the stream


def test_the_zoo_summary_covers_every_family_on_every_preset() -> None:
    rows = cli.zoo_rows([load_spec(s) for s in PRESETS])
    assert len(rows) == len(ZOO_TABLE) * len(PRESETS)
    by = {(r["spec"], r["model"]): r for r in rows}
    assert by[("wse2", "bert-large-msl128")]["mode"] == "pipelined"
    assert by[("wse2", "gpt3-20b")]["mode"] == "streaming"
    assert not by[("wse2", "gpt3-20b")]["fits_pipelined"]
    assert all(r["samples_per_s"] > 0 for r in rows)


# ---- calibration ------------------------------------------------------------------------------


def test_the_preset_efficiencies_reproduce_the_two_calibration_anchors() -> None:
    fitted = calibrate()
    wse2 = load_spec("wse2")
    for mode, name in CALIBRATIONS.items():
        figure, result = anchor(name).model()
        assert figure == pytest.approx(anchor(name).value, rel=0.002)
        assert result.mode == mode
        assert fitted[f"{mode}_efficiency"] == pytest.approx(wse2.efficiency(mode), rel=0.002)


def test_every_check_anchor_is_met_by_its_band_with_at_most_two_calibrations() -> None:
    rows = anchor_table()
    assert len(rows) == len(ANCHORS) and sum(r["role"] == "calibration" for r in rows) == 2
    assert all(r["modelled"] > 0 and math.isfinite(r["ratio"]) for r in rows)
    for row in rows:
        band, (low, high) = row["band"], row["published"]
        assert band["low"] <= row["modelled"] <= band["high"], row["anchor"]
        met = band["high"] >= low / 1.5 and band["low"] <= high * 1.5
        assert row["met"] == met and met, row["anchor"]


def test_an_anchor_outside_its_band_is_not_met() -> None:
    a = anchor("bert-large-msl128-train-cs2-r171-tf")
    assert a.met({"low": 6000, "expected": 7000, "high": 8000})
    assert not a.met({"low": 9700, "expected": 10000, "high": 11000})  # > 1.5 x 6,400
    assert not a.met({"low": 3000, "expected": 4000, "high": 4200})


# ---- the discrete-event device ----------------------------------------------------------------


def _plan(mode="pipelined", **kw):
    return plan(BERT_LARGE, load_spec("wse2"), PlanOptions(mode=mode, **kw))


def test_pipelined_completions_for_arrivals() -> None:
    p = _plan()
    device = make_device(p, skip_padding=False)
    # one sample alone takes the plan's latency
    assert simulate(device, [(0.0, [384])]) == [pytest.approx(p.latency_s, rel=1e-9)]
    # 1000 samples at once: the fill, then one per slowest-stage time
    device = make_device(p, skip_padding=False)
    done = simulate(device, [(1.0, [384] * 1000)])[0]
    assert done - 1.0 == pytest.approx(p.latency_s + 999 / p.throughput, rel=1e-9)


def test_the_constant_size_shortcut_equals_stepping_through_every_stage() -> None:
    p = _plan()
    rng = np.random.default_rng(1)
    times = np.cumsum(rng.exponential(1 / 8000, size=300))
    calls = [(t, [384] * int(rng.integers(1, 4))) for t in times]
    fast = simulate(PipelinedDevice(p, constant=True), calls)
    slow = simulate(PipelinedDevice(p, constant=False), calls)
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-12)


def test_real_lengths_make_short_samples_faster() -> None:
    p = _plan(skip_padding=True)
    p.prepare()
    device = make_device(p, skip_padding=True)
    short, long = simulate(device, [(0.0, [100]), (1.0, [384])])
    assert short < (long - 1.0) < p.latency_s * 1.0001


def test_streaming_batches_follow_the_plan() -> None:
    p = _plan(mode="streaming")
    single = simulate(StreamingDevice(p, constant=True), [(0.0, [384])])[0]
    assert single == pytest.approx(p.latency_s, rel=1e-9)
    # Offline: everything at once, in calls of 8
    device = StreamingDevice(p, constant=True)
    done = simulate(device, [(i * 1e-6, [384] * 8) for i in range(500)])
    assert 4000 / (max(done) - 0.0) == pytest.approx(p.throughput, rel=0.02)
    # SingleStream: each query after the previous answer
    device, t, latencies = StreamingDevice(p, constant=True), 0.0, []
    for _ in range(5):
        finish = simulate_one(device, t)
        latencies.append(finish - t)
        t = finish
    assert latencies == [pytest.approx(p.latency_s, rel=1e-9)] * 5


def simulate_one(device, t: float) -> float:
    done = dict(device.arrive(t, np.array([384]), 0))
    while 0 not in done:
        done.update(device.advance(device.next_event()))
    return done[0]


# ---- the real-time engine ---------------------------------------------------------------------


def test_the_engine_releases_calls_at_their_modelled_times() -> None:
    p = _plan()
    engine = Engine(make_device(p, skip_padding=False))
    try:
        started = time.monotonic()
        futures = [engine.submit(np.full(4, 384), k, started) for k in range(50)]
        results = [f.result(timeout=5) for f in futures]
        finished = time.monotonic()
        assert results == list(range(50))
        expected = p.latency_s + (200 - 1) / p.throughput
        assert finished - started == pytest.approx(expected, abs=0.003)
    finally:
        engine.close()


def test_closing_the_engine_fails_calls_in_flight() -> None:
    p = plan(BERT_LARGE, load_spec("wse2", {"clock_ghz": 1e-6}))  # hours per sample
    engine = Engine(make_device(p, skip_padding=False))
    future = engine.submit(np.full(1, 384), None)
    engine.close()
    with pytest.raises(BackendError, match="closed"):
        future.result(timeout=5)


# ---- numerics -----------------------------------------------------------------------------------


def test_fingerprints_depend_on_real_tokens_only() -> None:
    batch = random_batch(3, 384, seed=3)
    keys, lengths = fingerprints(batch)
    width = int(lengths.max())
    cut = FeatureBatch(*(a[:, :width] for a in batch.arrays()))
    np.testing.assert_array_equal(fingerprints(cut)[0], keys)
    other = FeatureBatch(batch.input_ids.copy(), batch.input_mask, batch.segment_ids)
    other.input_ids[0, 5] += 1
    assert fingerprints(other)[0][0] != keys[0]
    assert len(set(keys.tolist())) == 3


def test_the_bank_answers_past_a_rows_length_with_pad_logits() -> None:
    bank = LogitsBank(width=8)
    bank.add(np.array([7]), np.array([3]), [np.ones(3)], [np.full(3, 2.0)])
    rows = bank.find(np.array([7, 8]), np.array([3, 3]))
    assert rows.tolist() == [0, -1]
    assert bank.find(np.array([7]), np.array([4])).tolist() == [-1]  # another length: a miss
    start, end = bank.gather(rows[:1], 10)
    assert start.tolist() == [[1, 1, 1] + [-10000.0] * 7] and end[0, 2] == 2.0


@pytest.fixture(scope="module")
def staged(tiny_onnx: Path, tmp_path_factory) -> tuple:
    needs("onnx", purpose="the onnxruntime numerics backend")
    cache = tmp_path_factory.mktemp("wafer-cache")
    batch = random_batch(6, 384, seed=11)
    backend = load_backend("wafer", tiny_onnx, wafer(cache_dir=str(cache)))
    backend.stage(batch)
    return backend, batch, cache


def test_numerics_from_staging_equal_the_numerics_backends_logits(staged, tiny_onnx) -> None:
    backend, batch, _ = staged
    lengths = batch.input_mask.sum(axis=1)
    width = int(lengths[1:4].max())
    part = FeatureBatch(*(a[1:4, :width] for a in batch.arrays()))
    with load_backend("onnxruntime", tiny_onnx, BackendSettings(device="cpu")) as ort:
        want = ort.predict(part)
    got = backend.predict(part)
    assert backend.timing_stats()["computed_in_timed_phase"] == 0  # all staged
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape and g.dtype == np.float32 and g.flags.c_contiguous
        for row, n in enumerate(lengths[1:4]):
            np.testing.assert_allclose(g[row, :n], w[row, :n], atol=1e-4)
            assert (g[row, n:] == -10000.0).all()


def test_staged_numerics_are_cached_on_disk_for_the_next_run(staged, tiny_onnx) -> None:
    backend, batch, cache = staged
    assert list(cache.glob("*/rows-*.npz")) and list(cache.glob("*/info.json"))
    with load_backend("wafer", tiny_onnx, wafer(cache_dir=str(cache))) as again:
        again.stage(batch)
        assert again.timing_stats()["staged"] == {**again.timing_stats()["staged"],
                                                   "computed": 0, "from_cache": 6}
        np.testing.assert_array_equal(again.predict(batch)[0], backend.predict(batch)[0])


def test_unstaged_rows_are_computed_on_the_spot(staged) -> None:
    backend, _, _ = staged
    before = backend.timing_stats()["computed_in_timed_phase"]
    start, _ = backend.predict(random_batch(2, 384, seed=99))
    assert start.shape == (2, 384)
    assert backend.timing_stats()["computed_in_timed_phase"] == before + 2


def test_describe_records_spec_mode_plan_and_numerics(staged) -> None:
    backend, _, _ = staged
    described = backend.describe()
    json.dumps(described)
    assert described["mode"] in ("pipelined", "streaming") and described["mode_reason"]
    assert described["plan"]["samples_per_s"] > 0 and described["plan"]["latency_ms"] > 0
    assert described["numerics"]["backend"] == "onnxruntime"
    assert described["numerics"]["valid_for_accuracy"] is True
    assert described["spec"]["fields"]["clock_ghz"]["kind"] == "third-party"


def test_numerics_none_gives_empty_answers_and_says_so(squad_dir, tmp_path) -> None:
    from squad.data import prepare_data
    from squad.features import read_vocab
    from squad.postprocess import predict_answers
    from tests.helpers import squad_data

    data = prepare_data(squad_data(tmp_path, squad_dir, 30), progress=False)
    features = data.features
    backend = load_backend("wafer", None, wafer(numerics="none", arch="bert-large"))
    with backend:
        rows = list(range(len(features)))
        start, end = backend.predict(features.batch(rows))
        described = backend.describe()
    answers = predict_answers(features, {r: (start[r], end[r]) for r in rows}, data.examples,
                              read_vocab(data.vocab_path))
    assert set(answers.values()) == {"empty"}
    assert described["numerics"]["valid_for_accuracy"] is False
    assert "not valid for accuracy" in described["numerics"]["answers"]
    assert "numerics" not in backend.version()


def test_empty_logits_never_make_a_span() -> None:
    start, end = empty_logits(random_batch(4, 384, seed=5))
    top_start = np.argsort(-start, axis=1, kind="stable")[:, :20]
    top_end = np.argsort(-end, axis=1, kind="stable")[:, :20]
    for row in range(4):
        spans = top_end[row][None, :] - top_start[row][:, None]
        context = random_batch(4, 384, seed=5).segment_ids[row] == 1
        valid = context[top_start[row]][:, None] & context[top_end[row]][None, :] & (spans >= 0)
        assert not valid.any()


def test_bad_options_are_refused_before_loading() -> None:
    cls = get_backend_class("wafer")
    for options, message in (({"mode": "fast"}, "option mode: got 'fast'; expected one of "
                              "auto, pipelined, streaming"),
                             ({"precision": "int4"}, "option precision: got 'int4'; expected "
                              "one of fp16, fp32"),
                             ({"skip_padding": "maybe"}, "option skip_padding: got 'maybe'; "
                              "expected one of on, off"),
                             ({"numerics": "wafer"}, "cannot use itself"),
                             ({"in_flight": 0}, "in_flight")):
        with pytest.raises(BackendError, match=message):
            cls(wafer(**options))
    with pytest.raises(BackendError, match="arch=bert-large"):
        load_backend("wafer", None, wafer(numerics="none"))
    with pytest.raises(BackendError, match="unknown architecture"):
        load_backend("wafer", None, wafer(numerics="none", arch="bert-huge"))


# ---- the command line -------------------------------------------------------------------------


def test_plan_command_prints_stages_mode_and_figures(capsys) -> None:
    assert cli.main(["plan", "--model", "bert-large", "--spec", "wse2"]) == 0
    out = capsys.readouterr().out
    assert "mode: pipelined" in out and "encoder.0" in out and "samples/s" in out
    assert cli.main(["plan", "--model", "gpt3-20b", "--set", "clock_ghz=0.5"]) == 0
    assert "mode: streaming" in capsys.readouterr().out
    assert cli.main(["plan", "--zoo", "--spec", "wse2"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ZOO_TABLE)
    assert cli.main(["anchors"]) == 0 and "calibration" in capsys.readouterr().out
    assert cli.main(["plan", "--model", "nope"]) == 2


def test_the_harness_wafer_subcommand_plans(tmp_path) -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-m", "harness", "wafer", "plan", "--model",
                           "bert-large", "--spec", "wse2"], cwd=root, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "mode: pipelined" in done.stdout and "samples/s" in done.stdout


def test_the_harness_wafer_plan_times_the_squad_features_real_lengths(tmp_path, squad_dir):
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-m", "harness", "wafer", "plan", "--model", "bert-large", "--spec",
         "wse2", "--skip-padding", "--mirror", str(squad_dir), "--no-download",
         "--data-dir", str(tmp_path / "data"), "--cache-dir", str(tmp_path / "cache"),
         "--max-examples", "40"],
        cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    found = re.search(r"real lengths \(mean ([\d.]+) of 384 tokens\)", done.stdout)
    assert found, done.stdout
    assert 0 < float(found.group(1)) < 384


def test_the_plan_sizes_loadgens_test_unless_expect_user_conf(tmp_path) -> None:
    from harness.loadgen.settings import expected_lines, resolved_user_conf
    from harness.runner import DEVICE_BATCH_SCENARIOS

    wafer = get_backend_class("wafer")
    timing = {"arch": "bert-large", "numerics": "null"}
    backend = wafer(BackendSettings(device="cpu", options=timing))
    planned = plan(named("bert-large"), load_spec("wse2"))
    expected = backend.expected_performance(None)
    assert expected == {"samples_per_s": planned.throughput, "latency_s": planned.latency_s}
    assert isinstance(backend, TimedDevice) and backend.preferred_batch_size() == 64
    # the harness's table: the device's batch applies to Offline only
    assert DEVICE_BATCH_SCENARIOS == {"Offline"}
    kept = wafer(BackendSettings(device="cpu", options={**timing, "expect": "user.conf"}))
    assert kept.expected_performance(None) is None
    with pytest.raises(BackendError, match="option expect: got 'maybe'; expected one of plan, "
                       "low, high, user.conf"):
        wafer(BackendSettings(device="cpu", options={"expect": "maybe"}))
    low = wafer(BackendSettings(device="cpu", options={**timing, "expect": "low"}))
    assert low.expected_performance(None)["samples_per_s"] == \
        pytest.approx(planned.band["low"], rel=1e-6)
    assert planned.band["low"] < planned.throughput < planned.band["high"]
    null = get_backend_class("null")(BackendSettings(device="cpu"))
    assert not isinstance(null, TimedDevice)  # no timing hooks: the harness asks nothing

    assert expected_lines("Offline", expected) == [
        f"bert.Offline.target_qps = {planned.throughput:.6g}"]
    assert expected_lines("Server", expected) == []  # the load asked for, not an expectation
    single = expected_lines("SingleStream", expected)
    assert float(single[0].split("=")[1]) == pytest.approx(planned.latency_s * 1e3, rel=1e-5)
    multi = float(expected_lines("MultiStream", expected)[0].split("=")[1])
    assert multi == pytest.approx((planned.latency_s + 7 / planned.throughput) * 1e3, rel=1e-5)
    conf = tmp_path / "user.conf"
    conf.write_text("bert.SingleStream.target_latency = 70\n")
    text = resolved_user_conf(conf, "SingleStream", 100, True, expected=single,
                              expected_from="wafer")
    assert text.index("target_latency = 70") < text.index(single[0]) \
        < text.index("# --- added by the harness")


def test_expected_performance_and_load_read_the_models_shapes_once(tiny_hf_dir, monkeypatch):
    """Reading a single-file ONNX graph's shapes reads the whole file: the run's sizing and
    its load share one reading."""
    import backends.wafer_backend as wafer_module

    reads = []
    real = wafer_module.from_model
    monkeypatch.setattr(wafer_module, "from_model", lambda path: reads.append(path) or real(path))
    backend = get_backend_class("wafer")(BackendSettings(device="cpu",
                                                         options={"numerics": "null"}))
    expected = backend.expected_performance(tiny_hf_dir)
    backend.load(tiny_hf_dir)
    try:
        assert len(reads) == 1
        assert expected["samples_per_s"] == pytest.approx(backend.plan.throughput)
    finally:
        backend.close()
