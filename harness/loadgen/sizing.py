"""A test sized to the machine it runs on, and the next step after one that was not.

LoadGen must be told what to expect: Offline issues ``target_qps`` x the minimum duration
samples (a faster system ends too soon: INVALID), Server issues queries at ``target_qps``
(more than the system serves: INVALID), SingleStream and MultiStream generate queries for
twice the minimum duration at ``target_latency`` (a faster system runs out of them). A
figure written for a quiet machine is wrong on a busy one, so when neither the command line
nor the user's user.conf (nor a self-timed device) states the expectation, the run takes it
from its own warm-up, with a margin on the side that keeps the test VALID:

* Offline: twice the measured rate (errs high: the test lasts at least its minimum, even
  when the one timed warm-up call was slow);
* Server: the highest rate at which a test of its length is likely to keep every query the
  early stopping counts under the latency bound (:func:`size_server`: a queueing model fed
  the warm-up's service time at each sequence length), and never above half the measured
  rate; a backend timed at one length only gets half the measured rate;
* SingleStream, MultiStream: half the measured latency of a query (errs low: LoadGen
  generates enough queries).

After a test, :func:`next_step` turns an INVALID verdict into one ``next:`` line saying
which setting to change, to what, computed from what was measured.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from harness.loadgen.scenarios import EXPECTATION_BOUNDS, TABLE

# Offline errs high, the others low (see the module doc); caps keep LoadGen's pre-generated
# queries in memory bounds on a backend that answers at once (the null backend).
MARGIN = {"Offline": 2.0, "Server": 0.5, "SingleStream": 0.5, "MultiStream": 0.5}
MAX_SIZED_QPS = {"Offline": 1_000_000.0, "Server": 200.0}
MIN_SIZED_LATENCY_MS = 0.05
LOADGEN_MODEL = "bert"
# The harness's own cost per backend call (queues, logits assembly, LoadGen's completion):
# the null backend, which computes nothing, reaches ~160-190k samples/s at batch 8 on a
# quiet 2-core VM, ~45 us a call, of which ~25 us is the harness. Added to a warm-up's call
# time, so that a backend that answers at once is not expected to run faster than the
# harness can carry it (erring high: Offline's test then lasts longer, never too short).
ADAPTER_CALL_S = 25e-6


def effective_s_per_sample(s_per_call: float, batch: int) -> float:
    """Seconds per sample through the whole harness, from a warm-up's backend call."""
    return (s_per_call + ADAPTER_CALL_S) / max(1, batch)


# Server: the model's service times are the warm-up's, which a busy machine stretches; the
# chosen rate is the highest whose test is this likely to pass, counting late queries as
# independent (they bunch behind a slow one, so for a short test, which allows none, this
# errs low); below the lowest rate searched the test would last too long to be worth it.
SERVICE_MARGIN = 1.2
PASS_PROBABILITY = 0.9
MAX_SHORT_SERVER_S = 150.0
SIMULATED_QUERIES = 20_000
FASTER = ("a configuration faster per sample (make tune SCENARIO=Server finds one) or a "
          "machine with more idle cores")


@dataclasses.dataclass(frozen=True)
class ServerTest:
    """What LoadGen will hold a Server test to: the latency bound, its percentile, and the
    fewest queries and seconds it issues."""

    bound_s: float
    percentile: float
    min_queries: int
    min_duration_s: float

    def queries(self, rate: float) -> int:
        return max(self.min_queries, math.ceil(self.min_duration_s * rate))


@dataclasses.dataclass(frozen=True)
class ServerPrediction:
    """The rate :func:`size_server` chose and what the model expects of it."""

    rate: float
    queries: int
    over_latency_share: float  # of queries, at this rate
    pass_probability: float
    feasible: bool  # whether any rate searched reaches PASS_PROBABILITY
    slowest_ms: float  # the warm-up's slowest sample (the longest)
    bound_ms: float
    allowed: int  # queries past the bound the test's early stopping accepts (-1: too few)

    def reason(self) -> str:
        """Why no rate is likely to be VALID, in one clause."""
        return (f"its longest samples took {self.slowest_ms:.0f} ms of the {self.bound_ms:g} ms "
                f"latency bound in the warm-up, and a queueing model of this machine puts "
                f"{self.over_latency_share:.1%} of queries past the bound at {self.rate:.3g} "
                f"QPS (a {self.queries}-query test allows {max(0, self.allowed) or 'none'})")


def allowed_over_latency(queries: int, percentile: float, confidence: float = 0.99) -> int:
    """The most queries over the latency bound that LoadGen's early stopping accepts in a
    Server test of ``queries`` (-1: none, too few queries): the largest ``t`` with
    P(Binomial(queries, 1 - percentile) <= t) <= 1 - confidence (loadgen/results.cc)."""
    p = 1.0 - percentile
    log_pmf = queries * math.log1p(-p)
    cdf = math.exp(log_pmf)
    if cdf > 1.0 - confidence:
        return -1
    t = 0
    while t < queries:
        log_pmf += math.log((queries - t) / (t + 1)) + math.log(p / (1.0 - p))
        if cdf + math.exp(log_pmf) > 1.0 - confidence:
            return t
        cdf += math.exp(log_pmf)
        t += 1
    return t


