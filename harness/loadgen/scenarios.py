"""What differs per LoadGen scenario, in one table.

Every other module asks this table instead of comparing scenario names: which figure is the
scenario's metric, what LoadGen needs to size the test (an expected rate or an expected
latency), the fewest queries its early stopping can call VALID in a short run, how the SUT
batches, and whether LoadGen keeps issuing after the SUT stops.
"""

from __future__ import annotations

import dataclasses

from common.errors import ConfigError

MODES = ("performance", "accuracy")
# The expectations a user sets (user.conf, --target-qps, --target-latency-ms): the
# exclusive lower and inclusive upper bound, and the unit.
EXPECTATION_BOUNDS = {"target_qps": (0.0, 10_000_000.0, "samples/s"),
                      "target_latency": (0.0, 3_600_000.0, "ms")}


@dataclasses.dataclass(frozen=True)
class Scenario:
    """One LoadGen scenario as the harness uses it."""

    name: str
    # What sizes LoadGen's test: "target_qps" (Offline's expected rate, Server's schedule)
    # or "target_latency" (SingleStream's and MultiStream's expected latency, ms).
    expectation: str
    # The figure of merit (MLPerf's) and whether higher is better.
    metric: str
    metric_unit: str
    higher_is_better: bool
    # Short runs: the fewest queries LoadGen's early stopping can call VALID (Server:
    # 0.99^459 < 0.01; MultiStream, LoadGen 6.0.17's own figure: "Need to process at least
    # 662 queries for early stopping"; SingleStream's p90 needs 64, which 10 s gives).
    short_min_queries: int
    # Samples per backend call when none is given: Offline batches of 8 similar-length
    # samples ran the demo model at 1.4x batch 1 (ORT, variable length, a 2-core VM);
    # MultiStream's 8 samples of a query, of any lengths, go one at a time, each at its own
    # length (a batch of 8 padded to the query's longest ran at 12 samples/s against 22 on
    # one core of a busy 2-core VM); Server and SingleStream answer each query as it comes.
    default_batch: int
    # LoadGen issues on its own schedule whatever the SUT does: after a stop the SUT holds
    # queries until LoadGen's outstanding-query limit ends the test (harness.loadgen.sut).
    scheduled: bool = False
    # A batch that is not full may wait for more queries (a share of the latency bound).
    waits_for_batch: bool = False
    # A self-timed device's own throughput batch (TimedDevice.preferred_batch_size) replaces
    # the default batch: Offline only (MultiStream's batch is its query of 8; Server and
    # SingleStream answer as queries come).
    device_batch: bool = False
    # LoadGen's TestSettings attribute holding the expectation (QPS, or latency in ns), and
    # the one holding a query's sample count (None: one sample a query, or all: Offline).
    loadgen_expectation: str = ""
    loadgen_samples_per_query: str | None = None
    # Samples in one query (LoadGen's default for MultiStream: 8), for sizing its latency.
    samples_per_query: int = 1

    @property
    def expectation_unit(self) -> str:
        return "samples/s" if self.expectation == "target_qps" else "ms"


TABLE: dict[str, Scenario] = {
    "SingleStream": Scenario("SingleStream", "target_latency", "90th percentile latency",
                             "ms", False, short_min_queries=1, default_batch=1,
                             loadgen_expectation="single_stream_expected_latency_ns"),
    "MultiStream": Scenario("MultiStream", "target_latency", "99th percentile query latency",
                            "ms", False, short_min_queries=662, default_batch=1,
                            loadgen_expectation="multi_stream_expected_latency_ns",
                            loadgen_samples_per_query="multi_stream_samples_per_query",
                            samples_per_query=8),
    "Server": Scenario("Server", "target_qps", "scheduled samples per second", "samples/s",
                       True, short_min_queries=459, default_batch=1, scheduled=True,
                       waits_for_batch=True, loadgen_expectation="server_target_qps"),
    "Offline": Scenario("Offline", "target_qps", "samples per second", "samples/s", True,
                        short_min_queries=1, default_batch=8, device_batch=True,
                        loadgen_expectation="offline_expected_qps"),
}
SCENARIOS = tuple(TABLE)


def scenario(name: str) -> Scenario:
    """The table's entry for ``name``, or ConfigError listing the scenarios."""
    try:
        return TABLE[name]
    except KeyError:
        raise ConfigError(f"unknown scenario {name!r}; choose one of "
                          f"{', '.join(SCENARIOS)}") from None
