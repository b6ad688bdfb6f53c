"""The wafer model's terms (issue 22): efficiency by mode with a band, host input workers,
start-up, energy, latency that says what it is, modes by modelzoo release, decode KV caches
and multi-system streaming. Fast (seconds), no LoadGen."""

from __future__ import annotations

import dataclasses

import pytest

from backends import BackendError, BackendSettings, load_backend
from backends.wafer import cli
from backends.wafer.calibration import anchor
from backends.wafer.numerics import compute
from backends.wafer.plan import PlanOptions, plan
from backends.wafer.release import release_mode
from backends.wafer.report import plan_text
from backends.wafer.shapes import ZOO, ZOO_TABLE, layer_costs, named
from backends.wafer.spec import load_spec
from tests.helpers import random_batch

WSE2 = load_spec("wse2")
BERT_LARGE = named("bert-large")


def test_each_mode_has_its_own_efficiency() -> None:
    pipelined = plan(BERT_LARGE, WSE2, PlanOptions(mode="pipelined"))
    streaming = plan(BERT_LARGE, WSE2, PlanOptions(mode="streaming", stream_batch=4096))
    assert pipelined.core_flops == pytest.approx(WSE2.core_flops("fp16", "pipelined"))
    assert streaming.core_flops == pytest.approx(WSE2.core_flops("fp16", "streaming"))
    assert WSE2.streaming_efficiency < WSE2.pipelined_efficiency
    faster = WSE2.with_overrides({"streaming_efficiency": 2 * WSE2.streaming_efficiency})
    doubled = plan(BERT_LARGE, faster, PlanOptions(mode="streaming", stream_batch=4096))
    assert doubled.throughput == pytest.approx(2 * streaming.throughput, rel=0.01)
    # the pipelined plan does not depend on the streaming term
    assert plan(BERT_LARGE, faster, PlanOptions(mode="pipelined")).throughput == \
        pytest.approx(pipelined.throughput)


def test_the_band_scales_the_compute_rate_and_halving_the_clock_halves_it() -> None:
    result = plan(BERT_LARGE, WSE2)
    assert result.band["low"] == pytest.approx(WSE2.band_low * result.throughput, rel=0.01)
    assert result.band["high"] == pytest.approx(WSE2.band_high * result.throughput, rel=0.01)
    slow = plan(BERT_LARGE, WSE2.with_overrides({"clock_ghz": 0.55}))
    assert slow.throughput == pytest.approx(result.throughput / 2, rel=0.01)
    assert slow.band["low"] == pytest.approx(result.band["low"] / 2, rel=0.01)
    assert "band" in plan_text(result) and result.summary()["band_samples_per_s"] == result.band


def test_host_input_workers_bound_a_tiny_model_and_are_flagged_in_the_zoo() -> None:
    result = plan(named("fc-mnist"), WSE2)
    assert result.throughput == pytest.approx(WSE2.host_workers * WSE2.worker_samples_per_s)
    assert result.bound.startswith("host input workers")
    more = plan(named("fc-mnist"), WSE2.with_overrides({"host_workers": 8}))
    assert more.throughput > 1.5 * result.throughput
    text = cli.zoo_text([WSE2])
    line = next(x for x in text.splitlines() if " fc-mnist " in x)
    assert line.endswith("*") and "assumed host input rate" in text
    assert not next(x for x in text.splitlines() if " bert-large-squad " in x).endswith("*")


def test_start_up_and_energy_are_reported_apart_from_steady_state() -> None:
    result = plan(BERT_LARGE, WSE2)
    start = result.summary()["startup_s"]
    assert start["weight_load"] == pytest.approx(
        BERT_LARGE.param_count() * 2 / (WSE2.weight_load_gbs * 1e9))
    assert start["total"] == pytest.approx(WSE2.job_start_s + WSE2.device_programming_s
                                           + start["weight_load"])
    assert result.summary()["startup_uncached_s"] == pytest.approx(
        start["total"] + WSE2.compile_s)
    assert result.joules_per_sample() == pytest.approx(15e3 / result.throughput)
    assert "J/sample" in plan_text(result) and "start-up" in plan_text(result)


def test_streaming_latency_is_given_at_the_chosen_batch() -> None:
    one = plan(BERT_LARGE, WSE2, PlanOptions(mode="streaming", stream_batch=1))
    big = plan(BERT_LARGE, WSE2, PlanOptions(mode="streaming", stream_batch=1024))
    assert big.latency_s == pytest.approx(one.latency_s)  # a sample alone: batch 1
    batch_s = big.batch_time([big.seq] * 1024)
    assert big.latency_alt_s > batch_s > 20 * one.latency_s
    assert "latency at batch 1024" in plan_text(big)
    assert big.summary()["latency_in_full_batch_ms"] == pytest.approx(big.latency_alt_s * 1e3)


def test_pipelined_latency_is_an_upper_bound_with_a_row_streamed_lower_bound() -> None:
    result = plan(BERT_LARGE, WSE2)
    assert result.delay_s < result.latency_alt_s < result.latency_s
    assert "upper bound" in plan_text(result) and "upper bound" in result.summary()[
        "latency_meaning"]
    small = plan(named("minilm-l6"), WSE2)
    assert small.replicas > 1 and 0 < small.low_latency_s <= small.latency_s
    alone = plan(named("minilm-l6"), WSE2, PlanOptions(low_latency=True))
    assert alone.replicas == 1 and alone.latency_s == pytest.approx(small.low_latency_s)
    assert alone.throughput < small.throughput


