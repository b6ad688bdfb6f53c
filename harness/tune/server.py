"""Server: the peak VALID QPS of the winner and of the fp32 default, by bisection.

Each probe is a short Server run at a target QPS (VALID: LoadGen's verdict, p99 within
the bound); :func:`harness.sweep.peak.search_peak` brackets and bisects, the fp32 default
first, then the winner. Each search's first probe is a run given no target, which sizes
itself from its warm-up (Server's queueing model, harness.loadgen.sizing) and starts the
bracketing there (a run that recorded no size: 70% of the candidate's Offline rate); no
probe starts past the tune's deadline (a search cut short says so).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.sweep.peak import PeakResult, search_peak
from harness.sweep.record import recorded
from harness.sweep.spec import PeakSettings
from harness.tune.candidates import Candidate
from harness.tune.speed import ChildRunner

MAX_PROBES = 8  # a search from a cautious sized start may climb x1.5 five times
GROWTH = 1.5


class _OutOfTime(Exception):
    """The tune's deadline came before the next probe."""


def peak_qps(baseline: Candidate, winner: Candidate, runner: ChildRunner, folder: Path,
             deadline: float, start_qps: dict[str, float],
             clock: Callable[[], float] = time.monotonic) -> dict[str, Any]:
    """``{"baseline": ..., "winner": ..., "ratio": ..., "text": ...}``: each search's
    result (its peak QPS and probes) and the winner's peak over the default's."""
    starts = start_qps
    results: dict[str, PeakResult | None] = {}
    longest = [60.0]
    for name, candidate in (("baseline", baseline), ("winner", winner)):
        count = [0]
        known: dict[float, bool] = {}

        def probe(qps: float | None, candidate: Candidate = candidate, name: str = name,
                  count: list[int] = count):
            if clock() + longest[0] > deadline:
                raise _OutOfTime
            count[0] += 1
            label = "sized" if qps is None else f"{qps:g}"
            m = runner(candidate, folder / "server" / name / f"{count[0]:02d}-{label}",
                       target_qps=qps)
            longest[0] = max(longest[0], m.seconds)
            sized = recorded(Path(m.run_dir), "settings.warmup.sized.value") \
                if m.run_dir else None
            shown = f"{qps:g} QPS" if qps is not None else \
                f"{sized:g} QPS (sized from its warm-up)" if sized else "sized run"
            print(f"  [server {name}] {shown}: "
                  f"{'VALID' if m.valid else 'INVALID' if m.valid is False else m.error}",
                  flush=True)
            return m, sized

        def verdict(qps: float, known: dict[float, bool] = known,
                    probe: Callable = probe) -> bool:
            if qps in known:
                return known[qps]
            return bool(probe(qps)[0].valid)

        try:
            first, sized = probe(None)
            if sized and first.valid is not None:
                known[sized] = bool(first.valid)
            start = sized or starts.get(name, 10.0)
            settings = PeakSettings(start=start, growth=GROWTH, tolerance=max(0.2, 0.1 * start),
                                    max_probes=MAX_PROBES, min_qps=0.1)
            results[name] = search_peak(verdict, settings, settings.start)
        except _OutOfTime:
            results[name] = None
    base, best = results.get("baseline"), results.get("winner")
    ratio = best.peak / base.peak if base and best and base.peak and best.peak else None
    text = ("Server peak VALID QPS: winner " + (best.text() if best else "cut short by the budget")
            + "; fp32 default " + (base.text() if base else "cut short by the budget")
            + (f"; winner x{ratio:.2f} the default" if ratio else ""))
    return {"baseline": base.to_json() if base else None,
            "winner": best.to_json() if best else None, "ratio": ratio, "text": text}
