"""Command line: ``python -m harness {run,accuracy,data,model,score,list,agree,sweep,compare,
compliance,submission,check,wafer,settings,published,report}``.

The flags of the commands that run LoadGen are generated from the settings declared in
:mod:`harness.config`; a bad value is one ``error:`` line naming the flag, exit 2.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import warnings
from pathlib import Path

from backends import (
    BackendError,
    BackendSettings,
    available_backends,
    backend_entry,
    get_backend_class,
)
from backends.base import DEVICES
from common.errors import (
    EXIT_CHECK_FAILED,
    EXIT_INVALID,
    EXIT_OK,
    ConfigError,
    HarnessError,
    HarnessWarning,
)
from common.workspace import workspace
from harness import agreement
from harness.config import RunConfig, add_arguments, config_from_args, settings_table
from harness.loadgen import rules as run_rules
from harness.loadgen.driver import ForcedStop, RunInterrupted
from harness.loadgen.rulesets import DEFAULT as DEFAULT_ROUND
from harness.loadgen.rulesets import RULESETS
from harness.loadgen.scenarios import SCENARIOS
from harness.loadgen.sizing import next_step
from harness.published import cli as published_cli
from harness.runner import execute
from harness.tune import cli as tune_cli
from harness.tune import tuned as tune_tuned
from models.catalog import CATALOG, DEFAULT_MODEL, resolve_model
from squad.data import DataConfig, prepare_data


def _cli_path(text: str) -> Path:
    """A path from the command line, made absolute against the directory the user is in."""
    return Path(text).expanduser().absolute()


def _workspace_note() -> None:
    """Say which workspace a command uses when it is not the folder the user is in."""
    cwd = Path.cwd().absolute()
    root = workspace().root
    if root != cwd:
        print(f"note: {cwd} has no user.conf, so this runs in the project folder {root} "
              "(its user.conf, datasets/, models/store/ and results/)", file=sys.stderr)


def _data_arguments(parser: argparse.ArgumentParser,
                    defaults: dict[str, str] | None = None) -> None:
    add_arguments(parser.add_argument_group("data"), DataConfig, defaults=defaults)


def _data_config(args: argparse.Namespace) -> DataConfig:
    return config_from_args(args, DataConfig)


# Flags each command that runs LoadGen leaves out, and its own defaults.
RUN_COMMANDS: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "run": ((), {}),
    "accuracy": (("--mode", "--audit"), {}),
    "compliance": (("--mode", "--audit"), {"--rules": run_rules.V1_0}),
    "submission": (("--scenario", "--mode", "--audit"), {"--rules": run_rules.V1_0}),
}


def _run_parser(sub, name: str, help_text: str) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help_text, description=help_text)
    exclude, defaults = RUN_COMMANDS[name]
    add_arguments(parser, RunConfig, exclude=exclude, defaults=defaults)
    return parser


def _agree_parser(sub) -> None:
    """``agree``: every backend on the same features (see :mod:`harness.agreement`)."""
    text = "run every backend on the same features; compare logits, answers, F1 and speed"
    parser = sub.add_parser("agree", help=text, description=text)
    parser.add_argument("--model", action="append", default=None,
                        help=f"catalog name or path (default: {DEFAULT_MODEL}); comma-separated "
                        "or repeated to compare models, e.g. NAME,NAME-int8-static")
    parser.add_argument("--backends", default=None,
                        help="comma-separated backends (default: every registered one but "
                        "null; those not installed or unable to run the model are skipped)")
    parser.add_argument("--batch-size", type=int, default=1, help="features per backend call")
    parser.add_argument("--atol", type=float, default=agreement.AgreementConfig.atol,
                        help="same-model pairs: most abs logit difference "
                        "(default: %(default)g)")
    parser.add_argument("--min-same", type=float, default=agreement.AgreementConfig.min_same,
                        help="same-model pairs: least share of identical answers "
                        "(default: %(default)g)")
    parser.add_argument("--max-f1-diff", type=float, default=agreement.AgreementConfig.max_f1_diff,
                        help="pairs of different models (fp32 vs int8): most F1 points apart "
                        "(default: %(default)g)")
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads, 0 = default")
    parser.add_argument("--device", choices=DEVICES, default="auto")
    parser.add_argument("--model-store", type=_cli_path, default=None,
                        help="default: models/store in the workspace")
    parser.add_argument("--results-dir", type=_cli_path, default=None,
                        help="default: results/ in the workspace")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    _data_arguments(parser, {"--max-examples": str(agreement.AGREE_QUESTIONS)})


def _cmd_agree(args: argparse.Namespace) -> int:
    """Run ``agree``; exit status 0 when every pair agrees, 1 when one does not."""
    config = agreement.AgreementConfig(
        models=tuple(m for value in args.model or [DEFAULT_MODEL] for m in value.split(",") if m),
        backends=tuple(b for b in args.backends.split(",") if b) if args.backends else None,
        batch_size=args.batch_size, atol=args.atol, min_same=args.min_same,
        max_f1_diff=args.max_f1_diff,
        backend_settings=BackendSettings(intra_op_threads=args.threads, device=args.device),
        data=_data_config(args), model_store=args.model_store or workspace().model_store,
        results_dir=args.results_dir or workspace().results, progress=not args.no_progress,
    )
    report = agreement.run_agreement(config)
    print(report.text(), end="")
    verdict = "all pairs agree" if report.ok else "DISAGREEMENT"
    print(f"{verdict}; written to {agreement.report_path(config)}")
    return 0 if report.ok else 1


# ---- sweeps and comparisons (harness.sweep) ------------------------------------------------


def _sweep_parser(sub) -> None:
    """``sweep``: many runs from one TOML file (see docs/sweeps.md)."""
    text = "run a sweep file's points, each as its own LoadGen run; table, plots, report"
    parser = sub.add_parser("sweep", help=text, description=text)
    parser.add_argument("sweep", type=_cli_path, help="sweep file (TOML), e.g. sweeps/*.toml")
    parser.add_argument("--find-peak", action="store_true",
                        help="Server: search the highest VALID target QPS ([peak] in the "
                        "file); Offline: the best batch size and threads")
    parser.add_argument("--peak-method", choices=("bisect", "loadgen"), default=None,
                        help="bisect: one run a probe (default); loadgen: LoadGen's own "
                        "FindPeakPerformance mode in one run")
    parser.add_argument("--results-dir", type=_cli_path, default=None,
                        help="where sweeps are kept, one folder each (default: results/sweeps "
                        "in the workspace)")
    parser.add_argument("--list", action="store_true",
                        help="list the points and whether each is done; run nothing")
    parser.add_argument("--no-distribution", action="store_true",
                        help="skip the extra run that records per-sample latencies")
    parser.add_argument("--rerun", action="store_true",
                        help="run finished points again (earlier runs move to each point's "
                        "history/); default: skip them")
    parser.add_argument("--report-only", action="store_true",
                        help="run nothing: redraw the table, plots and report from the "
                        "points that finished (after a Ctrl-C, say)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    tune_tuned.add_sweep_argument(parser)
    _data_arguments(parser)


def _sweep_data_flags(data: DataConfig) -> tuple[str, ...]:
    """The data flags every point's run gets from the sweep's command line."""
    flags = ["--data-dir", str(data.data_dir), "--cache-dir", str(data.cache_dir)]
    for mirror in data.mirrors:
        flags += ["--mirror", str(mirror)]
    if not data.download:
        flags.append("--no-download")
    return tuple(flags)


def _cmd_sweep(args: argparse.Namespace) -> int:
    """Run ``sweep``; exit status 1 when a point failed (re-running retries it)."""
    import dataclasses

    from harness.sweep import engine
    from harness.sweep.spec import load_sweep

    data = _data_config(args)
    spec = load_sweep(args.sweep)
    spec = dataclasses.replace(spec, base=tune_tuned.with_settings(spec.base, args.settings))
    if data.max_examples is not None:
        spec = dataclasses.replace(spec, base={**spec.base, "max_examples": data.max_examples})
    options = engine.SweepOptions(
        find_peak=args.find_peak, peak_method=args.peak_method,
        results_dir=args.results_dir or workspace().sweeps,
        extra_args=_sweep_data_flags(data), progress=not args.no_progress,
        distribution=not args.no_distribution, rerun=args.rerun,
        report_only=args.report_only, command=("python", "-m", "harness", *sys.argv[1:]),
    )
    if args.list:
        for state in engine.point_states(spec, options):
            print(f"{state.status:8s} {state.point.label}  {state.folder}")
        return 0
    outcome = engine.run_sweep(spec, options)
    print(outcome.headline)
    for note in outcome.notes:
        print(f"note: {note}")
    print(f"table: {outcome.csv}")
    print(f"report: {outcome.report}")
    if outcome.failed and args.report_only:
        print(f"{outcome.failed} point(s) not finished are left out", file=sys.stderr)
    elif outcome.failed:
        print(f"{outcome.failed} point(s) did not finish; run the same command again to retry "
              "them (finished points are kept)", file=sys.stderr)
        return 1
    return 0


def _compare_parser(sub) -> None:
    text = "the change in every figure between two runs or two sweeps"
    parser = sub.add_parser("compare", help=text, description=text + "; without A and B, "
                            "the runs and sweeps there are to compare")
    parser.add_argument("a", type=_cli_path, nargs="?",
                        help="run folder, sweep folder or sweep file (none: list them)")
    parser.add_argument("b", type=_cli_path, nargs="*",
                        help="the same kind as A (with --published: more runs)")
    parser.add_argument("--results-dir", type=_cli_path, default=None,
                        help="where sweep files' results are (default: results/sweeps in the "
                        "workspace)")
    parser.add_argument("--force", action="store_true",
                        help="compare runs of different scenarios, models or rules (a warning "
                        "instead of a refusal)")
    parser.add_argument("--json", action="store_true", help="the comparison as JSON")
    parser.add_argument("--fail-below", type=_percent, default=None, metavar="PCT",
                        help="exit 1 when B's headline figure (the scenario's metric, a "
                        "sweep's peak QPS) is worse than A's by more than PCT %% or a verdict "
                        "went INVALID: a regression gate for CI")
    published_cli.add_compare_arguments(parser)


def _percent(text: str) -> float:
    """``--fail-below``: a percentage from 0 to 100."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= 100:  # nan fails too
        raise argparse.ArgumentTypeError(f"expected a percentage from 0 to 100, got {text!r}")
    return value


