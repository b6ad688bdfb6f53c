"""Runs -> an MLPerf Inference submission tree, ``<out>/<division>/<submitter>/``::

    systems/<system>.json
    code/<benchmark>/<implementation>/README.md
    measurements/<system>/<benchmark>/<scenario>/
        <system>_<implementation>_<scenario>.json, mlperf.conf, user.conf, README.md
    results/<system>/<benchmark>/<scenario>/performance/run_1/  LoadGen's summary, detail
    results/<system>/<benchmark>/<scenario>/accuracy/           + accuracy.txt, truncated log
    compliance/<system>/<benchmark>/<scenario>/TEST01/  verify_*.txt, accuracy/, performance/
    compliance/<system>/<benchmark>/<scenario>/TEST05/  verify_performance.txt, performance/

The runs come from the harness's results folder (``results/<system>/<model>/...`` and
``results/compliance/<TEST>/...``): reused when they meet the rules, run otherwise (each in
its own process). Full accuracy logs stay outside the tree, in ``<out>-full-logs/`` with the
same layout. The tree is written beside its place and moved in when complete.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shlex
import shutil
import subprocess
import tempfile
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from backends import model_backend
from common.errors import ConfigError
from common.files import PROJECT_ROOT, path_component, refuse_links, slug
from harness.loadgen import layout
from harness.loadgen.rules import (
    AUDITS,
    BENCHMARKS,
    NOT_REQUIRED_FOR_BERT,
    SYSTEM_TYPES,
    mlperf_conf_text,
)
from harness.loadgen.rulesets import RULESETS
from harness.runner import RunConfig
from harness.submission import compliance, runs, system_desc
from harness.submission.logs import ACCURACY_LOG, DETAIL_LOG, SUMMARY_LOG, truncate_accuracy_log
from harness.system import default_system_name
from models.catalog import resolve_model
from squad.data import prepare_data

DIVISIONS = ("closed", "open")
DEFAULT_DESCRIPTION_FILE = Path("submission.toml")
LOG_FILES = (SUMMARY_LOG, DETAIL_LOG)
TEXT_KEYS = ("submitter", "division", "system_type", "status", "implementation")
TABLE_KEYS = ("system", "measurements")


@dataclasses.dataclass(frozen=True)
class SubmissionConfig:
    """What to submit. ``run`` is the template of every run (backend, model, system, rules,
    user.conf, data, results folder); its scenario and mode are set per run."""

    run: RunConfig
    out: Path = Path("submission")
    full_logs: Path | None = None  # None: <out>-full-logs beside the tree
    division: str | None = None  # None: the description file's, else closed
    submitter: str | None = None
    benchmark: str = "bert-99"
    system_type: str | None = None  # None: the description file's, else datacenter
    scenarios: tuple[str, ...] | None = None  # None: those the system type requires
    implementation: str | None = None  # None: the backend's name
    description_file: Path | None = None  # None: submission.toml when there is one
    rerun: bool = False  # run everything again instead of reusing runs
    run_missing: bool = True  # False: use existing runs only
    tune: bool = True  # Offline: retry once with target_qps from the measured rate


@dataclasses.dataclass(frozen=True)
class ScenarioOutcome:
    scenario: str
    runs: dict[str, Path]
    verifications: tuple[compliance.Verification, ...]


@dataclasses.dataclass(frozen=True)
class BuildOutcome:
    root: Path  # the submission folder (holds <division>/)
    submitter_dir: Path
    full_logs: Path
    scenarios: tuple[ScenarioOutcome, ...]
    defaulted_fields: tuple[str, ...]


def read_description_file(path: Path | None) -> dict[str, Any]:
    """The user's TOML: top-level submitter/division/system_type/status/implementation,
    ``[system]`` (any system-description field) and ``[measurements]`` (the fields of
    ``<system>_<implementation>_<scenario>.json``)."""
    if path is None:
        path = DEFAULT_DESCRIPTION_FILE
        if not path.is_file():
            return {}
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the description file "
                          f"({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not TOML ({exc})") from None
    unknown = set(data) - {*TEXT_KEYS, *TABLE_KEYS}
    if unknown:
        raise ConfigError(f"{path}: unknown keys {', '.join(sorted(unknown))}")
    for key in TEXT_KEYS:
        if key in data and not isinstance(data[key], str):
            raise ConfigError(f"{path}: {key} must be a string, not {type(data[key]).__name__}")
    for key in TABLE_KEYS:
        if key in data and not isinstance(data[key], dict):
            raise ConfigError(f"{path}: [{key}] must be a table, not "
                              f"{type(data[key]).__name__}")
    for key in TABLE_KEYS:
        for field, value in data.get(key, {}).items():
            if not _json_scalar(value):
                raise ConfigError(f"{path}: [{key}] {field} must be text, a number or true/"
                                  f"false, not {value!r}"[:300])
    wrong = set(data.get("system", {})) - set(system_desc.FIELDS) - set(system_desc.POWER_FIELDS)
    if wrong:
        raise ConfigError(f"{path}: [system] has fields the system description does not: "
                          f"{', '.join(sorted(wrong))}")
    return data


def _json_scalar(value: Any) -> bool:
    """A value the tree's JSON files can hold as it is: text, a finite number, true/false."""
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, (str, int, bool))


