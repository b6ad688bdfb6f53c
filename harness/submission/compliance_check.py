"""The checker's compliance part: TEST01 and TEST05 of each closed-division result, held to
what the official checker asks and to what the logs in the tree show.

The official checker of v1.0 and v1.1 reads each test's ``verify_performance.txt`` but keeps
the verdict of the last test only (TEST05 for BERT), accepts a ``verify_accuracy.txt`` that
says TEST FAIL, and never reads the logs behind a verdict. Here each verdict is computed
again from the logs in the tree, as MLCommons' ``verify_performance.py`` computes it (both
runs VALID, same scenario, the metric within 5% (TEST05) or 10% (TEST01), 20% for a
SingleStream p90 of at most 200 us); a verify file that the logs contradict fails.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from harness.loadgen import layout
from harness.submission.findings import INFO, LOGGED, NOT_ACTED_ON, UNCHECKED, WARNING
from harness.submission.logs import DetailLog, metric_value
from harness.submission.reading import TreeFileError, read_text

if TYPE_CHECKING:
    from harness.loadgen.rulesets import RuleSet
    from harness.submission.findings import CheckReport

F1_FIRST_LINE = re.compile(r'^\{"exact_match":\s*[\d.]+,\s*"f1":\s*([\d.]+)\}')
LAST_TEST = "TEST05"  # the one whose performance verdict the official checker keeps


class ComplianceChecks:
    """Mixed into the checker: needs ``fail``, ``warn``, ``unreadable``, ``file_list``,
    ``truncated_log``, ``rules`` and ``report``."""

    rules: RuleSet
    report: CheckReport

    def compliance(self, folder: Path, perf_dir: Path, benchmark: str) -> dict[str, str]:
        verdicts: dict[str, str] = {}
        if not folder.is_dir():
            self.fail(folder, f"missing: the compliance tests ({', '.join(self.rules.audits)})"
                      " of this result", LOGGED)
            return verdicts
        for test in self.rules.audits:
            test_dir = folder / test
            if not test_dir.is_dir():
                self.fail(test_dir, f"missing: {test} is required for BERT in the closed "
                          "division", LOGGED)
                verdicts[test] = "missing"
                continue
            verdicts[test] = self.compliance_performance(test, test_dir, perf_dir)
            if test == "TEST01":
                accuracy = self.compliance_accuracy(test_dir, benchmark)
                verdicts[test] = "PASS" if verdicts[test] == accuracy == "PASS" else "FAIL"
        return verdicts

    def _verify_text(self, path: Path) -> str | None:
        try:
            return read_text(path)
        except (OSError, TreeFileError) as exc:
            self.unreadable(path, exc, LOGGED)
            return None

    def compliance_performance(self, test: str, test_dir: Path, perf_dir: Path) -> str:
        path = test_dir / layout.VERIFY_PERFORMANCE
        text = self._verify_text(path)
        said_pass = bool(text and "TEST PASS" in text)
        run = layout.performance_run(test_dir)
        if not run.is_dir():
            self.fail(run, "missing: the compliance run's logs", LOGGED)
            return "FAIL"
        self.file_list(run, layout.PERFORMANCE_FILES, (), INFO)
        official = LOGGED if test == LAST_TEST else NOT_ACTED_ON
        again = self.recompute(test, perf_dir, run)
        if text is not None and not said_pass:
            message = f"{test} did not pass: {_fail_line(text)}"
            if official == LOGGED:
                self.fail(path, message, official)
            else:
                self.warn(path, message, official)
        elif text is not None and again is not None:
            self.fail(path, f"says TEST PASS, but the logs in the tree say: {again}",
                      UNCHECKED)
        return "PASS" if said_pass and again is None else "FAIL"

    def recompute(self, test: str, perf_dir: Path, run: Path) -> str | None:
        """Why the logs in the tree fail ``test`` (None: they pass it)."""
        logs = {}
        for role, folder in (("submission", perf_dir), (test, run)):
            try:
                logs[role] = DetailLog.read(folder / layout.DETAIL_LOG)
            except (OSError, TreeFileError) as exc:
                return f"the {role} run's detail log cannot be read ({exc})"
        reference, tested = logs["submission"], logs[test]
        if reference.valid is not True or tested.valid is not True:
            return "a run is INVALID" if False in (reference.valid, tested.valid) \
                else "a run's log says neither VALID nor INVALID"
        if reference.scenario != tested.scenario:
            return f"the scenarios differ ({tested.scenario} vs {reference.scenario})"
        ref, got = metric_value(reference), metric_value(tested)
        if ref is None or got is None:
            return "a run's log has no metric"
        share = self.rules.audits[test].tolerance
        if reference.scenario == "SingleStream" and ref <= self.rules.single_stream_relaxed_ns:
            share = self.rules.single_stream_relaxed_tolerance
        if not ref * (1 - share) < got < ref * (1 + share):
            return f"its metric {got:g} is not within {share:.0%} of the submission's {ref:g}"
        self.audit_settings(test, run, reference, tested)
        return None

    def audit_settings(self, test: str, run: Path, reference: DetailLog,
                       tested: DetailLog) -> None:
        """The settings the compliance run shows against its audit's (WARN: the official
        checker and verify_performance.py do not look)."""
        audit = self.rules.audits[test]
        expected = {"effective_accuracy_log_rng_seed": audit.accuracy_log_rng_seed,
                    "effective_accuracy_log_sampling_target": audit.accuracy_log_sampling_target}
        for key in ("qsl_rng_seed", "sample_index_rng_seed", "schedule_rng_seed"):
            expected[f"effective_{key}"] = getattr(audit.seeds, key) if audit.seeds \
                else reference.get(f"effective_{key}")
        wrong = [f"{key} {tested.get(key)} (expected {value})" for key, value in expected.items()
                 if value is not None and tested.get(key) != value]
        if wrong:
            self.warn(run / layout.DETAIL_LOG, f"the {test} run was not made with its audit's "
                      f"settings: {', '.join(wrong)}")

    def compliance_accuracy(self, test_dir: Path, benchmark: str) -> str:
        text = self._verify_text(test_dir / layout.VERIFY_ACCURACY)
        accuracy = test_dir / layout.ACCURACY
        if not accuracy.is_dir():
            self.fail(test_dir, "has no accuracy folder: TEST01's accuracy log is missing",
                      LOGGED)
            return "FAIL"
        passed = bool(text and "TEST PASS" in text)
        self.file_list(accuracy, layout.TEST01_ACCURACY_FILES if passed else
                       layout.TEST01_ACCURACY_FILES + layout.TEST01_FALLBACK_FILES, (), INFO)
        digest = None
        try:
            lines = read_text(accuracy / layout.ACCURACY_TXT).splitlines()
        except (OSError, TreeFileError):
            lines = []  # the file list says so
        for line in lines:
            if match := re.match(r"^hash=([\w\d]+)$", line):
                digest = match.group(1)
        if lines and digest is None:
            self.warn(accuracy / layout.ACCURACY_TXT, "no hash= line for TEST01's accuracy log")
        if (accuracy / layout.ACCURACY_LOG).exists():
            self.truncated_log(accuracy / layout.ACCURACY_LOG, digest, UNCHECKED)
        if passed or text is None:
            return "PASS" if passed else "FAIL"
        # TEST FAIL: the responses differ between modes; TEST01 Part III passes the test when
        # their accuracy matches the accuracy run's on the same samples
        scores = [self._first_f1(accuracy / name) for name in layout.TEST01_FALLBACK_FILES]
        why = f"verify_accuracy.txt says {_fail_line(text)}"
        if None in scores:
            self.warn(accuracy, f"{why}, and baseline_accuracy.txt and compliance_accuracy.txt "
                      "do not both give an F1 to pass it on accuracy (TEST01 Part III); "
                      "the official checker accepts a failed TEST01 accuracy", WARNING)
            return "FAIL"
        share = self.rules.test01_accuracy_tolerance[benchmark]
        base, test = scores
        if abs(test - base) > share * base:
            self.warn(accuracy, f"{why}, and TEST01's F1 {test:.4f} is not within {share:.1%} "
                      f"of the accuracy run's {base:.4f} on the same samples; the official "
                      "checker accepts a failed TEST01 accuracy", WARNING)
            return "FAIL"
        return "PASS"

    @staticmethod
    def _first_f1(path: Path) -> float | None:
        try:
            first = read_text(path).splitlines()[:1]
        except (OSError, TreeFileError):
            return None
        match = F1_FIRST_LINE.match(first[0]) if first else None
        return float(match.group(1)) if match else None

    if TYPE_CHECKING:  # provided by the checker
        def fail(self, path: Path | str, message: str, official: str) -> None: ...
        def warn(self, path: Path | str, message: str, official: str = UNCHECKED) -> None: ...
        def unreadable(self, path: Path, error: Exception, official: str) -> None: ...
        def file_list(self, folder: Path, required: tuple[str, ...],
                      optional: tuple[str, ...], official: str) -> None: ...
        def truncated_log(self, path: Path, digest: str | None, official: str) -> None: ...

def _fail_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if "TEST FAIL" in line),
                "no TEST PASS line")
