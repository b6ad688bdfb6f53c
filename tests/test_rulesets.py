"""Rules per MLPerf round as data: each round one RuleSet, read by the run and the checker."""

from __future__ import annotations

import dataclasses

import pytest

from common.errors import ConfigError
from harness.cli import build_parser
from harness.config import RunConfig, config_from_args
from harness.loadgen import rules
from harness.loadgen.rulesets import RULESETS, V1_0, V1_1, ruleset

# mlperf.conf of mlcommons/inference at tag v1.0.1 and on branch r1.1
V1_1_SEEDS = {"qsl_rng_seed": 1624344308455410291, "sample_index_rng_seed": 517984244576520566,
              "schedule_rng_seed": 10051496985653635065}


def test_rounds_by_name_and_a_hint_for_a_typo() -> None:
    assert list(RULESETS) == ["v1.0", "v1.1"] and ruleset("v1.1") is V1_1
    with pytest.raises(ConfigError, match="did you mean v1.1"):
        ruleset("v11")
    assert rules.RULES == ("loadgen", "v1.0", "v1.1")


def test_v1_1_differs_from_v1_0_for_bert_in_its_seeds_only() -> None:
    assert V1_1.seeds.to_json() == V1_1_SEEDS
    assert V1_0.seeds.qsl_rng_seed == 7322528924094909334
    same = {f.name for f in dataclasses.fields(V1_0)} - {"name", "seeds"}
    assert all(getattr(V1_0, name) == getattr(V1_1, name) for name in same)


def test_a_v1_1_run_gets_the_v1_1_seeds_and_minimums() -> None:
    assert rules.settings_overrides("v1.1", None) == V1_1_SEEDS
    assert rules.settings_overrides("v1.1", "TEST05")["qsl_rng_seed"] == 313588358309856706
    assert "bert.Server.min_query_count = 270336" in rules.conf_lines("v1.1", "Server", 10833,
                                                                       False)
    conf = rules.mlperf_conf_text("v1.1")
    assert "MLPerf Inference v1.1 rules" in conf
    assert "*.*.schedule_rng_seed = 10051496985653635065" in conf.splitlines()
    record = rules.rules_record("v1.1", "Offline", "performance", False, 10833, None)
    assert record["submittable"] and record["seeds"] == V1_1_SEEDS
    with pytest.raises(ConfigError, match="not a v1.1 BERT scenario"):
        rules.check_rules("v1.1", "MultiStream", "performance", None)


@pytest.mark.parametrize("command", ["run", "submission", "check"])
def test_each_command_takes_the_round(command: str) -> None:
    extra = ["somewhere"] if command == "check" else []
    args = build_parser().parse_args([command, *extra, "--rules", "v1.1"])
    if command == "check":
        assert args.rules == "v1.1"
        with pytest.raises(SystemExit):
            build_parser().parse_args([command, *extra, "--rules", "v2.0"])
        return
    assert config_from_args(args, RunConfig).rules == "v1.1"
    with pytest.raises(ConfigError, match="--rules: got 'v2.0'; expected one of loadgen, "
                       "v1.0, v1.1"):
        config_from_args(build_parser().parse_args([command, *extra, "--rules", "v2.0"]),
                         RunConfig)