@dataclasses.dataclass(frozen=True)
class _Plan:
    division: str
    submitter: str
    system_type: str
    status: str
    implementation: str
    scenarios: tuple[str, ...]
    system: str
    user: dict[str, Any]


def _plan(config: SubmissionConfig) -> _Plan:
    user = read_description_file(config.description_file)
    division = config.division or user.get("division") or "closed"
    system_type = config.system_type or user.get("system_type") or "datacenter"
    if division not in DIVISIONS:
        raise ConfigError(f"division {division!r}: choose closed or open")
    if config.benchmark not in BENCHMARKS:
        raise ConfigError(f"benchmark {config.benchmark!r}: choose {', '.join(BENCHMARKS)}")
    if system_type not in SYSTEM_TYPES:
        raise ConfigError(f"system type {system_type!r}: choose "
                          f"{', '.join(t for t in SYSTEM_TYPES if t != 'edge,datacenter')}")
    benchmarks = SYSTEM_TYPES[system_type]
    if config.benchmark not in benchmarks:
        raise ConfigError(f"{config.benchmark} is not a benchmark of {system_type} systems in "
                          "MLPerf Inference")
    required, optional = benchmarks[config.benchmark]
    scenarios = tuple(config.scenarios or required)
    for scenario in scenarios:
        if scenario not in required + optional:
            raise ConfigError(f"{scenario} is neither required nor optional for "
                              f"{config.benchmark} on {system_type} systems (required: "
                              f"{', '.join(required)}; optional: {', '.join(optional) or '-'})")
    status = user.get("status", "available")
    if status not in system_desc.STATUSES:
        raise ConfigError(f"status {status!r}: choose {', '.join(system_desc.STATUSES)}")
    backend = config.run.backend
    return _Plan(
        division=division,
        # shown as it is in the tree and its JSON: refused, not changed, when unsafe
        submitter=path_component(config.submitter or user.get("submitter")
                                 or "mlperf-bert-harness", "submitter"),
        system_type=system_type,
        status=status,
        implementation=slug(config.implementation or user.get("implementation") or backend),
        scenarios=scenarios,
        system=slug(config.run.system or default_system_name(backend)),
        user=user,
    )


def build_submission(config: SubmissionConfig,
                     log: Callable[[str], None] = print) -> BuildOutcome:
    """Run what is missing, verify the compliance tests, write the tree."""
    plan = _plan(config)
    full_logs = Path(config.full_logs or f"{config.out}-full-logs")
    _check_places(config, plan, full_logs)  # before hours of runs, not after
    template = dataclasses.replace(config.run, system=plan.system)
    if template.rules not in RULESETS:
        log(f"warning: rules {template.rules!r} are not an MLPerf round's rules "
            f"({', '.join(RULESETS)}): the checker will say so")
    options = template.backend_settings.options
    model = resolve_model(template.model, model_backend(template.backend, options),
                          template.model_store, template.model_mirrors,
                          download=template.data.download, data=template.data)
    if model.precision == "int8" and config.benchmark != "bert-99":
        raise ConfigError(f"{model.name} is an int8 model: it qualifies for bert-99 only")
    outcomes = []
    for scenario in plan.scenarios:
        outcomes.append(_scenario_runs(config, template, model, scenario, log))
    log("verifying the compliance tests")
    data = prepare_data(template.data, progress=False)
    outcomes = [_verify(outcome, config.benchmark, data) for outcome in outcomes]
    submitter_dir, defaulted = _write_tree(config, plan, template, model, outcomes, full_logs)
    return BuildOutcome(Path(config.out), submitter_dir, full_logs, tuple(outcomes),
                        tuple(defaulted))


