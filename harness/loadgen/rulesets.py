"""The MLPerf Inference rounds' BERT rules as data: one :class:`RuleSet` per round.

Every figure is that of the round's official documents in mlcommons/inference: ``mlperf.conf``
(tag ``v1.0.1``, branch ``r1.1``), the submission checker's ``MODEL_CONFIG`` and constants
(``tools/submission/submission-checker.py``), and the compliance tests
(``compliance/nvidia/TEST01``, ``TEST05``: their ``audit.config`` and ``verify_*.py``). The
runner, the tree builder, the accuracy report and the checker all read a round from here;
adding a round is one more ``RuleSet`` in :data:`RULESETS`.
"""

from __future__ import annotations

import dataclasses
import difflib
from types import MappingProxyType
from typing import Any

from common.errors import ConfigError
from squad.accuracy import REFERENCE_F1_FP32


@dataclasses.dataclass(frozen=True)
class Seeds:
    """LoadGen's three RNG seeds."""

    qsl_rng_seed: int
    sample_index_rng_seed: int
    schedule_rng_seed: int

    def to_json(self) -> dict[str, int]:
        return dataclasses.asdict(self)


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


# Required and optional scenarios per system type and benchmark.
ScenarioTable = dict[str, dict[str, tuple[tuple[str, ...], tuple[str, ...]]]]


@dataclasses.dataclass(frozen=True)
class RuleSet:
    """One MLPerf Inference round's rules for BERT (bert-99 and bert-99.9 share them)."""

    name: str  # "v1.0"
    seeds: Seeds
    scenarios: tuple[str, ...]
    min_duration_ms: int
    # Offline has one query: LoadGen reads its min_query_count as the least samples in it.
    min_query_count: dict[str, int]
    latency_percentile: dict[str, int]
    server_latency_ms: dict[str, int]  # per benchmark: the Server p99 bound (ms)
    performance_sample_count: int
    reference_f1: float  # fp32 BERT-Large on SQuAD v1.1 dev (percent)
    benchmarks: dict[str, float]  # name -> share of reference_f1 to reach
    # a benchmark a system type does not list is not one it may submit
    system_types: ScenarioTable
    audits: dict[str, Audit]
    not_required_audits: tuple[str, ...]  # the round's other tests, not run for BERT
    # SingleStream: a reference p90 at most this (ns) gets single_stream_relaxed_tolerance
    single_stream_relaxed_ns: int
    single_stream_relaxed_tolerance: float
    # TEST01 when responses differ between modes: F1 of the logged samples within this share
    # of the accuracy run's F1 on the same samples (TEST01 README, Part III)
    test01_accuracy_tolerance: dict[str, float]
    max_accuracy_log_bytes: int  # a submitted mlperf_log_accuracy.json is at most this
    truncate_keep_chars: int  # ... keeping this much of its start and of its end
    dev_set_features: int  # an accuracy run for a submission covers all of them
    system_fields: tuple[str, ...]  # systems/<system>.json: required fields
    system_optional_fields: tuple[str, ...]  # ... known but not required (power)
    system_statuses: tuple[str, ...]
    required_measurement_files: tuple[str, ...]
    implementation_fields: tuple[str, ...]  # measurements/.../<system>_<impl>_<scenario>.json

    def accuracy_target(self, benchmark: str) -> float:
        """The F1 (percent) a ``benchmark`` accuracy run must reach, unrounded."""
        return self.reference_f1 * self.benchmarks[benchmark]

    def server_latency_ns(self, benchmark: str) -> int:
        return self.server_latency_ms[benchmark] * 1_000_000

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---- what the rounds share -----------------------------------------------------------------

_SYSTEM_TYPES: ScenarioTable = {
    "datacenter": {"bert-99": (("Offline",), ("Server",)),
                   "bert-99.9": (("Offline",), ("Server",))},
    "edge": {"bert-99": (("SingleStream", "Offline"), ())},
    "datacenter,edge": {"bert-99": (("SingleStream", "Offline"), ("Server",)),
                        "bert-99.9": (("Offline",), ("Server",))},
}
_SYSTEM_TYPES["edge,datacenter"] = _SYSTEM_TYPES["datacenter,edge"]

