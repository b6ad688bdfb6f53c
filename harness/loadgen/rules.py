"""The MLPerf Inference rules for BERT, applied on LoadGen 6, and the compliance audits.

The rounds themselves are data (:mod:`harness.loadgen.rulesets`, one ``RuleSet`` each); this
module applies one to a run. LoadGen 6 carries its own mlperf.conf: other RNG seeds, 10833
Offline samples, no minimum query count for Server or SingleStream. A run under
``--rules v1.0`` (or another round) gets

* user.conf lines after the user's own, written ``bert.<Scenario>.key`` -- the form LoadGen
  looks up first -- so that they win over any line of the user's: 600 s, the minimum query
  counts, the Server latency bound and the performance sample count;
* the round's seeds set on the ``TestSettings`` after ``FromConfig``: LoadGen 6 takes seeds
  from its built-in mlperf.conf only and ignores them in a user.conf or an audit.config.

A compliance audit is a performance run with LoadGen's audit settings (``audit.config``,
handed to ``FromConfig`` explicitly, never left in the working directory) and, for TEST05,
other seeds, set the same way.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from common.errors import ConfigError
from harness.loadgen import layout
from harness.loadgen.rulesets import (
    LOADGEN,
    RULESETS,
    TEST05_SEEDS,
    Audit,
    RuleSet,
    Seeds,
    ruleset,
)
from harness.loadgen.rulesets import V1_0 as _V1_0

__all__ = ["LOADGEN", "RULESETS", "TEST05_SEEDS", "Audit", "RuleSet", "Seeds", "ruleset"]

V1_0 = _V1_0.name
RULES = (LOADGEN, *RULESETS)  # the names --rules takes

# The default round's figures under their former names (the tree builder, the runs and
# older callers read them); a round-aware caller takes them from ``ruleset(name)``.
V1_0_SEEDS = _V1_0.seeds
SCENARIOS = _V1_0.scenarios
MIN_DURATION_MS = _V1_0.min_duration_ms
MIN_QUERY_COUNT = _V1_0.min_query_count
LATENCY_PERCENTILE = _V1_0.latency_percentile
SERVER_TARGET_LATENCY_MS = _V1_0.server_latency_ms["bert-99"]
PERFORMANCE_SAMPLE_COUNT = _V1_0.performance_sample_count
DEV_SET_FEATURES = _V1_0.dev_set_features
REFERENCE_F1 = _V1_0.reference_f1
BENCHMARKS = _V1_0.benchmarks
SYSTEM_TYPES = _V1_0.system_types
MAX_ACCURACY_LOG_BYTES = _V1_0.max_accuracy_log_bytes
TRUNCATE_KEEP_CHARS = _V1_0.truncate_keep_chars
AUDITS = _V1_0.audits
NOT_REQUIRED_FOR_BERT = _V1_0.not_required_audits
SINGLE_STREAM_RELAXED_NS = _V1_0.single_stream_relaxed_ns
RELAXED_TOLERANCE = _V1_0.single_stream_relaxed_tolerance
TEST01_ACCURACY_TOLERANCE = _V1_0.test01_accuracy_tolerance


def accuracy_target(benchmark: str, rules: str = V1_0) -> float:
    """The F1 (percent) a ``benchmark`` run must reach, unrounded as the checker has it."""
    return ruleset(rules).accuracy_target(benchmark)


def check_rules(rules: str, scenario: str, mode: str, audit: str | None) -> None:
    """Refuse a combination the rules do not have."""
    if rules != LOADGEN:
        round_ = ruleset(rules)  # an unknown name is refused here
    if audit is not None and audit not in AUDITS:
        raise ConfigError(f"unknown compliance test {audit!r}; choose one of "
                          f"{', '.join(AUDITS)}")
    if audit is not None and mode != "performance":
        raise ConfigError(f"{audit} is a performance-mode test, not an {mode} run")
    if rules != LOADGEN and scenario not in round_.scenarios:
        raise ConfigError(f"{scenario} is not a {rules} BERT scenario (those are "
                          f"{', '.join(round_.scenarios)}); run it with --rules {LOADGEN}")


def conf_lines(rules: str, scenario: str, qsl_size: int, short_run: bool) -> list[str]:
    """user.conf lines that put ``scenario`` under ``rules`` (none for LoadGen's own).

    A short run keeps its short duration and query count (the harness adds those); a QSL
    smaller than the dev set keeps its own performance sample count.
    """
    if rules == LOADGEN:
        return []
    round_ = ruleset(rules)
    key = f"bert.{scenario}"
    lines = []
    if not short_run:
        lines += [f"{key}.min_duration = {round_.min_duration_ms}",
                  f"{key}.min_query_count = {round_.min_query_count[scenario]}"]
    lines.append(f"{key}.target_latency_percentile = {round_.latency_percentile[scenario]}")
    if scenario == "Server":
        lines.append(f"{key}.target_latency = {round_.server_latency_ms['bert-99']}")
    if qsl_size >= round_.performance_sample_count:
        lines.append(f"{key}.performance_sample_count_override = "
                     f"{round_.performance_sample_count}")
    return lines


def run_seeds(rules: str, audit: str | None) -> Seeds | None:
    """The seeds a run uses, or None for LoadGen's own."""
    audits = AUDITS if rules == LOADGEN else ruleset(rules).audits
    if audit is not None and audits[audit].seeds is not None:
        return audits[audit].seeds
    return None if rules == LOADGEN else ruleset(rules).seeds


def settings_overrides(rules: str, audit: str | None) -> dict[str, int]:
    """``TestSettings`` attributes to set after the configs are read: the seeds."""
    seeds = run_seeds(rules, audit)
    return seeds.to_json() if seeds is not None else {}


def results_root(results_dir: Path, audit: str | None) -> Path:
    """Where a run's results tree starts: a compliance run's is apart, under
    ``<results>/compliance/<TEST>/``, so that it never replaces the submission's own run."""
    return Path(results_dir) if audit is None else Path(results_dir) / layout.COMPLIANCE / audit


def audit_config_text(audit: str | None) -> str | None:
    return None if audit is None else AUDITS[audit].config_text()


def rules_record(rules: str, scenario: str, mode: str, short_run: bool, qsl_size: int,
                 audit: str | None, limits: dict[str, Any] | None = None) -> dict[str, Any]:
    """What settings.json says about the rules of a run, and whether it may be submitted."""
    seeds = run_seeds(rules, audit)
    record: dict[str, Any] = {
        "name": rules,
        "seeds": seeds.to_json() if seeds else "LoadGen 6's built-in mlperf.conf",
        "audit": None if audit is None else dataclasses.asdict(AUDITS[audit]),
    }
    why_not = []
    if rules != LOADGEN:
        round_ = ruleset(rules)
        record.update(
            min_duration_ms=None if short_run else round_.min_duration_ms,
            min_query_count=None if short_run else round_.min_query_count.get(scenario),
            performance_sample_count=min(qsl_size, round_.performance_sample_count),
            server_target_latency_ms=round_.server_latency_ms["bert-99"]
            if scenario == "Server" else None,
        )
    else:
        why_not.append(f"rules {rules!r}: LoadGen 6's own mlperf.conf, not an MLPerf round's "
                       f"rules (--rules {' or '.join(RULESETS)})")
    if short_run:
        why_not.append("a short run (--short): 10 s and no minimum query count")
    if qsl_size < DEV_SET_FEATURES:
        why_not.append(f"{qsl_size} of the {DEV_SET_FEATURES} dev-set features (--max-examples)")
    if limits:
        # the harness's own bounds: LoadGen stops issuing at max_duration_ms, and the Server
        # overload guard ends a run with more than server_max_async_queries outstanding
        record["limits"] = {
            "max_duration_ms": int(limits["max_run_s"] * 1000) if mode == "performance"
            else None,
            "server_max_async_queries": limits.get("server_max_async_queries"),
        }
    record["submittable"] = not why_not
    record["not_submittable_because"] = why_not
    return record


def mlperf_conf_text(rules: str) -> str:
    """measurements/.../mlperf.conf: the rules a submission's runs were made under."""
    if rules == LOADGEN:
        return ("# These runs used the mlperf.conf built into LoadGen 6.0.17 as it is (the\n"
                "# harness's --rules loadgen); they are not under an MLPerf round's rules.\n")
    round_ = ruleset(rules)
    lines = [
        f"# The MLPerf Inference {round_.name} rules for BERT, as these runs were made under them.",
        "# LoadGen 6 carries its own mlperf.conf; the harness put these values on top of it:",
        f"# the durations, query counts, latency bound and sample count as the \"rules "
        f"{round_.name}\" lines",
        "# of the user.conf beside this file, and the seeds on LoadGen's test settings (LoadGen 6",
        "# reads seeds from no file).",
        f"bert.*.performance_sample_count_override = {round_.performance_sample_count}",
        *(f"*.*.{key} = {value}" for key, value in round_.seeds.to_json().items()),
    ]
    for scenario in round_.scenarios:
        lines += [f"*.{scenario}.target_latency_percentile = "
                  f"{round_.latency_percentile[scenario]}",
                  f"*.{scenario}.min_duration = {round_.min_duration_ms}",
                  f"*.{scenario}.min_query_count = {round_.min_query_count[scenario]}"]
        if scenario == "Server":
            lines.append(f"bert.Server.target_latency = {round_.server_latency_ms['bert-99']}")
    return "\n".join(lines) + "\n"