def test_release_16_plans_every_family_in_its_modelzoo_mode() -> None:
    streaming = {"gpt2-small-ws", "gpt3-xl", "gpt3-6.7b", "gpt3-13b", "gpt3-20b", "gptj-6b",
                 "gptj-6b-summarisation"}
    for name in ZOO_TABLE:
        result = plan(ZOO[name], WSE2, PlanOptions(release="1.6"))
        want = "streaming" if name in streaming else "pipelined"
        assert result.mode == want, name
        assert "release 1.6" in result.reason
    # auto, by size alone, pipelines the _ws config
    assert plan(ZOO["gpt2-small-ws"], WSE2).mode == "pipelined"


def test_release_19_streams_everything() -> None:
    for name in ZOO_TABLE:
        assert plan(ZOO[name], WSE2, PlanOptions(release="1.9")).mode == "streaming", name
    assert release_mode("minilm-l6", "1.6") == (None, "")


def test_pipelined_runs_one_system_and_streaming_pays_for_several() -> None:
    two = WSE2.with_overrides({"systems": 2})
    assert plan(named("minilm-l6"), two, PlanOptions(release="1.6")).mode == "streaming"
    for arch, options in ((named("bert-large-squad"), PlanOptions(release="1.6")),
                          (BERT_LARGE, PlanOptions(mode="pipelined", release="1.9"))):
        with pytest.raises(BackendError, match="pipelined run uses one system"):
            plan(arch, two, options)
    # no release: the hypothetical data-parallel pipeline, labelled as such
    hypothetical = plan(BERT_LARGE, two)
    assert hypothetical.mode == "pipelined" and "HYPOTHETICAL" in hypothetical.reason
    assert hypothetical.throughput == pytest.approx(2 * plan(BERT_LARGE, WSE2).throughput)
    gptj = named("gptj-6b")
    one = plan(gptj, WSE2, PlanOptions(training=True, stream_batch=8))
    both = plan(gptj, two, PlanOptions(training=True, stream_batch=8))
    assert one.throughput < both.throughput < 2 * one.throughput  # SwarmX transfers


def test_decode_counts_the_kv_cache_of_every_stream_in_flight() -> None:
    llama = named("llama-3.1-8b")
    one = sum(c.act_bytes for c in layer_costs(dataclasses.replace(llama, decode_streams=1)))
    every = sum(c.act_bytes for c in layer_costs(llama))
    cache = 2 * llama.decode_context * llama.kv_width * 2 * llama.layers
    assert every - one == pytest.approx((llama.layers + 1) * cache)
    wse3 = load_spec("wse3")
    result = plan(llama, wse3, PlanOptions(mode="pipelined"))
    assert f"KV caches of {llama.layers + 2} streams" in result.reason
    big = plan(named("llama-3.1-70b"), wse3.with_overrides({"sram_usable_fraction": 1.0}),
               PlanOptions(mode="pipelined", wafers=4))
    assert "KV caches of" in big.reason and "82 streams" not in big.reason  # not all fit
    assert big.delay_s > 8 * wse3.host_transfer_overhead_us * 1e-6  # across wafers


def test_gptj_fine_tuning_is_a_streaming_zoo_family() -> None:
    arch = named("gptj-6b-summarisation")
    assert arch.param_count() == ZOO["gptj-6b"].param_count()
    assert plan(arch, WSE2, PlanOptions(release="1.6")).mode == "streaming"


def test_a_wafer_run_says_it_is_simulated_with_preset_release_and_band() -> None:
    settings = BackendSettings(device="cpu", options={"numerics": "none", "arch": "bert-large",
                                                      "release": "1.6"})
    with load_backend("wafer", None, settings) as backend:
        described = backend.describe()
        assert backend.system_tag == "wafer-simulated-wse2-release-1.6"
    sim = described["simulated"]
    assert sim["modelled"] and sim["preset"] == "wse2" and sim["release"] == "1.6"
    assert sim["band_samples_per_s"]["low"] < sim["band_samples_per_s"]["high"]
    assert described["plan"]["modelled"] is True


def test_a_short_anchor_loop_counts_the_weights_sent_inside_it() -> None:
    eval_cs3 = anchor("bert-large-msl128-eval-cs3")
    assert eval_cs3.loop_s == 8.0
    figure, result = eval_cs3.model()
    load = result.spec.startup_s(result.weight_bytes)["weight_load"]
    assert 0 < load < eval_cs3.loop_s
    assert figure == pytest.approx(result.throughput * (8.0 - load) / 8.0)


def test_the_answers_precomputation_says_up_front_how_long_it_takes(capsys) -> None:
    batch = random_batch(64, 32, seed=3)
    lengths = batch.arrays()[1].sum(axis=1)
    with load_backend("null", None, BackendSettings(device="cpu")) as null:
        starts, _ = compute(null, batch, lengths, 8)
    assert len(starts) == 64
    err = capsys.readouterr().err
    assert "computing the answers of 64 samples with null" in err and " s (cached" in err


@pytest.mark.parametrize("name", ["seq", "stream_batch", "wafers"])
@pytest.mark.parametrize("value", [0, -1, 1e300, float("nan"), 2.5])
def test_plan_options_refuse_bad_numbers_in_one_line(name, value) -> None:
    with pytest.raises(BackendError, match=f"wafer plan: {name} = .*: expected a whole number"):
        PlanOptions(**{name: value})