def _scenario_runs(config: SubmissionConfig, template: RunConfig, model, scenario: str,
                   log: Callable[[str], None]) -> ScenarioOutcome:
    specs = {"performance": runs.RunSpec(scenario),
             "TEST05": runs.RunSpec(scenario, audit="TEST05"),
             "TEST01": runs.RunSpec(scenario, audit="TEST01"),
             "accuracy": runs.RunSpec(scenario, "accuracy")}
    found = {}
    scenario_dir = runs.run_path(template, template.system, model.name, specs["accuracy"]).parent
    for name, spec in specs.items():
        path = runs.run_path(template, template.system, model.name, spec)
        problems = ["--rerun"] if config.rerun else runs.problems_with(path, spec, template,
                                                                     model.md5)
        if not problems:
            log(f"{spec.label}: reusing {path}")
            found[name] = path
            continue
        if not config.run_missing:
            raise runs.SubmissionError(f"{spec.label}: {path} cannot be used ("
                                       f"{'; '.join(problems)}) and --no-run was given")
        log(f"{spec.label}: {path}: {'; '.join(problems)}; running it")
        runs.launch(template, spec, runs.tuned_user_conf(template, scenario_dir), log, path)
        problems = runs.problems_with(path, spec, template, model.md5)
        for _ in range(runs.TUNE_ATTEMPTS if config.tune and spec == specs["performance"]
                       else 0):
            tuned = runs.offline_retune(path, template, scenario_dir) if problems else None
            if tuned is None:
                break
            log(f"{spec.label}: {'; '.join(problems)}; running it again with the "
                f"target_qps in {tuned}")
            runs.launch(template, spec, tuned, log, path)
            problems = runs.problems_with(path, spec, template, model.md5)
        if problems:
            raise runs.SubmissionError(
                f"{spec.label}: refused {path}: {'; '.join(problems)}. A submission holds "
                "only VALID runs without LoadGen errors: set the user.conf's expected "
                "performance near what the system does (it is kept beside the run) and run "
                "again")
        found[name] = path
    return ScenarioOutcome(scenario, found, ())


def _verify(outcome: ScenarioOutcome, benchmark: str, data) -> ScenarioOutcome:
    found = outcome.runs
    checks = (
        compliance.verify_accuracy(found["accuracy"], found["TEST01"], benchmark, data),
        compliance.verify_performance("TEST01", found["performance"], found["TEST01"]),
        compliance.verify_performance("TEST05", found["performance"], found["TEST05"]),
    )
    return dataclasses.replace(outcome, verifications=checks)


