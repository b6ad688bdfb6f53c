"""Peak finding: the highest Server target QPS whose run is VALID, and the best Offline point.

Server (``method = "bisect"``, the default): each probe is a whole run at one target QPS,
judged by LoadGen's verdict (p99 within the latency bound, 130 ms for BERT, and its minimum
duration, query count and early-stopping checks). Bracketing from ``start`` multiplies (or
divides) by ``growth`` until the verdict flips, so the peak lies between the highest VALID
and the lowest INVALID rate; bisection then halves that bracket until it is at most
``tolerance`` QPS wide. The peak is the bracket's VALID end, so it is a rate that passed,
within ``tolerance`` of one that failed. Every probe is kept (its own run folder) and plotted.

``method = "loadgen"``: LoadGen's ``FindPeakPerformance`` mode does the same search inside
one run (``mode = 3`` in the point's user.conf): it needs ``start`` to pass, widens by
doubling, bisects to 0.1 QPS, and judges each probe by the latency bound alone (not the
minimum duration, query count or early stopping), reporting the full figures of the final
rate only. :func:`loadgen_probes` reads its probes back from the detail log.

Offline: the best batch size and threads are the points' (a grid) highest samples/s among
VALID runs (:func:`best_point`).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from common.errors import HarnessError
from harness.loadgen.results import mllog_entries
from harness.sweep.spec import PeakSettings


@dataclasses.dataclass(frozen=True)
class Probe:
    """One rate tried, in order: its verdict and the search phase that chose it."""

    qps: float
    valid: bool
    phase: str  # "start", "bracket" or "bisect"


@dataclasses.dataclass(frozen=True)
class PeakResult:
    """The highest VALID rate found, and the lowest INVALID one above it."""

    peak: float | None
    ceiling: float | None
    probes: tuple[Probe, ...]
    tolerance: float
    note: str = ""
    group: str = ""  # the other axes' values when the sweep searches several groups

    @property
    def converged(self) -> bool:
        return self.peak is not None and self.ceiling is not None \
            and self.ceiling - self.peak <= self.tolerance + 1e-9

    def text(self) -> str:
        head = f"{self.group}: " if self.group else ""
        if self.peak is None:
            return head + "no VALID rate found" + (f" ({self.note})" if self.note else "")
        above = f"; {_qps(self.ceiling)} QPS was INVALID" if self.ceiling is not None else ""
        within = f", within {_qps(self.ceiling - self.peak)} QPS (tolerance " \
            f"{_qps(self.tolerance)})" if self.converged and self.ceiling is not None else ""
        note = f"; {self.note}" if self.note else ""
        return (f"{head}peak {_qps(self.peak)} QPS VALID{above}{within}; "
                f"{len(self.probes)} probes{note}")

    def to_json(self) -> dict[str, Any]:
        return {"group": self.group, "peak_qps": self.peak, "ceiling_qps": self.ceiling,
                "tolerance": self.tolerance, "converged": self.converged, "note": self.note,
                "text": self.text(),
                "probes": [dataclasses.asdict(p) for p in self.probes]}


def _qps(value: float) -> str:
    return f"{value:.6g}"


def resolution(tolerance: float) -> int:
    """Decimals the probes' rates are rounded to: a tenth of the tolerance or finer."""
    return max(0, math.ceil(-math.log10(tolerance / 10)))


class SearchStopped(Exception):
    """Raised by a verdict (or the budget) to end a search early; the search returns what
    it found so far, with the message as its note."""


class _OverBudget(SearchStopped):
    """The next probe would not fit the search's time budget."""


def search_peak(verdict: Callable[[float], bool], settings: PeakSettings,
                start: float, fits: Callable[[float], str | None] | None = None) -> PeakResult:
    """Bracket then bisect; ``verdict(qps)`` runs (or recalls) a probe: True when VALID.

    ``fits(qps)``: None when a probe at ``qps`` QPS fits the search's time budget, else
    why not; the search then stops with the best VALID rate so far, its note saying why
    (the first probe always runs); a verdict may raise :class:`SearchStopped` likewise.
    ``start`` is tried as given (it may be a measured rate);
    the other rates are rounded to a tenth of the tolerance.
    """
    if not start > 0:
        raise HarnessError(f"the peak search's start rate must be above 0 QPS, got {start}")
    search = _Search(verdict, settings, fits)
    try:
        return search.run(start)
    except SearchStopped as stop:
        return search.result(str(stop))