def _cmd_compare(args: argparse.Namespace) -> int:
    """Exit 1 when ``--fail-below`` finds a regression."""
    from harness.sweep.compare import compare_sides
    from harness.sweep.comparison import comparable_list

    if args.published:
        return published_cli.cmd_compare(args)
    sweeps = args.results_dir or workspace().sweeps
    if args.a is None:  # what there is to compare
        print(comparable_list(workspace().results, sweeps), end="")
        return 0
    if len(args.b) != 1:
        raise ConfigError("compare takes two runs or sweeps, A B (or --published ROUND RUN...)")
    result = compare_sides(args.a, args.b[0], sweeps, force=args.force,
                           fail_below_pct=args.fail_below, as_json=args.json)
    print(result.text, end="")
    return EXIT_CHECK_FAILED if result.regressed else EXIT_OK


# ---- submissions: compliance tests, the tree, the checker (harness.submission) -----------


def _compliance_parser(sub) -> None:
    """``compliance TEST``: a compliance run, verified against the submission's runs."""
    text = ("run a compliance test (TEST01: accuracy in performance mode; TEST05: other "
            "seeds) and verify it against the performance and accuracy runs in --results-dir")
    parser = _run_parser(sub, "compliance", text)
    parser.add_argument("test", choices=tuple(run_rules.AUDITS))
    parser.add_argument("--benchmark", choices=tuple(run_rules.BENCHMARKS), default="bert-99",
                        help="TEST01's accuracy tolerance: 1%% for bert-99, 0.1%% for "
                        "bert-99.9 (default: %(default)s)")


