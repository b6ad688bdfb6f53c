"""A sweep's progress bar: runs done of runs planned, the current point, and an ETA.

tqdm's own rate would count points finished by an earlier invocation (recalled at once), so
the ETA here is the mean time of the runs this invocation timed, times the runs left; a
peak search's total grows (or settles) as it learns how many probes it needs.
"""

from __future__ import annotations

import sys

from tqdm import tqdm

from harness.sweep.launch import PointRun


class Progress:
    """A tqdm bar over runs: the current point, and an ETA from the runs timed so far."""

    def __init__(self, name: str, total: int, enabled: bool) -> None:
        self.bar = tqdm(total=total, desc=name, unit="run", disable=not enabled,
                        dynamic_ncols=True, file=sys.stderr,
                        bar_format="{desc}: {n_fmt}/{total_fmt} runs |{bar}| {elapsed}{postfix}")
        self.timed: list[float] = []

    def start(self, label: str) -> None:
        self.bar.set_postfix_str(f"now {label}{self._eta()}")

    def finish(self, run: PointRun) -> None:
        if not run.resumed and run.seconds is not None:
            self.timed.append(run.seconds)
        self.bar.update(1)
        if run.status == "failed":
            self.bar.write(f"point {run.point.label} failed: {run.error}")

    def grow(self, remaining: int) -> None:
        """At least ``remaining`` runs are still to come."""
        self.settle(max(remaining, (self.bar.total or 0) - self.bar.n))

    def settle(self, remaining: int) -> None:
        """Exactly ``remaining`` runs are still to come (as far as is known)."""
        total = self.bar.n + remaining
        if total != self.bar.total:
            self.bar.total = total
            self.bar.refresh()

    def _eta(self) -> str:
        left = (self.bar.total or 0) - self.bar.n
        if not self.timed or left <= 0:
            return ""
        seconds = sum(self.timed) / len(self.timed) * left
        return f" | ETA {int(seconds // 60)}m{int(seconds % 60):02d}s"

    def write(self, text: str) -> None:
        self.bar.write(text)

    def close(self) -> None:
        self.settle(0)
        self.bar.set_postfix_str("")
        self.bar.close()
