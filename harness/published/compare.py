"""Where a run stands among the published results: ``compare --published ROUND RUN...``.

Per run: its rank among the published results of its scenario (one benchmark, one round),
the nearest published systems above and below, its figure per accelerator (per host core
on a CPU-only host) beside the published ones, and what keeps it from being comparable as
is: a short run, a model other than MLPerf's BERT-Large (the demo model), its precision, the
rules it ran under, an INVALID result, the null backend.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from common.errors import ConfigError
from harness.published.table import LOWER_IS_BETTER, Published, ranked
from harness.report.runs import RunRecord, find_runs, read_run


@dataclass(frozen=True)
class WaferPlan:
    """A ``wafer plan --json`` result: modelled samples/s and p90 latency (ms)."""

    label: str
    samples_per_s: float | None
    latency_p90_ms: float | None
    precision: str

    def metric(self, scenario: str) -> float | None:
        """Its figure in the published table's unit for ``scenario``."""
        return self.latency_p90_ms if scenario in LOWER_IS_BETTER else self.samples_per_s


@dataclass
class Placement:
    """One run among the published results of its scenario."""

    run: RunRecord
    rows: list[Published]              # the published results of the scenario, best first
    rank: int | None = None            # 1 = best; None when the run has no figure
    above: Published | None = None     # the nearest published result better than the run
    below: Published | None = None     # the nearest one worse than the run
    caveats: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        """The published results plus this run."""
        return len(self.rows) + 1