def _cmd_compliance(args: argparse.Namespace) -> int:
    """Exit status 0 when the test passes, 1 when it fails."""
    from harness.submission.runs import run_compliance

    folder, checks = run_compliance(_run_config(args, "performance"), args.test, args.benchmark)
    for check in checks:
        print(check.text, end="")
    passed = all(check.passed for check in checks)
    print(f"{args.test}: {'PASS' if passed else 'FAIL'}; written to {folder}")
    return 0 if passed else 1


def _submission_parser(sub) -> None:
    text = ("build an MLPerf Inference submission tree (bert-99 or bert-99.9): reuse the "
            "runs that meet the rules, run what is missing, verify TEST01 and TEST05, check it")
    parser = _run_parser(sub, "submission", text)
    parser.add_argument("--scenarios", default=None, metavar="LIST",
                        help="comma-separated (default: those the system type requires)")
    parser.add_argument("--benchmark", choices=tuple(run_rules.BENCHMARKS), default="bert-99")
    parser.add_argument("--division", choices=("closed", "open"), default=None,
                        help="default: the description file's, else closed")
    parser.add_argument("--submitter", default=None,
                        help="default: the description file's, else mlperf-bert-harness")
    parser.add_argument("--system-type", choices=("datacenter", "edge", "datacenter,edge"),
                        default=None, help="default: the description file's, else datacenter")
    parser.add_argument("--implementation", default=None,
                        help="the implementation's name in the tree (default: the backend)")
    parser.add_argument("--description", type=_cli_path, default=None, metavar="TOML",
                        help="system description fields and submitter (default: "
                        "submission.toml when there is one; see docs/submission.md)")
    parser.add_argument("--out", type=_cli_path, default=None,
                        help="the submission folder; the tree is <out>/<division>/<submitter>/ "
                        "(default: submission/ in the workspace)")
    parser.add_argument("--full-logs", type=_cli_path, default=None,
                        help="where the full accuracy logs are kept (default: <out>-full-logs)")
    parser.add_argument("--rerun", action="store_true", help="run everything again")
    parser.add_argument("--no-run", action="store_true",
                        help="use existing runs only; fail when one is missing")
    parser.add_argument("--no-tune", action="store_true",
                        help="do not run an Offline run that ended too soon again with "
                        "target_qps from the rate it measured")


