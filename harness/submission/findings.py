"""What the checker reports: FAIL and WARN lines, each with how the round's MLCommons
checker treats the same finding, the results it read, and notes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from harness.loadgen.rulesets import DEFAULT

FAIL, WARN = "FAIL", "WARN"

# How the round's MLCommons submission checker treats a finding (the tag of each line); the
# harness fails what the official checker counts as an error, and warns about the rest.
ERROR = "error, drops the result"
LOGGED = "logs an error, keeps the result"
WARNING = "warning"
INFO = "info only"
UNCHECKED = "not checked"
NOT_ACTED_ON = "logs nothing: it keeps the last compliance test's performance verdict only"
CRASHES = "stops with a Python exception"


@dataclasses.dataclass(frozen=True)
class Finding:
    level: str  # FAIL or WARN
    path: str
    message: str
    official: str  # ERROR, LOGGED, ...
    rules: str  # the round, for the tag: "v1.0"

    def text(self) -> str:
        return f"{self.level} {self.path}: {self.message} [{self.rules} checker: {self.official}]"


@dataclasses.dataclass(frozen=True)
class ScenarioResult:
    path: str
    scenario: str
    metric: str | None
    value: float | None
    valid: bool | None
    f1: float | None
    target: float | None
    compliance: dict[str, str]

    def text(self) -> str:
        parts = [f"{self.path}:"]
        if self.value is not None:
            parts.append(f"{self.value:,.2f} {self.metric}"
                         + ("" if self.valid else " (INVALID)") + ";")
        if self.f1 is not None and self.target is not None:
            parts.append(f"F1 {self.f1:.3f} (target {self.target:.3f});")
        if self.compliance:
            parts.append("compliance " + ", ".join(f"{t} {v}" for t, v in
                                                   self.compliance.items()))
        return " ".join(parts)


@dataclasses.dataclass
class CheckReport:
    root: Path
    rules: str = DEFAULT
    findings: list[Finding] = dataclasses.field(default_factory=list)
    results: list[ScenarioResult] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def failures(self) -> list[Finding]:
        return [f for f in self.findings if f.level == FAIL]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level == WARN]

    @property
    def ok(self) -> bool:
        """No FAIL line (WARN lines are what the official checker accepts)."""
        return not self.failures

    def text(self) -> str:
        lines = [f"MLPerf Inference {self.rules} submission check (BERT): {self.root}"]
        lines += [f.text() for f in self.failures] + [f.text() for f in self.warnings]
        lines += [f"note: {note}" for note in self.notes]
        if self.results:
            lines.append("results:")
            lines += [f"  {result.text()}" for result in self.results]
        by_kind: dict[str, int] = {}
        for finding in self.failures:
            by_kind[finding.official] = by_kind.get(finding.official, 0) + 1
        kinds = "; ".join(f"{count} {kind}" for kind, count in by_kind.items())
        verdict = ("every check holds" if self.ok else
                   f"{len(self.failures)} failure(s) (how the MLCommons {self.rules} checker "
                   f"treats them: {kinds})")
        lines.append(f"summary: {len(self.results)} result(s); {verdict}; "
                     f"{len(self.warnings)} warning(s)")
        return "\n".join(lines) + "\n"
