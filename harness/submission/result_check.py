"""The checker's result part: each result's accuracy run and performance run, held to the
round's rules (what the official checker counts as errors), and to the logs behind the files
that state them: a summary that contradicts its detail log, a ``hash=`` or an F1 that the full
accuracy log (``--full-logs``) contradicts."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING

from common.errors import HarnessError
from common.files import file_sha256
from harness.loadgen import layout
from harness.submission.findings import ERROR, INFO, LOGGED, UNCHECKED
from harness.submission.logs import DetailLog, Summary, metric_value
from harness.submission.reading import TreeFileError, head, read_text
from harness.submission.rescore import NoScoringData, Rescorer

if TYPE_CHECKING:
    from harness.loadgen.rulesets import RuleSet

F1_LINE = re.compile(r'^\{"exact_match":\s*[\d.]+,\s*"f1":\s*([\d.]+)\}')
HASH_LINE = re.compile(r"^hash=([\w\d]+)$")
SHORT_DURATION_MS = 10_000  # the harness's --short minimum duration
# the detail-log keys the official checker reads from a performance run
PERFORMANCE_KEYS = ("effective_performance_sample_count", "effective_scenario",
                    "effective_min_query_count", "effective_samples_per_query",
                    "effective_min_duration_ms", "result_99.00_percentile_latency_ns")


class ResultChecks:
    """Mixed into the checker, which provides ``root``, ``rules``, ``full_logs``,
    ``rescore``, ``report`` and the reporting methods."""

    root: Path
    rules: RuleSet
    full_logs: Path | None
    rescore: Rescorer | None

    # ---- accuracy ----------------------------------------------------------------------

    def accuracy(self, folder: Path, benchmark: str, division: str) -> float | None:
        path = folder / layout.ACCURACY_TXT
        try:
            text = read_text(path)
        except (OSError, TreeFileError) as exc:
            self.unreadable(path, exc, ERROR)
            return None
        self.file_list(folder, layout.ACCURACY_FILES, (), LOGGED)
        f1 = digest = None
        for line in text.splitlines():
            if f1 is None and (match := F1_LINE.match(line)):
                f1 = float(match.group(1))
            if digest is None and (match := HASH_LINE.match(line)):
                digest = match.group(1)
        target = self.rules.accuracy_target(benchmark)
        if f1 is None:
            self.fail(path, 'no {"exact_match": ..., "f1": ...} line', ERROR)
        elif f1 < target:
            message = (f"F1 {f1:.4f} is below the {benchmark} target {target:.4f} "
                       f"({self.rules.benchmarks[benchmark]:.1%} of the fp32 reference "
                       f"{self.rules.reference_f1})")
            if division == "closed":
                self.fail(path, message, ERROR)
            else:
                self.warn(path, message + "; the open division may submit it", INFO)
        features = re.search(r"features logged: (\d+) of (\d+)", text)
        if features and int(features.group(1)) < self.rules.dev_set_features:
            self.warn(path, f"the accuracy run logged {features.group(1)} features; a "
                      f"submission's covers the dev set's {self.rules.dev_set_features}")
        if digest is None:
            self.fail(path, "no hash= line (the sha256 of the full mlperf_log_accuracy.json)",
                      ERROR)
        elif not re.fullmatch(r"[0-9a-f]{64}", digest):
            self.warn(path, f"hash={digest} is not a sha256")
        self.truncated_log(folder / layout.ACCURACY_LOG, digest, ERROR)
        if f1 is not None:
            questions = re.search(r"^questions: (\d+)", text, re.MULTILINE)
            self.rescored(folder / layout.ACCURACY_TXT, f1,
                          int(questions.group(1)) if questions else None)
        log = self.detail_log(folder / layout.DETAIL_LOG, ERROR)
        if log is not None:
            if log.get("effective_test_mode") != "AccuracyOnly":
                self.warn(folder / layout.DETAIL_LOG, f"test mode "
                          f"{log.get('effective_test_mode')}, not AccuracyOnly")
            total = log.get("qsl_reported_total_count")
            if total != self.rules.dev_set_features:
                self.warn(folder / layout.DETAIL_LOG, f"the accuracy run's QSL held {total} "
                          f"features; a submission's covers the dev set's "
                          f"{self.rules.dev_set_features}")
        return f1

    def rescored(self, path: Path, f1: float, questions: int | None) -> None:
        """With --full-logs, the full accuracy log scored again must give accuracy.txt's F1
        (to the 4 decimals real trees print)."""
        if self.full_logs is None or self.rescore is None:
            return
        full = self.full_logs / path.parent.relative_to(self.root) / layout.ACCURACY_LOG
        if not full.is_file():
            return  # truncated_log says so
        try:
            score = self.rescore(full, questions)
        except NoScoringData as exc:
            self.report.notes.append(f"the full accuracy logs were not scored again: {exc}")
            self.rescore = None
            return
        except (HarnessError, OSError, ValueError) as exc:
            self.fail(full, f"cannot be scored ({exc})", UNCHECKED)
            return
        if abs(score - f1) > 5e-4:
            self.fail(path, f"F1 {f1:.4f}, but the full accuracy log {full} scores "
                      f"{score:.4f}", UNCHECKED)

    def truncated_log(self, path: Path, digest: str | None, official: str) -> None:
        try:
            size = path.stat().st_size
        except OSError as exc:
            self.unreadable(path, exc, official)
            return
        limit = self.rules.max_accuracy_log_bytes
        if size > limit:
            self.fail(path, f"{size} bytes: not truncated (a submitted accuracy log is at most "
                      f"{limit} bytes; the full one stays outside the tree)", official)
        if head(path, 1) != b"[":
            self.warn(path, "does not start like a LoadGen accuracy log ('[')")
        if self.full_logs is not None and digest is not None:
            full = self.full_logs / path.relative_to(self.root)
            if not full.is_file():
                self.warn(full, "the full accuracy log is not there")
            elif file_sha256(full) != digest:
                self.fail(path, f"hash={digest} is not the sha256 of the full log {full}",
                          UNCHECKED)

    def detail_log(self, path: Path, official: str) -> DetailLog | None:
        try:
            log = DetailLog.read(path)
        except (OSError, TreeFileError) as exc:
            self.unreadable(path, exc, official)
            return None
        for error in log.errors:
            self.fail(path, f"LoadGen error: {error}", official)
        return log

    # ---- performance -------------------------------------------------------------------

    def performance(self, result: Path, folder: Path, benchmark: str,
                    scenario: str) -> DetailLog | None:
        if not folder.is_dir():
            self.fail(folder, "missing: the performance run", ERROR)
            return None
        power = (result / layout.PERFORMANCE / layout.POWER).is_dir()
        required = layout.PERFORMANCE_FILES + (layout.POWER_PERFORMANCE_FILES if power else ())
        self.file_list(folder, required, layout.PERFORMANCE_OPTIONAL_FILES, LOGGED)
        log = self.detail_log(folder / layout.DETAIL_LOG, ERROR)
        if log is None:
            return None
        path = folder / layout.DETAIL_LOG
        absent = [k for k in PERFORMANCE_KEYS if not isinstance(log.get(k), (int, float, str))]
        if absent or metric_value(log) is None:
            self.fail(path, f"not a LoadGen performance log: no {', '.join(absent) or 'metric'}",
                      ERROR)
            return None
        self.summary(folder, log)
        rules = self.rules
        if log.scenario != scenario:
            self.warn(path, f"the log's scenario is {log.scenario}, the folder's {scenario}")
        if log.get("effective_test_mode") != "PerformanceOnly":
            self.warn(path, f"test mode {log.get('effective_test_mode')}, not PerformanceOnly")
        if not log.valid:
            self.fail(path, f"LoadGen says INVALID ({log.invalid_reasons()})", ERROR)
        count = log.get("effective_performance_sample_count")
        if not isinstance(count, int) or count < rules.performance_sample_count:
            self.fail(path, f"performance_sample_count {count}: {rules.name} requires at least "
                      f"{rules.performance_sample_count} for BERT", ERROR)
        for key, wanted in rules.seeds.to_json().items():
            found = log.get(f"effective_{key}")
            if found != wanted:
                self.fail(path, f"{key} is {found}, the {rules.name} seed is {wanted}", LOGGED)
        short = " (the harness's --short setting: build without --short, SHORT=0)"
        if scenario == "Server":
            p99 = log.get("result_99.00_percentile_latency_ns")
            bound = rules.server_latency_ns(benchmark)
            if not isinstance(p99, (int, float)) or p99 > bound:
                self.fail(path, f"99th percentile latency {p99} ns is over the {bound} ns "
                          f"({bound // 1_000_000} ms) bound", LOGGED)
        minimum = rules.min_query_count.get(scenario, 0)
        queries = log.get("effective_min_query_count")
        if scenario != "Offline" and (not isinstance(queries, int) or queries < minimum):
            self.fail(path, f"min_query_count {queries}: {rules.name} requires at least "
                      f"{minimum} {scenario} queries" + (short if queries == 1 else ""), LOGGED)
        samples = log.get("effective_samples_per_query")
        if scenario == "Offline" and (not isinstance(samples, int) or samples < minimum):
            self.fail(path, f"the Offline query held {samples} samples: {rules.name} requires "
                      f"at least {minimum}" + (short if queries == 1 else ""), LOGGED)
        duration = log.get("effective_min_duration_ms")
        if not isinstance(duration, int) or duration < rules.min_duration_ms:
            self.fail(path, f"min_duration {duration} ms: {rules.name} requires "
                      f"{rules.min_duration_ms} ms ({rules.min_duration_ms // 1000} s)"
                      + (short if duration == SHORT_DURATION_MS else ""), LOGGED)
        return log

    def summary(self, folder: Path, log: DetailLog) -> None:
        """The summary must say what its detail log says (the official checker reads one of
        them only; a tree where they disagree was edited by hand)."""
        path = folder / layout.SUMMARY_LOG
        try:
            summary = Summary.read(path)
        except FileNotFoundError:
            return  # the file list says so
        except (OSError, TreeFileError) as exc:
            self.unreadable(path, exc, UNCHECKED)
            return
        said = {"validity": summary.valid, "scenario": summary.scenario}
        logged = {"validity": log.valid, "scenario": log.scenario}
        for what in said:
            if said[what] != logged[what]:
                shown = {True: "VALID", False: "INVALID", None: "nothing"}
                a, b = ((shown[said[what]], shown[logged[what]]) if what == "validity"
                        else (said[what], logged[what]))
                self.fail(path, f"the summary's {what} is {a}, the detail log's {b}",
                          UNCHECKED)
        ours, theirs = summary.metric(), metric_value(log)
        if theirs is not None and (ours is None or not math.isclose(
                ours, theirs, rel_tol=1e-4, abs_tol=0.01)):
            self.fail(path, f"the summary's metric is {ours}, the detail log's {theirs:g}",
                      UNCHECKED)

    if TYPE_CHECKING:  # provided by the checker
        from harness.submission.findings import CheckReport

        report: CheckReport

        def fail(self, path: Path | str, message: str, official: str) -> None: ...
        def warn(self, path: Path | str, message: str, official: str = UNCHECKED) -> None: ...
        def unreadable(self, path: Path, error: Exception, official: str) -> None: ...
        def file_list(self, folder: Path, required: tuple[str, ...],
                      optional: tuple[str, ...], official: str) -> None: ...