def load_wafer_plan(path: Path) -> WaferPlan:
    """A plan written by ``python -m harness wafer plan --json > FILE``."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--wafer-plan {path}: cannot read it as JSON ({exc})") from None
    if not isinstance(data, dict) or "samples_per_s" not in data:
        raise ConfigError(f"--wafer-plan {path}: not the JSON of `wafer plan --json` (one "
                          "spec per file)")
    def number(key: str) -> float | None:
        value = data.get(key)
        return float(value) if isinstance(value, (int, float)) else None
    return WaferPlan(Path(path).stem, number("samples_per_s"), number("latency_p90_ms"),
                     str(data.get("precision", "")))


def gather_runs(paths: list[Path]) -> list[RunRecord]:
    """The finished performance runs in each path: a run folder (whatever it is kept as), or
    a tree of them (its current results; sweep points and history left out)."""
    runs: list[RunRecord] = []
    for path in paths:
        root = Path(path)
        if not root.is_dir():
            raise ConfigError(f"{path}: no such folder (a run folder or a results tree)")
        if (root / "result.json").is_file():
            found = [read_run(root, root.parent)]
        else:
            found = [r for r in find_runs(root) if r.status == "result" and not r.sweep]
        found = [r for r in found if r.mode == "performance" and r.metric is not None]
        if not found:
            raise ConfigError(f"{path}: holds no finished performance run")
        runs += found
    return runs


def caveats(run: RunRecord) -> list[str]:
    """Why the run is not comparable to a published result as is (empty when it is)."""
    notes = []
    if run.backend == "null":
        notes.append("null backend: no model ran, the figure is the harness's overhead")
    if run.backend == "wafer":
        notes.append("wafer backend: a simulated wafer-scale engine's timing, not a measured "
                     "device")
    if run.mlperf_model is not True:
        notes.append(f"model {run.model or '?'} is not MLPerf's BERT-Large"
                     + (" (the demo model: a far smaller network)" if "demo" in run.model
                        else "") + "; published results all ran BERT-Large")
    if run.precision:
        notes.append(f"precision {run.precision}: published systems chose theirs (mostly "
                     "int8/fp16) and had to reach 99% (bert-99) of the fp32 F1")
    if run.short is not False:
        notes.append("short run (--short): 10 s, no minimum query count; published runs "
                     "lasted at least 600 s" if run.short else "run length unknown")
    if run.rules and run.rules != "v1.0":
        notes.append(f"rules {run.rules}: not MLPerf v1.0's (seeds, 600 s, query counts)")
    if run.valid is not True:
        notes.append("INVALID by LoadGen's verdict; every published result is VALID")
    return notes


def tags(run: RunRecord) -> str:
    """The caveats in a few words, for labels: ``[short, not BERT-Large, INVALID]``."""
    words = [word for word, applies in (
        ("null backend", run.backend == "null"), ("simulated", run.backend == "wafer"),
        ("not BERT-Large", run.mlperf_model is not True), ("short", run.short is not False),
        ("INVALID", run.valid is not True)) if applies]
    return f" [{', '.join(words)}]" if words else ""


def place(run: RunRecord, rows: list[Published]) -> Placement:
    """The run among ``rows`` (one scenario's published results)."""
    rows = ranked(r for r in rows if r.scenario == run.scenario)
    placement = Placement(run, rows, caveats=caveats(run))
    if run.metric is None:
        return placement
    lower = run.scenario in LOWER_IS_BETTER
    better = [r for r in rows if (r.metric < run.metric if lower else r.metric > run.metric)]
    placement.rank = len(better) + 1
    placement.above = better[-1] if better else None
    rest = rows[len(better):]
    placement.below = rest[0] if rest else None
    return placement


def _who(row: Published) -> str:
    kind = (f"{row.host_cores} host cores, CPU only" if row.cpu_only
            else f"{row.accelerators}x {row.accelerator}")
    return f"{row.submitter} {row.system} ({kind}, {row.framework})"


def _per_unit_text(run: RunRecord, rows: list[Published]) -> list[str]:
    if run.scenario in LOWER_IS_BETTER or run.metric is None:
        return []
    lines = []
    if run.host_cores:
        mine = run.metric / run.host_cores
        cpu = [r.per_unit for r in rows if r.cpu_only and r.per_unit]
        text = f"  per host core: {mine:,.2f} samples/s on {run.host_cores} cores"
        if cpu:
            text += (f"; published CPU-only systems: {min(cpu):,.2f} to {max(cpu):,.2f} "
                     f"(median {statistics.median(cpu):,.2f}, {len(cpu)} results)")
        lines.append(text)
    families: dict[str, list[float]] = {}
    for r in rows:
        if not r.cpu_only and r.per_unit:
            families.setdefault(r.family, []).append(r.per_unit)
    if families:
        lines.append("  published per accelerator (median): " + ", ".join(
            f"{name} {statistics.median(v):,.0f}" for name, v in
            sorted(families.items(), key=lambda kv: -statistics.median(kv[1]))))
    return lines


def placement_text(p: Placement) -> str:
    """The placement as lines for the terminal."""
    run, unit = p.run, p.run.unit
    verdict = {True: "VALID", False: "INVALID"}.get(run.valid, "validity unknown")
    lines = [f"{run.label} {run.scenario}: "
             + (f"{run.metric:,.2f} {unit} ({verdict}), {run.created}"
                if run.metric is not None else "no figure")]
    lines.append(f"  {run.path}")
    if p.rank is not None:
        where = ("better than every published result" if p.rank == 1 else
                 "below every published result" if p.rank == p.total else
                 f"{p.rank - 1} published results ahead")
        lines.append(f"  rank {p.rank} of {p.total} ({where})")
        for name, row in (("nearest above", p.above), ("nearest below", p.below)):
            if row is not None:
                ratio = row.metric / run.metric if run.metric else float("inf")
                lines.append(f"  {name}: {row.metric:,.2f} {row.unit} ({ratio:,.3g}x yours) "
                             f"{_who(row)}")
            else:
                lines.append(f"  {name}: none")
    lines += _per_unit_text(run, p.rows)
    if p.caveats:
        lines.append("  NOT COMPARABLE AS IS:")
        lines += [f"    - {note}" for note in p.caveats]
    else:
        lines.append("  comparable: BERT-Large, MLPerf v1.0 rules, full length, VALID")
    return "\n".join(lines) + "\n"


def header_text(rows: list[Published], round_name: str, benchmark: str) -> str:
    """Which published results the runs are placed among."""
    scenarios = sorted({r.scenario for r in rows})
    parts = [f"{s} {sum(r.scenario == s for r in rows)}" for s in scenarios]
    return (f"published MLPerf Inference {round_name} {benchmark} results ({', '.join(parts)}; "
            "closed and open, as the submission checker counts them); Offline/Server in "
            "samples/s (Server: scheduled), SingleStream p90 latency in ms (lower is better)\n")
