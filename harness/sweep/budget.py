"""A peak search's time budget: how long a Server probe takes, and whether the next still fits.

A probe at ``q`` QPS issues at least ``min_query_count`` queries over at least
``min_duration``, so its LoadGen part lasts ``max(min_duration, min_query_count / q)``
seconds (a short run: 10 s and LoadGen's early-stopping floor, 459 queries; 75 s at 6 QPS),
and the process around it (start, model load, warm-up, logs) adds a roughly fixed cost,
learnt from the probes that ran. Low rates cost the most, so the budget also caps how far
down a search can look. An overloaded probe ends early (the harness's outstanding-query
limit), so it costs less than this says, never more.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping
from typing import Any

from harness.loadgen.rulesets import DEFAULT, ruleset
from harness.loadgen.scenarios import TABLE

SHORT_MIN_DURATION_S = 10.0  # --short
# Before any probe has run: start, model load and warm-up of the demo model on a busy
# 2-core VM took 25 s around a 39 s LoadGen run.
DEFAULT_OVERHEAD_S = 30.0
MIN_OVERHEAD_S = 2.0


def probe_loadgen_s(settings: Mapping[str, Any], qps: float) -> float:
    """Seconds LoadGen's part of a Server probe at ``qps`` QPS lasts (``settings``: the
    point's, where ``min_duration_ms`` and ``min_query_count`` may be set)."""
    short = bool(settings.get("short"))
    rules = ruleset(DEFAULT)
    duration_ms = settings.get("min_duration_ms")
    duration_s = duration_ms / 1e3 if duration_ms is not None else (
        SHORT_MIN_DURATION_S if short else rules.min_duration_ms / 1e3)
    queries = settings.get("min_query_count")
    if queries is None:
        queries = TABLE["Server"].short_min_queries if short \
            else rules.min_query_count["Server"]
    return max(duration_s, queries / max(qps, 1e-9))


class Budget:
    """The time left to a search (``minutes`` from ``started``, a ``time.monotonic()``)."""

    def __init__(self, minutes: float, started: float) -> None:
        self.minutes = minutes
        self.deadline = started + minutes * 60.0
        self.overheads: list[float] = []

    @property
    def overhead_s(self) -> float:
        """Seconds a probe costs beyond LoadGen's part (the median of those measured)."""
        return statistics.median(self.overheads) if self.overheads else DEFAULT_OVERHEAD_S

    def learn(self, settings: Mapping[str, Any], qps: float, seconds: float,
              full: bool) -> None:
        """A probe took ``seconds`` in all; ``full``: it ran its whole length (VALID), so
        that its cost beyond LoadGen's part is known."""
        if full:
            self.overheads.append(max(MIN_OVERHEAD_S, seconds - probe_loadgen_s(settings, qps)))

    def left_s(self) -> float:
        return self.deadline - time.monotonic()

    def probe_s(self, settings: Mapping[str, Any], qps: float) -> float:
        """Seconds a probe at ``qps`` QPS is expected to take, all of it."""
        return self.overhead_s + probe_loadgen_s(settings, qps)

    def why_not(self, settings: Mapping[str, Any], qps: float) -> str | None:
        """None when a probe at ``qps`` QPS fits in the time left, else why not."""
        need, left = self.probe_s(settings, qps), self.left_s()
        if need <= left:
            return None
        return (f"{qps:.6g} QPS, which would take about {need:.0f} s with {max(left, 0):.0f} s "
                f"of the {self.minutes:g}-minute budget left ([peak] budget_minutes)")