def _poisson_cdf(k: int, mean: float) -> float:
    if k < 0:
        return 0.0
    if mean > 200:  # normal approximation, with continuity correction
        return 0.5 * math.erfc(-(k + 0.5 - mean) / math.sqrt(2 * mean))
    term = total = math.exp(-mean)
    for i in range(1, k + 1):
        term *= mean / i
        total += term
    return min(1.0, total)


def service_times(profile: Sequence[tuple[int, float]], lengths: np.ndarray) -> np.ndarray:
    """Seconds a backend call takes for each sample, from a warm-up's (length, seconds)
    points (interpolated; shorter than the first point costs what it does)."""
    points = sorted(profile)
    xs = np.array([p[0] for p in points], dtype=float)
    ys = np.array([p[1] for p in points], dtype=float)
    return np.interp(lengths.astype(float), xs, ys) + ADAPTER_CALL_S


def over_latency_share(service_s: np.ndarray, rate: float, bound_s: float,
                       seed: int = 0) -> float:
    """The share of queries answered past ``bound_s`` when Poisson arrivals at ``rate`` meet
    one server (first come, first served) whose service times are drawn from ``service_s``
    (Lindley's recursion, as a running minimum; the same draws at every rate)."""
    rng = np.random.default_rng(seed)
    service = rng.choice(service_s, SIMULATED_QUERIES)
    gaps = rng.exponential(1.0, SIMULATED_QUERIES)[1:] / rate
    walk = np.concatenate([[0.0], np.cumsum(service[:-1] - gaps)])
    waiting = walk - np.minimum.accumulate(walk)
    return float(np.mean(waiting + service > bound_s))


def size_server(service_s: np.ndarray, test: ServerTest, rate_cap: float,
                short_run: bool) -> ServerPrediction:
    """The highest Server rate (on a 5% grid below ``rate_cap``) whose test is predicted to
    pass with probability PASS_PROBABILITY; when none does down to the lowest rate worth a
    test, that lowest rate, marked not feasible."""
    service = np.asarray(service_s, dtype=float) * SERVICE_MARGIN
    floor = rate_cap / 100.0
    if short_run:  # a short test lasting minutes is not short
        floor = max(floor, test.min_queries / MAX_SHORT_SERVER_S)
    floor = min(floor, rate_cap)

    def predict(rate: float) -> ServerPrediction:
        share = over_latency_share(service, rate, test.bound_s)
        queries = test.queries(rate)
        allowed = allowed_over_latency(queries, test.percentile)
        chance = _poisson_cdf(allowed, share * queries)
        return ServerPrediction(rate, queries, share, chance, chance >= PASS_PROBABILITY,
                                float(np.max(service_s) * 1e3), test.bound_s * 1e3, allowed)

    rate = rate_cap
    while rate > floor:
        guess = predict(rate)
        if guess.feasible:
            return guess
        rate *= 0.95
    return predict(floor)


@dataclasses.dataclass(frozen=True)
class Sizing:
    """The expectation a run took from its warm-up (recorded in settings.json)."""

    key: str  # target_qps or target_latency
    value: float  # samples/s or ms
    measured_samples_per_s: float
    margin: float
    server: ServerPrediction | None = None

    def line(self, scenario: str) -> str:
        return f"{LOADGEN_MODEL}.{scenario}.{self.key} = {self.value:.6g}"

    def to_json(self) -> dict[str, Any]:
        unit = EXPECTATION_BOUNDS[self.key][2]
        record = {**dataclasses.asdict(self), "unit": unit, "source": "from warm-up"}
        if self.server is None:
            record.pop("server")
        return record


def conf_sets(text: str, scenario: str, key: str) -> bool:
    """Whether a user.conf text sets ``key`` for ``scenario`` (``bert`` or ``*``, the
    scenario or ``*``), on a line LoadGen reads."""
    pattern = re.compile(rf"^\s*(bert|\*)\.({re.escape(scenario)}|\*)\.{re.escape(key)}\s*=",
                         re.MULTILINE)
    return bool(pattern.search(text))


def conf_value(text: str, scenario: str, key: str) -> float | None:
    """The value of ``key`` for ``scenario`` in a user.conf text, as LoadGen picks it: the
    most specific line (``bert.Server`` over ``bert.*`` over ``*.Server`` over ``*.*``),
    the last of equals; None when no line sets it."""
    best: tuple[int, float] | None = None
    pattern = re.compile(rf"^\s*(bert|\*)\.({re.escape(scenario)}|\*)\.{re.escape(key)}"
                         r"\s*=\s*([^#\s]+)", re.MULTILINE)
    for match in pattern.finditer(text):
        rank = 2 * (match.group(1) == "bert") + (match.group(2) == scenario)
        try:
            value = float(match.group(3))
        except ValueError:
            continue
        if best is None or rank >= best[0]:
            best = (rank, value)
    return None if best is None else best[1]