def _cmd_submission(args: argparse.Namespace) -> int:
    """Build the tree, then check it; exit status 0 only when the check has no FAIL."""
    from harness.submission.checker import check_submission
    from harness.submission.rescore import squad_rescorer
    from harness.submission.tree import SubmissionConfig, build_submission

    scenarios = tuple(s for s in (args.scenarios or "").split(",") if s) or None
    for scenario in scenarios or ():
        if scenario not in SCENARIOS:
            raise ConfigError(f"--scenarios: unknown scenario {scenario!r}; choose from "
                              f"{', '.join(SCENARIOS)}")
    run = _run_config(args, "performance")
    config = SubmissionConfig(
        run=run, out=args.out or workspace().submission,
        full_logs=args.full_logs,
        division=args.division, submitter=args.submitter, benchmark=args.benchmark,
        system_type=args.system_type, scenarios=scenarios, implementation=args.implementation,
        description_file=args.description, rerun=args.rerun, run_missing=not args.no_run,
        tune=not args.no_tune,
    )
    outcome = build_submission(config)
    print(f"submission tree: {outcome.submitter_dir}")
    print(f"full accuracy logs (outside the tree): {outcome.full_logs}")
    for scenario in outcome.scenarios:
        for check in scenario.verifications:
            verdict = check.text.strip().splitlines()[-1]
            print(f"  {scenario.scenario} {check.test} {check.kind}: {verdict}")
    if outcome.defaulted_fields:
        print("note: system description fields neither the host nor the description file "
              f"gave (set to N/A): {', '.join(outcome.defaulted_fields)}")
    report = check_submission(outcome.root, outcome.full_logs, run.rules,
                              squad_rescorer(run.data))
    print(report.text(), end="")
    if not report.ok and run.short_run:
        print("note: a short run (--short, SHORT=1) always fails the minimum duration and the "
              "minimum query count (Offline: samples per query) of each performance run; "
              "its compliance runs may then differ in rate as well. Build without --short "
              "(SHORT=0) for a tree that can pass.")
    return EXIT_OK if report.ok else EXIT_CHECK_FAILED


