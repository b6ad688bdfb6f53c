"""``python -m harness tune``: its flags, its checks at the edge, and the run of it."""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import sys
import time
from pathlib import Path

from common.errors import ConfigError
from common.workspace import workspace
from harness.config import add_arguments, config_from_args
from harness.loadgen import rules as run_rules
from harness.loadgen.scenarios import TABLE
from harness.tune.candidates import Candidate, build_candidates, cpu_flags
from harness.tune.gate import AccuracyGate, GateScore
from harness.tune.report import Row, pareto_front, table, write_outcome
from harness.tune.server import peak_qps
from harness.tune.speed import (
    ChildRunner,
    Race,
    child_data_args,
    loadgen_accuracy,
    median_ratio,
    ratios,
)
from models.catalog import CATALOG, DEFAULT_MODEL
from squad.data import DataConfig, prepare_data

HELD_OUT_QUESTIONS = 2804  # the demo model's held-out questions (it was trained on the rest)
MAX_BUDGET_MINUTES = 10_080.0  # a week
GATE_SHARE = 0.6  # the gate may start a new arithmetic only in this share of the budget
SCENARIOS = ("Offline", "Server")
# Server: the Offline race ends here, the two peak searches have the rest (a search at the
# fp32 default's few QPS takes 6 probes of 1-2 minutes each on a 2-core VM)
SERVER_RACE_SHARE = 0.4