def _copy_logs(run: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for name in LOG_FILES:
        shutil.copy2(run / name, dest / name)


def _keep_full_log(source: Path, dest: Path, full_root: Path) -> None:
    """The full accuracy log, outside the tree (a hard link when the disk allows); never
    through a symbolic link below ``full_root``."""
    refuse_links(full_root, dest, "the full logs")
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.unlink(missing_ok=True)
    try:
        os.link(source, dest)
    except OSError:
        shutil.copy2(source, dest)


def _accuracy_txt(run: Path, digest: str) -> str:
    """The run's accuracy.txt with the hash of its full log as its hash= line."""
    lines = [line for line in (run / layout.ACCURACY_TXT).read_text(encoding="utf-8").splitlines()
             if not line.startswith("hash=")]
    return "\n".join([*lines, f"hash={digest}"]) + "\n"


def _check_places(config: SubmissionConfig, plan: _Plan, full_logs: Path) -> None:
    """Refuse a link planted where the tree or the full logs would be replaced or written
    (the folders ``--out`` and ``--full-logs`` themselves may be links)."""
    refuse_links(Path(config.out), Path(config.out) / plan.division / plan.submitter,
                 "the submission tree")
    refuse_links(full_logs, full_logs / plan.division / plan.submitter, "the full logs")


def _write_tree(config: SubmissionConfig, plan: _Plan, template: RunConfig, model,
                outcomes: list[ScenarioOutcome], full_logs: Path) -> tuple[Path, list[str]]:
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    # the tree replaces out/<division>/<submitter> and writes below full_logs: never through
    # a link planted there (out itself may be one)
    _check_places(config, plan, full_logs)
    final = out / plan.division / plan.submitter
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.staging-"))
    try:
        root = staging / plan.division / plan.submitter
        bench = config.benchmark
        for outcome in outcomes:
            _write_scenario(root, full_logs / plan.division / plan.submitter, plan, template,
                            model, bench, outcome)
        code = root / layout.CODE / bench / plan.implementation
        code.mkdir(parents=True)
        (code / "README.md").write_text(_code_readme(plan, template, model, outcomes),
                                        encoding="utf-8")
        (root / layout.SYSTEMS).mkdir()
        defaulted = _system_description(plan, template, outcomes, root, out)
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():
            old = staging / "replaced"
            os.replace(final, old)
        os.replace(root, final)
        return final, defaulted
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write_scenario(root: Path, full_root: Path, plan: _Plan, template: RunConfig, model,
                    bench: str, outcome: ScenarioOutcome) -> None:
    system, scenario, found = plan.system, outcome.scenario, outcome.runs
    results = layout.result_dir(root, system, bench, scenario)
    _copy_logs(found["performance"], layout.performance_run(results))
    accuracy = results / layout.ACCURACY
    _copy_logs(found["accuracy"], accuracy)
    digest = truncate_accuracy_log(found["accuracy"] / ACCURACY_LOG, accuracy / ACCURACY_LOG)
    (accuracy / layout.ACCURACY_TXT).write_text(_accuracy_txt(found["accuracy"], digest),
                                                encoding="utf-8")
    _keep_full_log(found["accuracy"] / ACCURACY_LOG,
                   layout.result_dir(full_root, system, bench, scenario) / layout.ACCURACY
                   / ACCURACY_LOG, full_root)

    tests = layout.compliance_dir(root, system, bench, scenario)
    for test in AUDITS:
        _copy_logs(found[test], layout.performance_run(tests / test))
    test01 = tests / "TEST01" / layout.ACCURACY
    digest = truncate_accuracy_log(found["TEST01"] / ACCURACY_LOG, test01 / ACCURACY_LOG)
    (test01 / layout.ACCURACY_TXT).write_text(
        "sha256 of the TEST01 run's full mlperf_log_accuracy.json (kept outside the tree):\n"
        f"hash={digest}\n", encoding="utf-8")
    _keep_full_log(found["TEST01"] / ACCURACY_LOG,
                   layout.compliance_dir(full_root, system, bench, scenario) / "TEST01"
                   / layout.ACCURACY / ACCURACY_LOG, full_root)
    for verification in outcome.verifications:
        compliance.write_verifications(tests / verification.test, [verification])
    (tests / "README.md").write_text(_compliance_readme(bench, scenario, template.rules),
                                     encoding="utf-8")

    measurements = layout.measurements_dir(root, system, bench, scenario)
    measurements.mkdir(parents=True)
    shutil.copy2(found["performance"] / "user.conf", measurements / "user.conf")
    (measurements / "mlperf.conf").write_text(mlperf_conf_text(template.rules), encoding="utf-8")
    fields = _implementation_fields(model, plan.user.get("measurements", {}))
    (measurements / layout.implementation_file(system, plan.implementation, scenario)).write_text(
        json.dumps(fields, indent=2) + "\n", encoding="utf-8")
    (measurements / "README.md").write_text(
        _measurements_readme(plan, bench, scenario, found, template), encoding="utf-8")


def _implementation_fields(model, user: dict[str, Any]) -> dict[str, Any]:
    """``<system>_<implementation>_<scenario>.json``: the five fields the checkers ask for."""
    transformations = "none"
    if model.precision == "int8":
        transformations = "int8 quantization of the fp32 weights (see the model's recipe)"
    elif not model.mlperf:
        transformations = f"{Path(str(model.source)).name} exported to {model.format}"
    fields = {
        "input_data_types": "int32",
        "retraining": "no",
        "starting_weights_filename": Path(str(model.source)).name or str(model.source),
        "weight_data_types": model.precision,
        "weight_transformations": transformations,
    }
    fields.update(user)
    return fields


def _command(run: Path) -> str:
    settings = runs.read_settings(run) or {}
    argv = settings.get("command") or []
    return "python -m harness " + " ".join(shlex.quote(str(a)) for a in argv[1:]) \
        if argv else "(not recorded)"


def _measurements_readme(plan: _Plan, bench: str, scenario: str, found: dict[str, Path],
                         template: RunConfig) -> str:
    settings = runs.read_settings(found["performance"]) or {}
    sut = settings.get("sut") or {}
    backend = settings.get("backend") or {}
    lines = [
        f"# {plan.system}: {bench} {scenario}",
        "",
        f"mlperf-bert-harness, backend `{backend.get('backend')}` {backend.get('version', '')}, "
        f"model `{(settings.get('model') or {}).get('name')}`, batch size "
        f"{sut.get('batch_size')}, rules `{template.rules}`"
        + (" (short runs: not valid for a submission)" if template.short_run else "") + ".",
        "",
        "`user.conf` is exactly what LoadGen read in the performance run; `mlperf.conf` holds",
        "the rules the runs were made under. Each run was one process:",
        "",
    ]
    for name, run in found.items():
        lines += [f"- {name}: `{_command(run)}`"]
    lines += ["", "The whole submission: `make submission` (see docs/submission.md).", ""]
    return "\n".join(lines)


def _compliance_readme(bench: str, scenario: str, rules: str) -> str:
    return (f"# Compliance: {bench} {scenario}\n\n"
            "TEST01 (accuracy in performance mode) and TEST05 (other RNG seeds) as MLPerf "
            f"Inference {rules} asks for BERT.\n"
            f"{' and '.join(NOT_REQUIRED_FOR_BERT)} are not required for BERT in {rules}, so "
            "there are none here.\n")


def _git_commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, check=False,
                              capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=PROJECT_ROOT, check=False,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    commit = head.stdout.strip() or "unknown"
    return commit + (" with uncommitted changes" if dirty.stdout.strip() else "")


def _code_readme(plan: _Plan, template: RunConfig, model, outcomes) -> str:
    return "\n".join([
        f"# {plan.implementation}: mlperf-bert-harness on `{template.backend}`",
        "",
        "A Python MLPerf-style BERT SQuAD v1.1 harness driven by MLCommons LoadGen 6: one",
        "generic SUT and QSL (variable-length batches, logits past a batch's length at",
        "-10000), post-processing as the v1.0 `accuracy-squad.py`, the official EM/F1.",
        "",
        f"- harness: commit {_git_commit()}",
        f"- backend: `{template.backend}`, options {dict(template.backend_settings.options)}",
        f"- model: `{model.name}` ({model.format}, {model.precision}, md5 {model.md5}), "
        f"from {model.source}",
        f"- rules: `{template.rules}`",
        "",
        "Build the submission again with `make submission` or `python -m harness submission`;",
        "each scenario's commands are in `measurements/<system>/<benchmark>/<scenario>/README.md`.",
        "",
    ])


def _system_description(plan: _Plan, template: RunConfig, outcomes: list[ScenarioOutcome],
                        submitter_dir: Path, storage: Path) -> list[str]:
    from importlib.metadata import version

    settings = runs.read_settings(outcomes[0].runs["performance"]) or {}
    backend = settings.get("backend") or {}
    software = {
        "framework": f"{backend.get('backend', template.backend)} "
                     f"{backend.get('version', '')}".strip(),
        "other_software_stack": f"Python {settings.get('python', '')}, MLCommons LoadGen "
                                f"{settings.get('loadgen_version') or version('mlcommons-loadgen')}"
                                f", mlperf-bert-harness {_git_commit()}",
    }
    identity = {"division": plan.division, "submitter": plan.submitter, "status": plan.status,
                "system_name": plan.system, "system_type": plan.system_type}
    description, defaulted = system_desc.describe_system(
        identity, software, plan.user.get("system", {}), storage)
    path = layout.system_file(submitter_dir, plan.system)
    path.write_text(json.dumps(description, indent=2) + "\n", encoding="utf-8")
    return defaulted
