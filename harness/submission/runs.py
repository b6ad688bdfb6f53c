"""The runs a submission is made of: where they are, whether one meets the rules, and
running what is missing, each LoadGen test in a process of its own (LoadGen allows one
test per process).

For each scenario a submission needs four runs: the performance run, the accuracy run
(the whole dev set) and the TEST01 and TEST05 compliance runs. An existing run is reused
when its ``settings.json`` says it was made under the same rules (and short or not), with
the same backend and model file, on the whole dev set, and LoadGen's detail log holds no
error and, for a performance run, says VALID; otherwise it is run again, saying why.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from common.errors import EXIT_INVALID, EXIT_OK, HarnessError
from harness.children import run_child
from harness.config import config_argv
from harness.loadgen import layout
from harness.loadgen.driver import RunInterrupted
from harness.loadgen.results import run_dir
from harness.loadgen.rules import DEV_SET_FEATURES, results_root
from harness.runner import RunConfig, execute
from harness.submission import compliance
from harness.submission.logs import ACCURACY_LOG, DETAIL_LOG, DetailLog
from squad.data import prepare_data

# A submission's runs may take hours (an accuracy run of a slow model, 600 s tests): the
# harness's default run limit must not cut them short. Recorded in each run's settings.json.
SUBMISSION_MAX_RUN_MINUTES = 24 * 60
TUNED_CONF = "submission-user.conf"
TUNE_FACTOR = 1.5  # an Offline run that ended too soon is run again at this x its samples/s
TUNE_ATTEMPTS = 3  # ... at most this many times (a bigger query may run faster still)


class SubmissionError(HarnessError):
    """A submission cannot be built: which run, and why."""


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One run of a submission: a scenario, a mode, and a compliance test or none."""

    scenario: str
    mode: str = "performance"
    audit: str | None = None

    @property
    def label(self) -> str:
        what = self.audit or ("accuracy" if self.mode == "accuracy" else "performance")
        return f"{self.scenario} {what}"


def run_path(template: RunConfig, system: str, model_name: str, spec: RunSpec) -> Path:
    """Where the harness puts (or has put) the run ``spec``."""
    return run_dir(results_root(template.results_dir, spec.audit), system, model_name,
                   spec.scenario, spec.mode)