def budget_minutes(text: str) -> float:
    """``--budget-minutes``: a finite number of minutes, above 0, at most a week."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not 0 < value <= MAX_BUDGET_MINUTES:
        raise ConfigError(f"--budget-minutes: expected minutes above 0 and at most "
                          f"{MAX_BUDGET_MINUTES:g}, got {text!r}")
    return value


def target_share(text: str) -> tuple[str, float]:
    """``--target``: bert-99, bert-99.9, or a percentage (``99%`` or ``99``) of the fp32 F1;
    returns ``(name, share 0-1)``."""
    benchmarks = run_rules.ruleset(run_rules.V1_0).benchmarks
    if text in benchmarks:
        return text, benchmarks[text]
    try:
        value = float(text.strip().removesuffix("%"))
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not 0 < value <= 100:
        raise ConfigError(
            f"--target: expected {' or '.join(benchmarks)}, or a percentage of the fp32 F1 "
            f"above 0 and at most 100 (e.g. 99%), got {text!r}")
    return f"{value:g}%", value / 100


def add_parser(sub) -> None:
    """The ``tune`` subcommand."""
    text = ("find the fastest configuration that keeps an accuracy target: gate every "
            "candidate's F1, race the survivors against the fp32 default, write tuned.toml")
    parser = sub.add_parser("tune", help=text, description=text)
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help="catalog name or a model's path (default: %(default)s)")
    parser.add_argument("--scenario", choices=SCENARIOS, default="Offline",
                        help="Offline: samples/s of short runs; Server: then the peak VALID "
                        "QPS of the winner and of the fp32 default (default: %(default)s)")
    parser.add_argument("--target", default="bert-99", metavar="TARGET",
                        help="bert-99 or bert-99.9 (99%% or 99.9%% of the reference F1: "
                        "MLPerf's 90.874 for its model, else the model's own fp32 F1 on the "
                        "gate's questions), or a percentage such as 98.5%% (default: bert-99)")
    parser.add_argument("--budget-minutes", default="30",
                        metavar="MINUTES", help="wall time for the whole tune, gate included "
                        "(default: %(default)s)")
    parser.add_argument("--backends", default="onnxruntime,pytorch,ray",
                        help="comma-separated backends to draw candidates from "
                        "(default: %(default)s; those not installed are skipped, with why)")
    parser.add_argument("--results-dir", type=Path, default=None,
                        help="default: results/ in the workspace (tune writes results/tune/"
                        "<model>/<scenario>/)")
    parser.add_argument("--model-store", type=Path, default=None,
                        help="default: models/store in the workspace")
    add_arguments(parser.add_argument_group("data (--max-examples: the gate's questions, "
                                            f"default {HELD_OUT_QUESTIONS} for a model that is "
                                            "not MLPerf's, else every question)"), DataConfig)


def _gate_line(c: Candidate, score: GateScore) -> str:
    how = "cached" if score.cached else f"{score.seconds:.0f} s"
    what = " ".join(str(part) for part in c.numerics if part)
    return (f"  gate {what}: F1 {score.f1:.2f}"
            f", EM {score.exact_match:.2f} ({how}, {score.samples_per_second:.1f} features/s)")


def cmd_tune(args: argparse.Namespace) -> int:
    """Run ``tune``; exit 0 with a result, 130 after Ctrl-C (what was measured is kept)."""
    started = time.monotonic()
    args.budget_minutes = budget_minutes(str(args.budget_minutes))
    name, share = target_share(str(args.target))
    deadline = started + args.budget_minutes * 60
    spec = CATALOG.get(args.model)
    if spec is None and not Path(args.model).exists():
        raise ConfigError(f"--model: expected a catalog model ({', '.join(CATALOG)}) or a "
                          f"model's path, got {args.model!r}")
    if spec is None:  # a model given by path: its own fp32 F1 is the reference
        args.model = str(Path(args.model).expanduser().absolute())
    mlperf = bool(spec and spec.mlperf)
    backends = tuple(b for b in args.backends.split(",") if b)
    data_config = config_from_args(args, DataConfig)
    if data_config.max_examples is None and not mlperf:
        data_config = dataclasses.replace(data_config, max_examples=HELD_OUT_QUESTIONS)
    results_dir = args.results_dir or workspace().results
    store = args.model_store or workspace().model_store
    folder = Path(results_dir) / "tune" / Path(args.model).name / args.scenario
    default_batch = TABLE["Offline"].default_batch
    candidates, skipped = build_candidates(args.model, default_batch, cpu_flags(),
                                           backends=backends, derived=spec is not None)
    if not candidates:
        raise ConfigError("no candidates: " + "; ".join(f"{s.what}: {s.reason}" for s in skipped))
    for s in skipped:
        print(f"skipped {s.what}: {s.reason}")
    baseline = candidates[0]
    print(f"tune {args.model} {args.scenario}, target {name}, budget "
          f"{args.budget_minutes:g} min: {len(candidates)} candidates", flush=True)
    data = prepare_data(data_config, progress=False)
    extra_args = child_data_args(args, store)

    def loadgen_score(c: Candidate) -> GateScore:
        got = loadgen_accuracy(c, folder / "gate" / c.id, extra_args, data_config.max_examples)
        return GateScore(got["f1"], got["exact_match"], data.features.num_examples,
                         len(data.features) / got["seconds"], got["seconds"])

    gate = AccuracyGate(data, data_config, store, Path(results_dir) / "tune" / "gate-cache.json",
                        loadgen_score=loadgen_score)
    scores: dict[tuple, GateScore] = {}
    notes: dict[str, str] = {}
    rows: list[Row] = []
    measurements: list = []
    interrupted = False
    race: Race | None = None
    target_f1: float | None = None
    race_end = deadline if args.scenario == "Offline" else started + SERVER_RACE_SHARE * (
        deadline - started)  # Server: the rest is for the two peak searches
    try:
        for c in candidates:
            if c.numerics in scores or c.numerics in notes:
                continue
            late = time.monotonic() > started + GATE_SHARE * (deadline - started)
            if c is not baseline and late and gate.cached(c) is None:
                notes[c.numerics] = "the gate's share of the budget was spent"
                continue
            scores[c.numerics] = gate.score(c)
            print(_gate_line(c, scores[c.numerics]), flush=True)
        reference = run_rules.REFERENCE_F1 if mlperf else scores[baseline.numerics].f1
        target_f1 = reference * share
        print(f"F1 target {target_f1:.2f} ({name} of {reference:.2f}"
              f"{', the MLPerf reference' if mlperf else ', its fp32 default'})", flush=True)
        passed = [c for c in candidates[1:] if c.numerics in scores
                  and scores[c.numerics].f1 >= target_f1]
        passed.sort(key=lambda c: -scores[c.numerics].samples_per_second)
        race = Race(baseline, passed, ChildRunner("Offline", extra_args),
                    folder / "runs", race_end, budget_s=deadline - started,
                    started=started)
        print(f"speed: {len(passed)} candidates race against the fp32 default "
              "(short Offline runs, successive halving)", flush=True)
        race.run()
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted: keeping what was measured", file=sys.stderr)
    if race is not None:
        measurements = race.measurements
    base_rates = [m.samples_per_second for m in measurements if m.baseline
                  and m.samples_per_second]
    base_rate = statistics.median(base_rates) if base_rates else None
    got = ratios(measurements)
    for c in candidates:
        score = scores.get(c.numerics)
        f1 = score.f1 if score else None
        ratio = 1.0 if c is baseline and base_rate else median_ratio(measurements, c.label)
        rate = ratio * base_rate if ratio and base_rate else None
        if c is baseline:
            status, note = "baseline", ""
        elif score is None:
            status, note = "not gated", notes.get(c.numerics, "")
        elif target_f1 is not None and f1 < target_f1:
            status, note = "below target", ""
        elif race is not None and c.label in race.eliminated:
            status, note = "eliminated", race.eliminated[c.label]
        elif c.label in got:
            status, note = "raced", ""
        else:
            status, note = "not raced", race.stopped if race else ""
        runs = len(got.get(c.label, [])) if c is not baseline else len(base_rates)
        rows.append(Row(c.label, f1, status, ratio, rate, runs, note, c.settings(args.scenario)))
    winner = _winner(rows)
    if winner is not None:
        rows = [dataclasses.replace(r, status="winner") if r is winner else r for r in rows]
        winner = next(r for r in rows if r.status == "winner")
    extra: dict = {"measurements": [m.to_json() for m in measurements],
                   "budget_minutes": args.budget_minutes, "interrupted": interrupted,
                   "wall_s": round(time.monotonic() - started, 1)}
    summary = _summary(args, winner, base_rate, target_f1, started, race, interrupted)
    if args.scenario == "Server" and winner is not None and not interrupted:
        starts = {"baseline": 0.7 * (base_rate or 10.0),
                  "winner": 0.7 * (winner.samples_per_second or 10.0)}
        # the fp32 default of a Server run: its own default batch (1), not Offline's
        server_default = dataclasses.replace(baseline, batch_size=TABLE["Server"].default_batch)
        try:
            server = peak_qps(server_default, _candidate_of(candidates, winner),
                              ChildRunner("Server", child_data_args(args, store)), folder,
                              deadline, starts)
            extra["server"] = server
            summary.append(server["text"])
        except KeyboardInterrupt:
            interrupted = extra["interrupted"] = True
            summary.append("Server peak search interrupted (its probes are in server/)")
    paths = write_outcome(folder, f"tune {args.model} {args.scenario} ({name})", summary,
                          rows, winner, target_f1, extra)
    print(table(rows), end="")
    front = pareto_front(rows)
    print("Pareto front (samples/s against F1): " + "; ".join(
        f"{r.label}: F1 {r.f1:.2f}, {r.samples_per_second:.2f} samples/s" for r in front))
    print("\n".join(summary))
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 130 if interrupted else 0


def _candidate_of(candidates: list[Candidate], row: Row) -> Candidate:
    return next(c for c in candidates if c.label == row.label)


def _winner(rows: list[Row]) -> Row | None:
    """The fastest raced row (the baseline when nothing beat it), None before any run."""
    timed = [r for r in rows if r.ratio is not None and r.status in ("raced", "baseline")]
    return max(timed, key=lambda r: (r.ratio, r.runs), default=None)


def _summary(args, winner: Row | None, base_rate: float | None, target_f1: float | None,
             started: float, race: Race | None, interrupted: bool) -> list[str]:
    lines = [f"wall time {(time.monotonic() - started) / 60:.1f} of {args.budget_minutes:g} "
             "min" + (" (interrupted)" if interrupted else "")]
    if race is not None and race.stopped:
        lines.append(f"the race stopped early: {race.stopped}")
    if winner is None:
        lines.append("no winner: no candidate was measured")
        return lines
    lines.append(f"winner: {winner.label}: F1 {winner.f1:.2f} (target {target_f1:.2f}), "
                 f"{winner.samples_per_second:.2f} samples/s, x{winner.ratio:.2f} the fp32 "
                 f"default ({base_rate:.2f} samples/s, median of its runs), over "
                 f"{winner.runs} paired runs")
    return lines
