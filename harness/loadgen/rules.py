"""The MLPerf Inference v1.0 rules for BERT, applied on LoadGen 6, and the compliance audits.

LoadGen 6 carries its own mlperf.conf: other RNG seeds, 10833 Offline samples, no minimum
query count for Server or SingleStream. A run under ``--rules v1.0`` gets

* user.conf lines after the user's own, written ``bert.<Scenario>.key`` -- the form LoadGen
  looks up first -- so that they win over any line of the user's: 600 s, the minimum query
  counts, the Server latency bound and the performance sample count;
* the v1.0 seeds set on the ``TestSettings`` after ``FromConfig``: LoadGen 6 takes seeds
  from its built-in mlperf.conf only and ignores them in a user.conf or an audit.config.

A compliance audit is a performance run with LoadGen's audit settings (``audit.config``,
handed to ``FromConfig`` explicitly, never left in the working directory) and, for TEST05,
other seeds, set the same way. The figures are those of MLCommons' v1.0 mlperf.conf,
submission checker and compliance tests (``compliance/nvidia/TEST01``, ``TEST05``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from common.errors import ConfigError

LOADGEN = "loadgen"  # LoadGen 6's built-in mlperf.conf, as it is
V1_0 = "v1.0"
RULES = (LOADGEN, V1_0)


@dataclasses.dataclass(frozen=True)
class Seeds:
    """LoadGen's three RNG seeds."""

    qsl_rng_seed: int
    sample_index_rng_seed: int
    schedule_rng_seed: int

    def to_json(self) -> dict[str, int]:
        return dataclasses.asdict(self)


V1_0_SEEDS = Seeds(7322528924094909334, 1570999273408051088, 3507442325620259414)
TEST05_SEEDS = Seeds(313588358309856706, 471397156132239067, 413914573387865862)

# v1.0 BERT (bert-99 and bert-99.9 share them)
SCENARIOS = ("SingleStream", "Server", "Offline")  # MultiStream is no v1.0 BERT scenario
MIN_DURATION_MS = 600_000
# Offline has one query: LoadGen reads its min_query_count as the least samples in it.
MIN_QUERY_COUNT = {"SingleStream": 1024, "Server": 270_336, "Offline": 24_576}
LATENCY_PERCENTILE = {"SingleStream": 90, "Server": 99, "Offline": 90}
SERVER_TARGET_LATENCY_MS = 130
PERFORMANCE_SAMPLE_COUNT = 10833
DEV_SET_FEATURES = 10833  # an accuracy run for a submission covers all of them
REFERENCE_F1 = 90.874  # fp32 BERT-Large on SQuAD v1.1 dev
BENCHMARKS = {"bert-99": 0.99, "bert-99.9": 0.999}  # share of REFERENCE_F1 to reach
# Required and optional scenarios per system type; a benchmark a type does not list is not
# one it may submit (bert-99.9 is not an edge benchmark).
SYSTEM_TYPES: dict[str, dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "datacenter": {"bert-99": (("Offline",), ("Server",)),
                   "bert-99.9": (("Offline",), ("Server",))},
    "edge": {"bert-99": (("SingleStream", "Offline"), ())},
    "datacenter,edge": {"bert-99": (("SingleStream", "Offline"), ("Server",)),
                        "bert-99.9": (("Offline",), ("Server",))},
}
SYSTEM_TYPES["edge,datacenter"] = SYSTEM_TYPES["datacenter,edge"]
MAX_ACCURACY_LOG_BYTES = 10 * 1024  # a submitted mlperf_log_accuracy.json is at most this
TRUNCATE_KEEP_CHARS = 4096  # ... keeping this much of its start and of its end


def accuracy_target(benchmark: str) -> float:
    """The F1 (percent) a ``benchmark`` run must reach, unrounded as the checker has it."""
    return REFERENCE_F1 * BENCHMARKS[benchmark]


@dataclasses.dataclass(frozen=True)
class Audit:
    """A compliance test's LoadGen settings and pass criteria."""

    name: str
    what: str
    mode: int  # LoadGen's mode key: 2 = performance only
    accuracy_log_rng_seed: int | None = None
    accuracy_log_sampling_target: int | None = None
    seeds: Seeds | None = None  # None: the rules' own seeds
    tolerance: float = 0.10  # the performance may differ from the submission's by this share

    def config_text(self) -> str:
        """The audit.config LoadGen reads (its seeds are set on the settings: LoadGen 6
        ignores seeds in an audit.config; they are written here for the reader)."""
        lines = [f"# {self.name}: {self.what}",
                 "# mode: 0 submission, 1 accuracy, 2 performance, 3 find peak performance",
                 f"*.*.mode = {self.mode}"]
        if self.accuracy_log_rng_seed is not None:
            lines.append(f"*.*.accuracy_log_rng_seed = {self.accuracy_log_rng_seed}")
        if self.accuracy_log_sampling_target is not None:
            lines.append(f"*.*.accuracy_log_sampling_target = {self.accuracy_log_sampling_target}")
        if self.seeds is not None:
            lines.append("# set on LoadGen's test settings by the harness (LoadGen 6 reads no "
                         "seeds from this file):")
            lines += [f"#   {key} = {value}" for key, value in self.seeds.to_json().items()]
        return "\n".join(lines) + "\n"


