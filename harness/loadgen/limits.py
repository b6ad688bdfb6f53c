"""Bounds on a run: how long one backend call and the whole run may take.

LoadGen runs until its minimum duration and query count are met, however slow the system
is: an impossible Server target (100,000 QPS on a model doing 15 samples/s) makes it issue
hundreds of thousands of queries and wait for every one of them, for hours. So before a
run the harness

* times the backend on one batch (after a warm-up call) and estimates how long the run
  will take from what LoadGen will issue; a run expected to exceed its limit is refused,
  saying what to set;
* gives LoadGen its own limits: ``max_duration_ms`` (performance runs stop issuing past the
  run limit) and, in Server, ``server_max_async_queries`` (the test ends early once more
  than ``OUTSTANDING_BUDGET_S`` seconds of queries at the target rate are outstanding:
  such a run cannot meet the 130 ms bound anyway, and a stopped run ends this way within a
  few queries);
* gives the SUT a per-call timeout (a call that never returns ends the run as a backend
  failure) and a deadline a little past the run limit.

Every figure is recorded in ``settings.json``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from common.errors import ConfigError
from harness.loadgen.scenarios import TABLE

OUTSTANDING_BUDGET_S = 2.0  # Server: seconds of queries at the target rate allowed in flight
MIN_OUTSTANDING = 8  # ... but never fewer queries than this
CALL_TIMEOUT_FLOOR_S = 30.0  # the per-call timeout is never shorter than this by default
CALL_TIMEOUT_FACTOR = 20.0  # default timeout: this many times the expected time of a call
RUN_LIMIT_FLOOR_S = 3600.0  # the default run limit is never shorter than an hour
RUN_LIMIT_FACTOR = 4.0  # ... nor than this many times LoadGen's minimum duration
DEADLINE_GRACE_S = 60.0  # the SUT stops a run this long after the run limit


@dataclasses.dataclass(frozen=True)
class RunLimits:
    """Resolved bounds (seconds; ``call_timeout_s`` None: calls are not timed out)."""

    call_timeout_s: float | None
    max_run_s: float
    server_max_async_queries: int | None
    expected_s_per_sample: float

    @property
    def deadline_s(self) -> float:
        return self.max_run_s + DEADLINE_GRACE_S

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "deadline_s": self.deadline_s}


def expected_s_per_sample(test_settings: Any, scenario: str) -> float:
    """Seconds per sample that the user.conf expects (target QPS or expected latency)."""
    entry = TABLE[scenario]
    expected = getattr(test_settings, entry.loadgen_expectation)
    if entry.expectation == "target_qps":
        return 1.0 / expected if expected > 0 else math.inf
    per_query = expected / 1e9
    samples = getattr(test_settings, entry.loadgen_samples_per_query) \
        if entry.loadgen_samples_per_query else 1
    return per_query / max(1, samples)


def resolve_limits(test_settings: Any, scenario: str, batch_size: int,
                   call_timeout_s: float | None = None,
                   max_run_s: float | None = None) -> RunLimits:
    """The run's limits: the given ones, or defaults from the user.conf's expectations.

    ``call_timeout_s`` 0 turns the per-call timeout off.
    """
    per_sample = expected_s_per_sample(test_settings, scenario)
    if call_timeout_s is None:
        expected_call = per_sample * batch_size
        call_timeout_s = max(CALL_TIMEOUT_FLOOR_S, CALL_TIMEOUT_FACTOR * expected_call) \
            if math.isfinite(expected_call) else CALL_TIMEOUT_FLOOR_S
    if max_run_s is None:
        max_run_s = max(RUN_LIMIT_FLOOR_S, RUN_LIMIT_FACTOR * test_settings.min_duration_ms / 1e3)
    max_async = None
    if TABLE[scenario].scheduled:
        max_async = max(MIN_OUTSTANDING,
                        math.ceil(OUTSTANDING_BUDGET_S * test_settings.server_target_qps))
    return RunLimits(call_timeout_s or None, float(max_run_s), max_async, per_sample)


def apply_limits(test_settings: Any, limits: RunLimits, mode: str) -> None:
    """Give LoadGen its own share of the limits (on the settings object, after FromConfig)."""
    if mode == "performance":
        test_settings.max_duration_ms = int(limits.max_run_s * 1000)
    if limits.server_max_async_queries is not None and mode == "performance":
        test_settings.server_max_async_queries = limits.server_max_async_queries


def expected_run_s(test_settings: Any, scenario: str, mode: str, qsl_size: int,
                   measured_s_per_sample: float) -> tuple[float, str, int]:
    """Seconds the run should take at the measured speed, what LoadGen will issue, and
    about how many samples that is (for the progress bar's total and ETA)."""
    entry = TABLE[scenario]
    min_duration = test_settings.min_duration_ms / 1e3
    min_queries = test_settings.min_query_count
    if mode == "accuracy":
        samples = qsl_size
        what = f"{samples} samples (accuracy mode)"
        if entry.scheduled:  # issued on the Server schedule even in accuracy mode
            return max(samples * measured_s_per_sample,
                       samples / max(test_settings.server_target_qps, 1e-9)), what, samples
        return samples * measured_s_per_sample, what, samples
    if entry.scheduled:  # issued on LoadGen's schedule: no faster than the target QPS
        qps = max(test_settings.server_target_qps, 1e-9)
        queries = max(min_queries, int(min_duration * qps))
        return max(min_duration, queries / qps, queries * measured_s_per_sample), \
            f"{queries} Server queries", queries
    if entry.expectation == "target_qps":  # one query of all the samples (Offline)
        samples = max(min_queries, int(1.1 * min_duration * test_settings.offline_expected_qps))
        return samples * measured_s_per_sample, f"{samples} {scenario} samples", samples
    per_query = getattr(test_settings, entry.loadgen_samples_per_query) \
        if entry.loadgen_samples_per_query else 1
    seconds = max(min_duration, min_queries * per_query * measured_s_per_sample)
    samples = int(seconds / max(measured_s_per_sample, 1e-9))
    return seconds, f"at least {min_queries} {scenario} queries over {min_duration:g} s", \
        samples


def check_run_time(estimate_s: float, what: str, limits: RunLimits, scenario: str,
                   measured_s_per_sample: float) -> None:
    """Refuse a run expected to outlast its limit, saying what to change."""
    if estimate_s <= limits.max_run_s:
        return
    rate = 1.0 / measured_s_per_sample if measured_s_per_sample > 0 else math.inf
    key = TABLE[scenario].expectation
    suggestion = (f"{rate:.3g}" if key == "target_qps"
                  else f"{measured_s_per_sample * 1e3:.3g}")
    raise ConfigError(
        f"this run would take about {duration_text(estimate_s)}, over its limit of "
        f"{duration_text(limits.max_run_s)}: LoadGen will issue {what} and the backend did "
        f"{rate:.3g} samples/s in a warm-up; set bert.{scenario}.{key} near {suggestion} in "
        "user.conf, or raise --max-run-minutes"
    )


def duration_text(seconds: float) -> str:
    """``45 s``, ``12 min``, ``1.5 h``."""
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"