def _check_parser(sub) -> None:
    text = ("check a submission tree for BERT as the round's MLCommons submission checker "
            "does (FAIL: what it counts as an error, and four contradictions it never looks "
            "for; WARN: what it accepts and this checker doubts); exit 0 when there is no FAIL")
    parser = sub.add_parser("check", help=text, description=text)
    parser.add_argument("submission", type=_cli_path,
                        help="the folder holding closed/ or open/")
    parser.add_argument("--full-logs", type=_cli_path, default=None,
                        help="the full accuracy logs: check each hash= line against them, "
                        "and score each again on the SQuAD dev set (datasets/squad or "
                        "../shared/squad) for the F1 its accuracy.txt states")
    parser.add_argument("--rules", choices=tuple(RULESETS), default=DEFAULT_ROUND,
                        help="the MLPerf Inference round whose rules and checker to hold the "
                        "tree to (default %(default)s)")


def _cmd_check(args: argparse.Namespace) -> int:
    from harness.submission.checker import check_submission
    from harness.submission.rescore import squad_rescorer

    rescore = squad_rescorer(DataConfig(download=False)) if args.full_logs else None
    report = check_submission(args.submission, args.full_logs, args.rules, rescore)
    print(report.text(), end="")
    return 0 if report.ok else 1


# ---- the wafer-scale simulator's planner (backends.wafer) ---------------------------------


def _wafer_parser(sub) -> None:
    """``wafer plan|spec|anchors|calibrate``: the planner of backends.wafer, where ``--model``
    may also be a catalog model and ``--skip-padding`` uses the SQuAD features' lengths."""
    from backends.wafer import cli as wafer_cli

    text = "plan a model on a simulated wafer-scale engine, without LoadGen (docs/wafer.md)"
    parser = sub.add_parser("wafer", help=text, description=text)
    plan = wafer_cli.add_arguments(parser)
    plan.add_argument("--model-store", type=_cli_path, default=None)
    _data_arguments(plan)


def _cmd_wafer(args: argparse.Namespace) -> int:
    from backends.wafer import cli as wafer_cli

    def resolve(name: str) -> Path:
        return resolve_model(name, "onnxruntime", args.model_store,
                             download=_data_config(args).download).path

    def lengths():
        return prepare_data(_data_config(args)).features.seq_len

    return wafer_cli.run(args, resolve=resolve, lengths=lengths)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m harness",
        description="MLPerf-style BERT SQuAD v1.1 inference benchmark driven by LoadGen.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _run_parser(sub, "run", "run a LoadGen test (performance by default)")
    _run_parser(sub, "accuracy", "run a LoadGen accuracy test and score EM/F1")
    data = sub.add_parser("data", help="fetch and verify SQuAD files, build the feature cache")
    _data_arguments(data)
    model = sub.add_parser("model", help="fetch (and export) a catalog model")
    model.add_argument("--model", default=DEFAULT_MODEL)
    model.add_argument("--backend", default=None, help="default: the model's own backend")
    model.add_argument("--model-store", type=_cli_path, default=None)
    model.add_argument("--mirror", type=_cli_path, action="append", default=None,
                       help="local directory holding the model files")
    score = sub.add_parser("score", help="score an existing mlperf_log_accuracy.json")
    score.add_argument("log", type=_cli_path)
    score.add_argument("--precision", choices=("fp32", "int8"), default="fp32")
    _data_arguments(score)
    _agree_parser(sub)
    _sweep_parser(sub)
    tune_cli.add_parser(sub)
    _compare_parser(sub)
    _compliance_parser(sub)
    _submission_parser(sub)
    _check_parser(sub)
    _wafer_parser(sub)
    published_cli.add_parsers(sub)
    sub.add_parser("list", help="list backends and catalog models")
    sub.add_parser("settings", help="every run setting: its flag, sweep key, what it accepts "
                   "and what it does")
    return parser


def _run_config(args: argparse.Namespace, mode: str | None = None) -> RunConfig:
    """The checked run settings of a command line (``mode``: fixed by the command)."""
    return config_from_args(args, RunConfig, **({"mode": mode} if mode else {}))