# SYSTEM_DESC_REQUIRED_FIELDS + ..._SINCE_V1 of the v1.0.1 and r1.1 checkers, in the order
# MLPerf's published descriptions use
_SYSTEM_FIELDS = (
    "division", "submitter", "status", "system_name", "system_type", "number_of_nodes",
    "host_processor_model_name", "host_processors_per_node", "host_processor_core_count",
    "host_processor_frequency", "host_processor_caches", "host_processor_interconnect",
    "host_memory_capacity", "host_memory_configuration", "host_storage_type",
    "host_storage_capacity", "host_networking", "host_networking_topology",
    "accelerators_per_node", "accelerator_model_name", "accelerator_frequency",
    "accelerator_host_interconnect", "accelerator_interconnect",
    "accelerator_interconnect_topology", "accelerator_memory_capacity",
    "accelerator_memory_configuration", "accelerator_on-chip_memories", "cooling",
    "hw_notes", "framework", "operating_system", "other_software_stack", "sw_notes",
)
_POWER_FIELDS = (
    "power_management", "filesystem", "boot_firmware_version", "management_firmware_version",
    "other_hardware", "number_of_type_nics_installed", "nics_enabled_firmware",
    "nics_enabled_os", "nics_enabled_connected", "network_speed_mbit",
    "power_supply_quantity_and_rating_watts", "power_supply_details", "disk_drives",
    "disk_controllers",
)

TEST05_SEEDS = Seeds(313588358309856706, 471397156132239067, 413914573387865862)
_AUDITS = {
    "TEST01": Audit("TEST01", "accuracy in performance mode (a sample of the responses is "
                    "logged and compared with the accuracy run's)", 2,
                    accuracy_log_rng_seed=720381539243781796,
                    accuracy_log_sampling_target=4096, tolerance=0.10),
    "TEST05": Audit("TEST05", "performance with other RNG seeds", 2, seeds=TEST05_SEEDS,
                    tolerance=0.05),
}

_COMMON: dict[str, Any] = dict(
    scenarios=("SingleStream", "Server", "Offline"),  # MultiStream is no BERT scenario
    min_duration_ms=600_000,
    min_query_count={"SingleStream": 1024, "Server": 270_336, "Offline": 24_576},
    latency_percentile={"SingleStream": 90, "Server": 99, "Offline": 90},
    server_latency_ms={"bert-99": 130, "bert-99.9": 130},
    performance_sample_count=10833,
    reference_f1=REFERENCE_F1_FP32,
    benchmarks={"bert-99": 0.99, "bert-99.9": 0.999},
    system_types=_SYSTEM_TYPES,
    audits=_AUDITS,
    not_required_audits=("TEST04-A", "TEST04-B"),
    single_stream_relaxed_ns=200_000,
    single_stream_relaxed_tolerance=0.20,
    test01_accuracy_tolerance={"bert-99": 0.01, "bert-99.9": 0.001},
    max_accuracy_log_bytes=10 * 1024,
    truncate_keep_chars=4096,
    dev_set_features=10833,
    system_fields=_SYSTEM_FIELDS,
    system_optional_fields=_POWER_FIELDS,
    system_statuses=("available", "preview", "rdi"),
    required_measurement_files=("mlperf.conf", "user.conf", "README.md"),
    implementation_fields=("input_data_types", "retraining", "starting_weights_filename",
                           "weight_data_types", "weight_transformations"),
)

# ---- the rounds --------------------------------------------------------------------------

# mlperf.conf at v1.0.1; MODEL_CONFIG["v1.0"] of the v1.0.1 checker
V1_0 = RuleSet(name="v1.0",
               seeds=Seeds(7322528924094909334, 1570999273408051088, 3507442325620259414),
               **_COMMON)
# mlperf.conf on r1.1; MODEL_CONFIG["v1.1"] of the r1.1 checker: new seeds, the rest as v1.0
V1_1 = RuleSet(name="v1.1",
               seeds=Seeds(1624344308455410291, 517984244576520566, 10051496985653635065),
               **_COMMON)

LOADGEN = "loadgen"  # LoadGen 6's built-in mlperf.conf, as it is: no RuleSet
RULESETS = MappingProxyType({rules.name: rules for rules in (V1_0, V1_1)})
DEFAULT = V1_0.name


def ruleset(name: str) -> RuleSet:
    """The round called ``name``; an unknown name is a ConfigError that suggests one."""
    if name in RULESETS:
        return RULESETS[name]
    close = difflib.get_close_matches(name, [*RULESETS, LOADGEN], n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    raise ConfigError(f"unknown rules {name!r} (known: {', '.join([LOADGEN, *RULESETS])})"
                      f"{hint}")