def server_test(conf_text: str) -> ServerTest:
    """The Server test a resolved user.conf asks for; what it leaves unset is LoadGen 6's
    built-in mlperf.conf, whose BERT Server figures are the v1.1 round's."""
    from harness.loadgen.rulesets import V1_1

    defaults = ServerTest(V1_1.server_latency_ms["bert-99"] / 1e3,
                          V1_1.latency_percentile["Server"] / 100,
                          V1_1.min_query_count["Server"], V1_1.min_duration_ms / 1e3)

    def get(key: str, default: float) -> float:
        value = conf_value(conf_text, "Server", key)
        return default if value is None else value

    return ServerTest(
        bound_s=get("target_latency", defaults.bound_s * 1e3) / 1e3,
        percentile=get("target_latency_percentile", defaults.percentile * 100) / 100,
        min_queries=int(get("min_query_count", defaults.min_queries)),
        min_duration_s=get("min_duration", defaults.min_duration_s * 1e3) / 1e3,
    )


def size_from_warm_up(scenario: str, s_per_sample: float,
                      server: tuple[np.ndarray, ServerTest, bool] | None = None) -> Sizing:
    """The expectation of ``scenario`` from a warm-up's seconds per sample; for Server,
    ``server`` (each sample's service time, the test, whether it is a short run) lets the
    queueing model choose the rate."""
    entry = TABLE[scenario]
    rate = 1.0 / max(s_per_sample, 1e-9)
    margin = MARGIN[scenario]
    prediction = None
    if entry.expectation == "target_qps":
        value = min(rate * margin, MAX_SIZED_QPS[scenario])
        if server is not None and entry.scheduled:
            prediction = size_server(server[0], server[1], value, server[2])
            value = prediction.rate
    else:
        query_ms = s_per_sample * entry.samples_per_query * 1e3
        value = max(query_ms * margin, MIN_SIZED_LATENCY_MS)
    low, high, _ = EXPECTATION_BOUNDS[entry.expectation]
    value = min(max(value, low + 1e-6), high)
    value = float(f"{value:.4g}")
    if prediction is not None:
        prediction = dataclasses.replace(prediction, rate=value)
    return Sizing(entry.expectation, value, rate, margin, prediction)


def next_step(result: Any, scenario: str, expectation: float | None,
              unlikely: str | None = None) -> str | None:
    """One line for an INVALID (or failing) test: which setting to change, to what. ``result``
    is the test's LoadGenResult; ``expectation``: the target QPS or latency (ms) it had;
    ``unlikely``: why the warm-up predicted that no Server rate would be VALID."""
    if result.valid is not False and not result.errors:
        return None
    entry = TABLE[scenario]
    measured = result.samples_per_second
    if entry.scheduled:
        served = result.raw.get("result_completed_samples_per_sec") or measured
        if unlikely:
            return f"{FASTER}: {unlikely}"
        if served and expectation and float(served) >= 0.95 * expectation:
            target = float(f"{max(expectation * 0.5, 0.001):.3g}")
            return (f"--target-qps {target:g} (the system kept up with the {expectation:g} QPS "
                    "asked, but queries ended past the latency bound; half the rate leaves "
                    "room for its slowest samples), or find the highest VALID rate with a "
                    "sweep: make sweep SWEEP=sweeps/server-ort.toml ARGS=--find-peak")
        if served:
            target = float(f"{max(float(served) * 0.7, 0.001):.3g}")
            return (f"--target-qps {target:g} (the system served {float(served):.3g} samples/s "
                    f"against {expectation or 0:g} asked; 70% of it leaves room for the "
                    "latency bound), or find the highest VALID rate with a sweep: make sweep "
                    "SWEEP=sweeps/server-ort.toml ARGS=--find-peak")
        return "--target-qps lower, or make sweep SWEEP=sweeps/server-ort.toml ARGS=--find-peak"
    if entry.expectation == "target_qps":
        if measured:
            suggestion = float(f"{measured * MARGIN[scenario]:.3g}")
            return (f"--target-qps {suggestion:g} (the test ended too soon at {measured:.3g} "
                    "samples/s; Offline errs high)")
        return "--target-qps higher (the test ended too soon)"
    latency_ns = result.query_latencies_ns.get("50.00") or result.latencies_ns.get("50.00")
    if latency_ns:
        query_ms = latency_ns / 1e6
        suggestion = float(f"{max(query_ms * 0.5, MIN_SIZED_LATENCY_MS):.3g}")
        return (f"--target-latency-ms {suggestion:g} (half the measured latency of a query: "
                "LoadGen then generates enough queries)")
    return "--target-latency-ms lower"
