"""``python -m harness check SUBMISSION_DIR [--rules v1.0|v1.1]``: a BERT submission checked
the way the round's MLCommons submission checker (``tools/submission/submission-checker.py``)
checks it, and stricter.

Each line says where, what the rule is, and how the official checker of that round treats
the same finding. What the official checker counts as an error (whether it drops the result
or only logs the error) is a FAIL line; what it accepts and this checker doubts is a WARN
line that says why. Four checks go beyond the official checker and fail: a summary that
contradicts its detail log (validity, scenario, metric), a compliance verdict that the logs
in the tree contradict, and (with ``--full-logs``) a ``hash=`` line or an F1 that the full
accuracy log contradicts. (RNG seeds that are not the round's fail too; the official checker
logs them as errors.) The checker reads every file bounded and never stops on a file it
cannot parse: that file is a FAIL line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.loadgen import layout
from harness.loadgen.rulesets import DEFAULT, RuleSet, ruleset
from harness.submission.compliance_check import ComplianceChecks
from harness.submission.findings import (
    CRASHES,
    ERROR,
    FAIL,
    LOGGED,
    UNCHECKED,
    WARN,
    WARNING,
    CheckReport,
    Finding,
    ScenarioResult,
)
from harness.submission.logs import METRICS, metric_value
from harness.submission.reading import TreeFileError, read_json_object, read_text
from harness.submission.rescore import Rescorer
from harness.submission.result_check import ResultChecks


def _dirs(path: Path) -> list[str]:
    try:
        return sorted(p.name for p in path.iterdir() if p.is_dir())
    except OSError:
        return []


def _files(path: Path) -> list[str]:
    try:
        return sorted(p.name for p in path.iterdir() if p.is_file())
    except OSError:
        return []


def official_file_diff(present: list[str], required: tuple[str, ...],
                       optional: tuple[str, ...] = ()) -> list[str]:
    """The files the MLCommons checkers report as a "file list mismatch": with more files
    than required, the extra ones; otherwise the missing ones; nothing for an empty folder."""
    files = [f for f in present if f not in layout.IGNORED_FILES + optional]
    if not files:
        return []
    if len(files) > len(required):
        return sorted(set(files) - set(required))
    return sorted(set(required) - set(files))


def _int_like(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, str) and value.strip().isdigit()


class _Checker(ResultChecks, ComplianceChecks):
    def __init__(self, root: Path, full_logs: Path | None, rules: RuleSet,
                 rescore: Rescorer | None = None) -> None:
        self.root = Path(root)
        self.full_logs = None if full_logs is None else Path(full_logs)
        self.rescore = rescore
        self.rules = rules
        self.report = CheckReport(self.root, rules.name)

    def _shown(self, path: Path | str) -> str:
        if isinstance(path, Path):
            try:
                return path.relative_to(self.root).as_posix() or "."
            except ValueError:
                return str(path)
        return path

    def fail(self, path: Path | str, message: str, official: str) -> None:
        self.report.findings.append(Finding(FAIL, self._shown(path), message, official,
                                            self.rules.name))

    def warn(self, path: Path | str, message: str, official: str = UNCHECKED) -> None:
        self.report.findings.append(Finding(WARN, self._shown(path), message, official,
                                            self.rules.name))

    def unreadable(self, path: Path, error: Exception, official: str) -> None:
        """A file that cannot be read or parsed: one FAIL line naming it."""
        if isinstance(error, FileNotFoundError):
            self.fail(path, "missing", official)
        elif isinstance(error, TreeFileError):
            self.fail(path, str(error), official)
        else:
            reason = getattr(error, "strerror", None) or error
            self.fail(path, f"cannot be read ({reason})", official)

    def file_list(self, folder: Path, required: tuple[str, ...], optional: tuple[str, ...],
                  official: str) -> None:
        """Missing and extra files: those the official checker reports at ``official``
        (FAIL when it logs an error), the rest WARN."""
        present = [f for f in _files(folder) if f not in layout.IGNORED_FILES + optional]
        reported = set(official_file_diff(present, required, optional))
        missing = sorted(set(required) - set(present))
        extra = sorted(set(present) - set(required))
        for names, what in ((missing, "missing"), (extra, "files a submission does not "
                                                          "hold here:")):
            loud = [n for n in names if n in reported]
            quiet = [n for n in names if n not in reported]
            if loud:
                (self.fail if official in (ERROR, LOGGED) else self.warn)(
                    folder, f"{what} {', '.join(loud)}", official)
            if quiet:
                self.warn(folder, f"{what} {', '.join(quiet)}", UNCHECKED)

    # ---- the walk ------------------------------------------------------------------------

    def run(self) -> CheckReport:
        if not self.root.is_dir():
            self.fail(self.root, "not a folder", ERROR)
            return self.report
        divisions = _dirs(self.root)
        if not any(d in layout.DIVISIONS for d in divisions):
            self.fail(self.root, "holds no closed/ or open/ folder: give the folder that holds "
                      "<division>/<submitter>/", ERROR)
        for division in divisions:
            if division not in layout.DIVISIONS:
                if division not in (".git", ".github"):
                    self.fail(self.root / division, "not a division (closed or open)", LOGGED)
                continue
            for submitter in _dirs(self.root / division):
                self.submitter(division, submitter)
        return self.report

    def submitter(self, division: str, submitter: str) -> None:
        base = self.root / division / submitter
        results = base / layout.RESULTS
        if not results.is_dir():
            self.warn(base, "has no results/ folder: nothing to check", UNCHECKED)
            return
        for system in _dirs(results):
            description = layout.system_file(base, system)
            try:
                desc = read_json_object(description)
            except (OSError, TreeFileError) as exc:
                self.unreadable(description, exc, ERROR if isinstance(exc, FileNotFoundError)
                                else CRASHES)
                continue
            system_type = self.system(description, desc, division, submitter)
            if system_type is None:
                continue
            for benchmark in _dirs(results / system):
                self.benchmark(base, division, system, benchmark, system_type)

    def system(self, path: Path, desc: dict[str, Any], division: str,
               submitter: str) -> str | None:
        rules = self.rules
        status = str(desc.get("status", "")).lower()
        if status not in rules.system_statuses:
            self.fail(path, f"status {desc.get('status')!r} is not one of "
                      f"{', '.join(rules.system_statuses)}", ERROR)
            return None
        system_type = desc.get("system_type")
        if not isinstance(system_type, str) or system_type not in rules.system_types:
            self.fail(path, f"system_type {system_type!r} is not one of "
                      f"{', '.join(rules.system_types)}", ERROR)
            return None
        missing = [f for f in rules.system_fields if f not in desc]
        if missing:
            self.fail(path, f"fields missing from the {rules.name} system description: "
                      f"{', '.join(missing)}", ERROR)
        known = rules.system_fields + rules.system_optional_fields
        unknown = [f for f in desc if f not in known]
        if unknown:
            self.warn(path, f"fields the {rules.name} description does not know: "
                      f"{', '.join(unknown)}", WARNING)
        if str(desc.get("submitter", "")).lower() != submitter.lower():
            self.fail(path, f"submitter {desc.get('submitter')!r}, but the folder is "
                      f"{submitter!r}", ERROR)
        if desc.get("division") != division:
            self.fail(path, f"division {desc.get('division')!r}, but the folder is "
                      f"{division!r}", ERROR)
        for field in ("number_of_nodes", "host_processors_per_node",
                      "host_processor_core_count", "accelerators_per_node"):
            if field in desc and not _int_like(desc[field]):
                self.warn(path, f"{field} is {desc[field]!r}, not a whole number")
        return system_type if not missing else None

    def benchmark(self, base: Path, division: str, system: str, benchmark: str,
                  system_type: str) -> None:
        folder = base / layout.RESULTS / system / benchmark
        if benchmark not in self.rules.benchmarks:
            self.warn(folder, f"{benchmark!r} is not a BERT benchmark (bert-99 or bert-99.9): "
                      "this checker checks BERT results only; the official checker checks it "
                      "against its own rules")
            return
        scenarios = self.rules.system_types[system_type].get(benchmark)
        if scenarios is None:
            self.fail(folder, f"{benchmark} is not a benchmark of {system_type} systems in "
                      f"{self.rules.name}", ERROR)
            return
        required, optional = scenarios
        present = []
        for folder_name in _dirs(folder):
            scenario = layout.scenario_of(folder_name)
            if division == "closed" and scenario not in required + optional:
                self.warn(folder / folder_name, f"{scenario} is neither required nor optional "
                          f"for {benchmark} on {system_type} systems: ignored", WARNING)
                continue
            present.append(scenario)
            self.scenario(base, division, system, benchmark, folder_name, scenario)
        missing = [s for s in required if s not in present]
        if missing and division == "closed":
            self.fail(folder, f"required scenario(s) missing for {system_type} systems: "
                      f"{', '.join(missing)}", ERROR)

    def scenario(self, base: Path, division: str, system: str, benchmark: str,
                 folder_name: str, scenario: str) -> None:
        result = layout.result_dir(base, system, benchmark, folder_name)
        self.measurements(base, system, benchmark, folder_name, scenario)
        f1 = self.accuracy(result / layout.ACCURACY, benchmark, division)
        perf_dir = layout.performance_run(result)
        log = self.performance(result, perf_dir, benchmark, scenario)
        verdicts: dict[str, str] = {}
        if division == "closed":
            verdicts = self.compliance(layout.compliance_dir(base, system, benchmark,
                                                             folder_name),
                                       perf_dir, benchmark)
        metric = METRICS.get(scenario)
        self.report.results.append(ScenarioResult(
            self._shown(result), scenario, metric.name if metric else None,
            metric_value(log) if log else None, log.valid if log else None, f1,
            self.rules.accuracy_target(benchmark), verdicts))

    # ---- measurements ------------------------------------------------------------------

    def measurements(self, base: Path, system: str, benchmark: str, folder_name: str,
                     scenario: str) -> None:
        folder = layout.measurements_dir(base, system, benchmark, folder_name)
        if not folder.is_dir():
            self.fail(folder, "missing: the measurements of this result", ERROR)
            return
        files = _files(folder)
        for name in self.rules.required_measurement_files:
            if name not in files:
                self.fail(folder / name, "missing", LOGGED)
        # <system>_<implementation>_<scenario>.json; like the official checker, any
        # <system>*.json will do (the implementation is then the rest of its name)
        name, end = None, 0
        for suffix in (f"_{folder_name}.json", f"_{scenario}.json", ".json"):
            found = [f for f in files if f.startswith(system) and f.endswith(suffix)]
            if found:
                name, end = found[0], len(suffix)
                break
        if name is None:
            self.fail(folder, f"missing {system}_<implementation>_{scenario}.json", LOGGED)
            return
        try:
            fields = read_json_object(folder / name)
        except (OSError, TreeFileError) as exc:
            self.unreadable(folder / name, exc, CRASHES)
            return
        missing = [f for f in self.rules.implementation_fields if f not in fields]
        if missing:
            self.fail(folder / name, f"fields missing: {', '.join(missing)}", LOGGED)
        implementation = name[len(system) + 1: len(name) - end] if len(name) > len(system) \
            + end else ""
        code = base / layout.CODE / benchmark
        if code.is_file():  # a file naming the folder that holds the code (code/bert-99: bert)
            try:
                code = base / layout.CODE / read_text(code, 4096).strip()
            except (OSError, TreeFileError) as exc:
                self.unreadable(code, exc, CRASHES)
                return
        if not code.exists():
            self.fail(code, f"missing: the code of {benchmark}", LOGGED)
        elif code.is_dir() and implementation and not (code / implementation).is_dir():
            self.warn(code, f"holds no folder for implementation {implementation!r} (named by "
                      f"{name}); the code is taken to be per benchmark")


def check_submission(root: Path, full_logs: Path | None = None, rules: str = DEFAULT,
                     rescore: Rescorer | None = None) -> CheckReport:
    """Check the submission folder ``root`` (the one holding ``closed/`` or ``open/``) under
    the round ``rules`` ("v1.0", "v1.1"); an unknown round is a ConfigError. With
    ``full_logs`` and ``rescore``, each full accuracy log is scored again and must give its
    ``accuracy.txt``'s F1."""
    report = _Checker(root, full_logs, ruleset(rules), rescore).run()
    if full_logs is None:
        report.notes.append("the accuracy logs' hash= lines were not checked against the full "
                            "logs (give --full-logs)")
    return report