def _cmd_run(args: argparse.Namespace, mode: str | None) -> int:
    """Exit 0 for a VALID test (or an accuracy run), 3 for an INVALID one, with a next step."""
    config = _run_config(args, mode)
    outcome = execute(config)
    if outcome.simulated:
        print(outcome.simulated)
    print("\n".join(outcome.loadgen.summary_lines()))
    if outcome.accuracy is not None:
        print(outcome.accuracy.text().rstrip())
    print(f"results: {outcome.directory.resolve()}")
    step = next_step(outcome.loadgen, config.scenario, outcome.expectation, outcome.unlikely)
    if step is not None:
        print(f"next: {step}")
    return EXIT_INVALID if outcome.loadgen.valid is False else EXIT_OK


def _cmd_data(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    data = prepare_data(_data_config(args))
    print(f"{data.squad_path} and {data.vocab_path}: md5 verified")
    print(f"{len(data.features)} features for {data.features.num_examples} questions "
          f"({time.perf_counter() - started:.1f} s) cached in {data.cache_path}")
    return 0


def _cmd_model(args: argparse.Namespace) -> int:
    spec = CATALOG.get(args.model)
    backend = args.backend or (spec.default_backend if spec else "onnxruntime")
    model = resolve_model(args.model, backend, args.model_store, tuple(args.mirror or ()))
    print(f"{model.name}: {model.path} (md5 {model.md5}, {model.format}, {model.precision})")
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    from squad.accuracy import score_accuracy_log
    from squad.features import read_vocab

    data = prepare_data(_data_config(args))
    report, _ = score_accuracy_log(
        args.log, data.features, data.examples, read_vocab(data.vocab_path), args.precision
    )
    print(report.text().rstrip())
    return 0


def _cmd_list(_: argparse.Namespace) -> int:
    print("backends:")
    for name in available_backends():
        entry = backend_entry(name)
        loads = ", ".join(entry.formats) or "what the backend it wraps loads (its options)"
        print(f"  {name:12s} loads {loads}")
        try:
            options = get_backend_class(name).known_options
        except BackendError:
            print(f"  {'':12s} not installed: {entry.install_hint()}")
            continue
        for option, text in options.items():
            print(f"  {'':12s} --backend-option {option}=: {text}")
    print("  (hf checkpoints are exported once for backends that load onnx or tf-frozen)")
    print("models:")
    for spec in CATALOG.values():
        print(f"  {spec.name:26s} {spec.format:10s} {spec.precision:5s} {spec.description}")
    print("  (any of them)-int8-dynamic, -int8-static: quantized from its fp32 ONNX, built once")
    return 0


def _cmd_settings(_: argparse.Namespace) -> int:
    """Print the settings table (generated from the declarations in harness.config)."""
    for flag, key, accepts, text in settings_table():
        print(f"  {flag:22s} {text}")
        print(f"  {'':22s}   {accepts}" + (f"; sweep key: {key}" if key else ""))
    return 0


def _one_line_warnings() -> None:
    """The harness's own warnings print as one ``warning:`` line, like its errors."""
    default = warnings.formatwarning

    def format_warning(message, category, filename, lineno, line=None) -> str:
        if issubclass(category, HarnessWarning):
            return f"warning: {message}\n"
        return default(message, category, filename, lineno, line)

    warnings.formatwarning = format_warning


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _one_line_warnings()
    commands = {
        "run": lambda a: _cmd_run(a, None),
        "accuracy": lambda a: _cmd_run(a, "accuracy"),
        "data": _cmd_data,
        "model": _cmd_model,
        "score": _cmd_score,
        "list": _cmd_list,
        "agree": _cmd_agree,
        "sweep": _cmd_sweep,
        "tune": tune_cli.cmd_tune,
        "compare": _cmd_compare,
        "compliance": _cmd_compliance,
        "submission": _cmd_submission,
        "check": _cmd_check,
        "wafer": _cmd_wafer,
        "settings": _cmd_settings,
        "published": published_cli.cmd_published,
        "report": published_cli.cmd_report,
    }
    try:
        if args.command not in ("list", "settings"):
            _workspace_note()
        return commands[args.command](args)
    except ForcedStop as exc:
        # LoadGen's thread may still be running: leave now, without interpreter shutdown
        print(f"error: {exc}", file=sys.stderr, flush=True)
        os._exit(exc.exit_code)
    except RunInterrupted as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except (HarnessError, BackendError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk or a read-only folder outside a run's own handling
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