def read_settings(run: Path) -> dict[str, Any] | None:
    try:
        return json.loads((run / "settings.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def problems_with(run: Path, spec: RunSpec, template: RunConfig, model_md5: str) -> list[str]:
    """Why the run at ``run`` cannot be part of this submission (empty: it can)."""
    if not run.is_dir():
        return ["there is no such run"]
    settings = read_settings(run)
    if settings is None:
        return ["its settings.json is missing or unreadable"]
    problems = []
    rules = settings.get("rules") or {}
    config = settings.get("config") or {}
    if rules.get("name", "loadgen") != template.rules:
        problems.append(f"it ran under rules {rules.get('name', 'loadgen')!r}, not "
                        f"{template.rules!r}")
    if bool(config.get("short_run")) != template.short_run:
        problems.append("it is a short run" if config.get("short_run") else
                        "it is not a short run")
    if config.get("audit") != spec.audit:
        problems.append(f"its compliance test is {config.get('audit')}, not {spec.audit}")
    if (settings.get("backend") or {}).get("backend") != template.backend:
        problems.append(f"it ran on backend {(settings.get('backend') or {}).get('backend')!r}")
    if (settings.get("model") or {}).get("md5") != model_md5:
        problems.append("it ran another model file (md5 differs)")
    features = (settings.get("data") or {}).get("features")
    wanted = DEV_SET_FEATURES if template.data.max_examples is None else None
    if wanted is not None and features != wanted:
        problems.append(f"it covers {features} features, not the dev set's {wanted}")
    problems += loadgen_problems(run, spec.mode)
    return problems


def loadgen_problems(run: Path, mode: str) -> list[str]:
    """What LoadGen's own logs say is wrong with a run: errors, INVALID, a missing log."""
    try:
        log = DetailLog.read(run / DETAIL_LOG)
    except OSError:
        return [f"it has no {DETAIL_LOG}"]
    problems = [f"LoadGen error: {error}" for error in log.errors]
    if mode == "performance" and not log.valid:
        problems.append(f"LoadGen says INVALID ({log.invalid_reasons()})")
    if mode == "accuracy":
        if not (run / ACCURACY_LOG).is_file():
            problems.append(f"it has no {ACCURACY_LOG}")
        text = _read(run / layout.ACCURACY_TXT)
        if not re.search(r"^hash=[0-9a-f]{64}$", text, re.MULTILINE):
            problems.append("its accuracy.txt has no hash= line (scored before the harness "
                            "wrote one)")
    return problems


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return ""


def run_argv(template: RunConfig, spec: RunSpec, user_conf: Path | None) -> list[str]:
    """``python -m harness run|accuracy ...`` for ``spec`` with the template's settings."""
    accuracy = spec.mode == "accuracy"
    config = dataclasses.replace(
        template, scenario=spec.scenario, mode=spec.mode, audit=spec.audit,
        user_conf=user_conf,
        max_run_minutes=template.max_run_minutes or SUBMISSION_MAX_RUN_MINUTES)
    command = "accuracy" if accuracy else "run"
    exclude = ("--mode", "--audit") if accuracy else ()
    return [sys.executable, "-m", "harness", command, *config_argv(config, exclude)]


def launch(template: RunConfig, spec: RunSpec, user_conf: Path | None, log,
           final: Path | None = None) -> None:
    """Run ``spec`` in its own process; raise SubmissionError when the run fails, and
    :class:`RunInterrupted` naming what the run kept when a signal stopped it (``final``:
    where the run goes, to find its ``.interrupted-*`` folder)."""
    argv = run_argv(template, spec, user_conf)
    log(f"running {spec.label}: python {' '.join(shlex.quote(a) for a in argv[1:])}")
    started = time.time()
    try:
        code = run_child(argv)
    except RunInterrupted as exc:
        kept = kept_since(final, started) if final is not None else []
        what = (f"its logs are kept in {', '.join(str(p) for p in kept)}" if kept
                else "it kept no logs (stopped before LoadGen started)")
        raise RunInterrupted(exc.signum, f"the {spec.label} run was interrupted; {what}; "
                             f"the runs that finished stay in {template.results_dir}, where "
                             "the next `harness submission` (without --rerun) reuses "
                             "them") from None
    if code not in (EXIT_OK, EXIT_INVALID):  # INVALID is a result too
        raise SubmissionError(f"the {spec.label} run failed (exit {code}); "
                              "its output is above")


def kept_since(final: Path, started: float) -> list[Path]:
    """The folders a run kept beside ``final`` (``.interrupted-*``, ``.failed-*``,
    ``.killed-*``) since ``started`` (epoch seconds)."""
    final = Path(final)
    try:
        found = [p for p in final.parent.glob(f"{final.name}.*-*")
                 if p.is_dir() and p.stat().st_mtime >= started - 1]
    except OSError:
        return []
    return sorted(found)


def tuned_user_conf(template: RunConfig, scenario_dir: Path) -> Path | None:
    """The user.conf a scenario's runs use: the builder's tuned copy when there is one."""
    tuned = scenario_dir / TUNED_CONF
    return tuned if tuned.is_file() else template.user_conf


def offline_retune(run: Path, template: RunConfig, scenario_dir: Path) -> Path | None:
    """An Offline run INVALID only because its one query ended before the minimum duration
    (the system beat the user.conf's target_qps): a user.conf with ``target_qps`` at
    ``TUNE_FACTOR`` x the samples/s LoadGen measured, or None when that is not the case."""
    try:
        log = DetailLog.read(run / DETAIL_LOG)
    except OSError:
        return None
    if log.scenario != "Offline" or log.valid or log.errors \
            or log.get("result_min_duration_met") is not False \
            or log.get("result_min_queries_met") is False:
        return None
    measured = float(log.get("result_samples_per_second") or 0)
    if measured <= 0:
        return None
    qps = round(measured * TUNE_FACTOR, 3)
    base = "" if template.user_conf is None else Path(template.user_conf).read_text("utf-8")
    text = (f"{base.rstrip()}\n\n# --- set by the submission builder: LoadGen's Offline query "
            f"ended before the minimum duration at target_qps "
            f"{log.get('effective_target_qps')}; the system did {measured:g} samples/s\n"
            f"bert.Offline.target_qps = {qps:g}\n")
    tuned = scenario_dir / TUNED_CONF
    tuned.parent.mkdir(parents=True, exist_ok=True)
    tuned.write_text(text, encoding="utf-8")
    return tuned


def run_compliance(config: RunConfig, test: str, benchmark: str
                   ) -> tuple[Path, list[compliance.Verification]]:
    """``python -m harness compliance TEST``: the compliance run (in this process), then its
    verification against the submission's runs of the same system, model and scenario;
    verify_*.txt are written beside the compliance run's ``performance/``."""
    outcome = execute(dataclasses.replace(config, mode="performance", audit=test))
    test_run = outcome.directory
    scenario_dir = test_run.parent.parent
    reference = Path(config.results_dir) / scenario_dir.relative_to(
        results_root(config.results_dir, test))
    checks = [compliance.verify_performance(test, layout.performance_run(reference), test_run)]
    if test == "TEST01":
        data = prepare_data(config.data, progress=False)
        checks.insert(0, compliance.verify_accuracy(reference / layout.ACCURACY, test_run,
                                                    benchmark, data))
    compliance.write_verifications(scenario_dir, checks)
    return scenario_dir, checks
