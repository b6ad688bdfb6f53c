"""Command line of the published table and the results page: ``published``, ``report`` and
``compare --published ROUND [RUN...]`` (registered by :mod:`harness.cli`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from common.errors import ConfigError
from common.workspace import workspace
from harness.published import table
from harness.published.compare import (
    gather_runs,
    header_text,
    load_wafer_plan,
    place,
    placement_text,
)

SCENARIO_CHOICES = ("Offline", "Server", "SingleStream", "MultiStream")


def _path(text: str) -> Path:
    return Path(text).expanduser().absolute()


def add_parsers(sub) -> None:
    """Add ``published`` and ``report`` to the harness's subcommands."""
    text = ("list the published MLPerf Inference v1.0/v1.1 BERT results (a table built from "
            "mlcommons/inference_results_v1.0 and v1.1), filtered")
    parser = sub.add_parser("published", help=text, description=text)
    parser.add_argument("--scenario", choices=SCENARIO_CHOICES, default=None)
    parser.add_argument("--benchmark", choices=table.BENCHMARKS, default=None)
    parser.add_argument("--accelerator", default=None, metavar="TEXT",
                        help="part of the accelerator's name or family, e.g. A100, T4, cpu")
    parser.add_argument("--round", choices=table.ROUNDS, default=None)
    parser.add_argument("--division", choices=("closed", "open"), default=None)
    parser.add_argument("--csv", action="store_true", help="print the rows as CSV")
    text = ("write results/index.html: one offline page listing every run, history and sweep "
            "point, with filters, the metric over time and the published placement")
    report = sub.add_parser("report", help=text, description=text)
    report.add_argument("--results-dir", type=_path, default=None)
    report.add_argument("--round", choices=table.ROUNDS, default="v1.0",
                        help="published round placed beside each scenario (default: %(default)s)")


def add_compare_arguments(parser: argparse.ArgumentParser) -> None:
    """``compare``'s ``--published`` options (the runs are its positional arguments)."""
    group = parser.add_argument_group("published results (compare --published ROUND RUN...)")
    group.add_argument("--published", choices=table.ROUNDS, default=None, metavar="ROUND",
                       help="place the runs (run folders or results trees; default: every "
                       "result in results/) among MLPerf's published BERT results of ROUND")
    group.add_argument("--benchmark", choices=table.BENCHMARKS, default="bert-99",
                       help="with --published (default: %(default)s)")
    group.add_argument("--wafer-plan", type=_path, action="append", default=[],
                       metavar="JSON", help="with --published: mark a plan written by "
                       "`wafer plan --json > FILE` on the picture (repeatable)")
    group.add_argument("--plot", type=_path, default=None, metavar="PNG",
                       help="with --published: where the picture goes (default: "
                       "results/published/compare-ROUND-BENCHMARK.png)")


def cmd_published(args: argparse.Namespace) -> int:
    """Print the published rows matching the filters, best first per group."""
    rows = table.select(table.load(), scenario=args.scenario, benchmark=args.benchmark,
                        accelerator=args.accelerator, round=args.round,
                        division=args.division)
    if not rows:
        raise ConfigError("no published result matches these filters")
    if args.csv:
        import csv
        import sys
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["round", "division", "submitter", "system", "accelerator",
                         "accelerators", "host_processor", "host_cores", "framework",
                         "benchmark", "scenario", "metric", "unit", "f1", "power",
                         "power_unit"])
        for r in rows:
            writer.writerow([r.round, r.division, r.submitter, r.system, r.accelerator,
                             r.accelerators, r.host_processor, r.host_cores, r.framework,
                             r.benchmark, r.scenario, r.metric, r.unit, r.f1 or "",
                             r.power or "", r.power_unit])
        return 0
    groups: dict[tuple[str, str, str], list[table.Published]] = {}
    for r in rows:
        groups.setdefault((r.round, r.benchmark, r.scenario), []).append(r)
    for (round_name, benchmark, scenario), members in sorted(groups.items()):
        unit = members[0].unit
        order = "lower is better" if scenario in table.LOWER_IS_BETTER else "higher is better"
        print(f"{round_name} {benchmark} {scenario}: {len(members)} results ({unit}, {order})")
        print(f"  {'#':>3s} {'metric':>12s} {'per acc/core':>12s} {'F1':>6s} {'power':>10s}  "
              "submitter / system / accelerator / host / framework")
        for i, r in enumerate(table.ranked(members), 1):
            per = f"{r.per_unit:,.1f}" + ("/c" if r.cpu_only else "") if r.per_unit else ""
            power = f"{r.power:,.1f} {r.power_unit}" if r.power is not None else ""
            kind = (f"CPU only, {r.host_cores} cores" if r.cpu_only
                    else f"{r.accelerators}x {r.accelerator}")
            print(f"  {i:3d} {r.metric:12,.2f} {per:>12s} {r.f1 or 0:6.2f} {power:>10s}  "
                  f"{r.submitter} / {r.system} / {kind} / {r.host_processor} / "
                  f"{r.framework}" + (" [open]" if r.division == "open" else ""))
    print(f"{len(rows)} rows; source: {table.TABLE_PATH.name} (see SOURCE.md beside it: "
          "MLCommons results repositories, Apache-2.0)")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """``compare --published ROUND [RUN...]``: the placement of each run, and the PNG."""
    from harness.published.plot import published_plot

    paths = [p for p in [args.a, *(args.b or [])] if p is not None]
    if not paths:
        paths = [workspace().results]
    runs = gather_runs(paths)
    plans = [load_wafer_plan(p) for p in args.wafer_plan]
    rows = table.select(table.load(), round=args.published, benchmark=args.benchmark)
    print(header_text(rows, args.published, args.benchmark), end="")
    for run in runs:
        print()
        print(placement_text(place(run, rows)), end="")
    for plan in plans:
        print(f"\nwafer plan {plan.label} ({plan.precision}, modelled, no LoadGen run): "
              f"{plan.samples_per_s or 0:,.0f} samples/s, p90 {plan.latency_p90_ms or 0:.3g} "
              "ms")
    plot = args.plot or (workspace().results / "published"
                         / f"compare-{args.published}-{args.benchmark}.png").absolute()
    published_plot(plot, rows, runs, plans,
                   title=f"Published MLPerf Inference {args.published} {args.benchmark} "
                   "results and yours")
    print(f"\npicture: {plot}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Write the results page now; its path on stdout."""
    from harness.report.index import write_index

    path, count = write_index(args.results_dir or workspace().results, round_name=args.round)
    print(f"{path}: {count} runs")
    return 0