AUDITS = {
    "TEST01": Audit("TEST01", "accuracy in performance mode (a sample of the responses is "
                    "logged and compared with the accuracy run's)", 2,
                    accuracy_log_rng_seed=720381539243781796,
                    accuracy_log_sampling_target=4096, tolerance=0.10),
    "TEST05": Audit("TEST05", "performance with other RNG seeds", 2, seeds=TEST05_SEEDS,
                    tolerance=0.05),
}
# TEST04-A/B (same sample repeated) are not required for BERT in v1.0.
NOT_REQUIRED_FOR_BERT = ("TEST04-A", "TEST04-B")
# SingleStream: a reference 90th percentile latency at most this (ns) gets RELAXED_TOLERANCE.
SINGLE_STREAM_RELAXED_NS = 200_000
RELAXED_TOLERANCE = 0.20
# TEST01 when responses differ between modes: F1 of the logged samples within this share of
# the accuracy run's F1 on the same samples (TEST01 README, Part III)
TEST01_ACCURACY_TOLERANCE = {"bert-99": 0.01, "bert-99.9": 0.001}


def check_rules(rules: str, scenario: str, mode: str, audit: str | None) -> None:
    """Refuse a combination the rules do not have."""
    if rules not in RULES:
        raise ConfigError(f"unknown rules {rules!r}; choose one of {', '.join(RULES)}")
    if audit is not None and audit not in AUDITS:
        raise ConfigError(f"unknown compliance test {audit!r}; choose one of "
                          f"{', '.join(AUDITS)}")
    if audit is not None and mode != "performance":
        raise ConfigError(f"{audit} is a performance-mode test, not an {mode} run")
    if rules == V1_0 and scenario not in SCENARIOS:
        raise ConfigError(f"{scenario} is not a v1.0 BERT scenario (those are "
                          f"{', '.join(SCENARIOS)}); run it with --rules {LOADGEN}")


def conf_lines(rules: str, scenario: str, qsl_size: int, short_run: bool) -> list[str]:
    """user.conf lines that put ``scenario`` under ``rules`` (none for LoadGen's own).

    A short run keeps its short duration and query count (the harness adds those); a QSL
    smaller than the dev set keeps its own performance sample count.
    """
    if rules == LOADGEN:
        return []
    key = f"bert.{scenario}"
    lines = []
    if not short_run:
        lines += [f"{key}.min_duration = {MIN_DURATION_MS}",
                  f"{key}.min_query_count = {MIN_QUERY_COUNT[scenario]}"]
    lines.append(f"{key}.target_latency_percentile = {LATENCY_PERCENTILE[scenario]}")
    if scenario == "Server":
        lines.append(f"{key}.target_latency = {SERVER_TARGET_LATENCY_MS}")
    if qsl_size >= PERFORMANCE_SAMPLE_COUNT:
        lines.append(f"{key}.performance_sample_count_override = {PERFORMANCE_SAMPLE_COUNT}")
    return lines


def run_seeds(rules: str, audit: str | None) -> Seeds | None:
    """The seeds a run uses, or None for LoadGen's own."""
    if audit is not None and AUDITS[audit].seeds is not None:
        return AUDITS[audit].seeds
    return V1_0_SEEDS if rules == V1_0 else None


def settings_overrides(rules: str, audit: str | None) -> dict[str, int]:
    """``TestSettings`` attributes to set after the configs are read: the seeds."""
    seeds = run_seeds(rules, audit)
    return seeds.to_json() if seeds is not None else {}


def results_root(results_dir: Path, audit: str | None) -> Path:
    """Where a run's results tree starts: a compliance run's is apart, under
    ``<results>/compliance/<TEST>/``, so that it never replaces the submission's own run."""
    return Path(results_dir) if audit is None else Path(results_dir) / "compliance" / audit


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
    if rules == V1_0:
        record.update(
            min_duration_ms=None if short_run else MIN_DURATION_MS,
            min_query_count=None if short_run else MIN_QUERY_COUNT.get(scenario),
            performance_sample_count=min(qsl_size, PERFORMANCE_SAMPLE_COUNT),
            server_target_latency_ms=SERVER_TARGET_LATENCY_MS if scenario == "Server" else None,
        )
    else:
        why_not.append(f"rules {rules!r}: LoadGen 6's own mlperf.conf, not the v1.0 rules "
                       f"(--rules {V1_0})")
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
                "# harness's --rules loadgen); they are not under the MLPerf v1.0 rules.\n")
    seeds = V1_0_SEEDS.to_json()
    lines = [
        "# The MLPerf Inference v1.0 rules for BERT, as these runs were made under them.",
        "# LoadGen 6 carries its own mlperf.conf; the harness put these values on top of it:",
        "# the durations, query counts, latency bound and sample count as the \"rules v1.0\" lines",
        "# of the user.conf beside this file, and the seeds on LoadGen's test settings (LoadGen 6",
        "# reads seeds from no file).",
        f"bert.*.performance_sample_count_override = {PERFORMANCE_SAMPLE_COUNT}",
        *(f"*.*.{key} = {value}" for key, value in seeds.items()),
    ]
    for scenario in SCENARIOS:
        lines += [f"*.{scenario}.target_latency_percentile = {LATENCY_PERCENTILE[scenario]}",
                  f"*.{scenario}.min_duration = {MIN_DURATION_MS}",
                  f"*.{scenario}.min_query_count = {MIN_QUERY_COUNT[scenario]}"]
        if scenario == "Server":
            lines.append(f"bert.Server.target_latency = {SERVER_TARGET_LATENCY_MS}")
    return "\n".join(lines) + "\n"