class _Search:
    """One bracketing and bisection; ``low`` and ``high`` are the VALID and INVALID ends
    so far, so that a search stopped by its budget still names the best VALID rate."""

    def __init__(self, verdict: Callable[[float], bool], settings: PeakSettings,
                 fits: Callable[[float], str | None] | None) -> None:
        self.verdict = verdict
        self.settings = settings
        self.fits = fits
        self.decimals = resolution(settings.tolerance)
        self.probes: list[Probe] = []
        self.low: float | None = None
        self.high: float | None = None

    def probe(self, qps: float, phase: str) -> bool:
        if self.fits is not None and self.probes and (why := self.fits(qps)) is not None:
            raise _OverBudget(f"stopped before a probe at {why}")
        valid = bool(self.verdict(qps))
        self.probes.append(Probe(qps, valid, phase))
        if valid:
            self.low = qps
        else:
            self.high = qps
        return valid

    def result(self, note: str = "") -> PeakResult:
        return PeakResult(self.low, self.high, tuple(self.probes), self.settings.tolerance,
                          note)

    def run(self, start: float) -> PeakResult:
        settings, decimals = self.settings, self.decimals
        if self.probe(start, "start"):
            while self.high is None:
                if len(self.probes) >= settings.max_probes:
                    return self.result(f"stopped after {len(self.probes)} probes while "
                                       "bracketing; raise [peak] max_probes or start")
                self.probe(round(self.low * settings.growth, decimals), "bracket")
        else:
            while self.low is None:
                rate = round(self.high / settings.growth, decimals)
                if rate < settings.min_qps or rate <= 0:
                    return self.result(f"every rate down to {_qps(self.high)} QPS was INVALID "
                                       f"([peak] min_qps = {_qps(settings.min_qps)})")
                if len(self.probes) >= settings.max_probes:
                    return self.result(f"stopped after {len(self.probes)} probes while "
                                       "bracketing; raise [peak] max_probes")
                self.probe(rate, "bracket")
        while self.high - self.low > settings.tolerance + 1e-9:
            if len(self.probes) >= settings.max_probes:
                return self.result(f"stopped after {len(self.probes)} probes; raise [peak] "
                                   "max_probes or tolerance")
            middle = round((self.low + self.high) / 2, decimals)
            if middle <= self.low or middle >= self.high:
                break
            self.probe(middle, "bisect")
        return self.result()


def planned_probes(settings: PeakSettings, start: float, guess: float | None = None) -> int:
    """About how many probes a search takes (for the progress bar's total): two to bracket
    (more when ``guess`` is far from ``start``) and the bisection to the tolerance."""
    bracket = 2
    if guess:
        bracket = 1 + max(1, math.ceil(abs(math.log(guess / start)) / math.log(settings.growth)))
    width = start * (settings.growth - 1)
    bisect = max(0, math.ceil(math.log2(max(width, 1e-9) / settings.tolerance)))
    return min(settings.max_probes, bracket + bisect)


# ---- LoadGen's own FindPeakPerformance mode --------------------------------------------

_BASE = re.compile(r"Check validity of the base settings field: ([\d.]+)")
_WIDEN = re.compile(r"FindBoundaries: Checking fields \[([\d.]+), ([\d.]+)\)")
_FOUND_BOUNDS = re.compile(r"Found boundaries: \[([\d.]+), ([\d.]+)\)")
_MID = re.compile(r"Testing the mid value of bounds \[([\d.]+), ([\d.]+)\): ([\d.]+)")
_PEAK = re.compile(r"Found peak performance field: ([\d.]+)")
_LOWER_FAILS = "Initial lower bound does not satisfy"


def loadgen_probes(detail_log: Path, tolerance: float = 0.1) -> PeakResult:
    """The probes of a FindPeakPerformance run, from the messages LoadGen logs: each rate
    tried is named when it starts, and the next message says whether it passed."""
    probes: list[Probe] = []
    pending: tuple[float, str] | None = None
    peak: float | None = None

    def settle(valid: bool) -> None:
        nonlocal pending
        if pending is not None:
            probes.append(Probe(pending[0], valid, pending[1]))
            pending = None

    for message in _messages(detail_log):
        if found := _BASE.search(message):
            pending = (float(found.group(1)), "start")
        elif found := _WIDEN.search(message):
            settle(True)  # the lower end passed: it is widened from
            pending = (float(found.group(2)), "bracket")
        elif _FOUND_BOUNDS.search(message):
            settle(False)
        elif found := _MID.search(message):
            if pending is not None:
                settle(math.isclose(pending[0], float(found.group(1)), rel_tol=1e-6))
            pending = (float(found.group(3)), "bisect")
        elif found := _PEAK.search(message):
            peak = float(found.group(1))
            if pending is not None:
                settle(math.isclose(pending[0], peak, rel_tol=1e-6))
        elif _LOWER_FAILS in message:
            settle(False)
    invalid_above = [p.qps for p in probes if not p.valid and (peak is None or p.qps > peak)]
    note = "LoadGen's FindPeakPerformance (latency bound only)"
    if peak is None:
        note += ": the start rate failed" if probes else ": no search in this log"
    return PeakResult(peak, min(invalid_above) if invalid_above else None, tuple(probes),
                      tolerance, note)


def _messages(detail_log: Path) -> list[str]:
    """LoadGen's generic messages and errors, in order."""
    try:
        text = Path(detail_log).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return [str(entry.get("value")) for _, entry in mllog_entries(text)
            if entry is not None and entry["key"] in ("generic_message", "error_runtime")]


# ---- Offline -----------------------------------------------------------------------------


def best_point(rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The finished row with the most samples/s, VALID rows first."""
    done = [row for row in rows if row.get("samples_per_second") is not None]
    valid = [row for row in done if row.get("valid")]
    pool = valid or done
    return max(pool, key=lambda row: row["samples_per_second"]) if pool else None
