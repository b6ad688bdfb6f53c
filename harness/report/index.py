"""``results/index.html``: one self-contained page (no server, opens offline) for every run.

It lists every run folder under the results tree (current results, history, kept
failures, sweep points) with its date, system, backend, model, scenario, rules, metric,
LoadGen's verdict, F1 where scored and links to the folder and its summary; filters by
scenario, backend and model; per scenario, the metric over time (a regression shows as a
drop) and where the latest result of each series stands among MLPerf's published results.
:func:`rebuild_index` is what runs and sweeps call after they finish: it is cheap (JSON
and summaries only, inline SVG, no matplotlib) and never fails the run.
"""

from __future__ import annotations

import html
import os
import time
import warnings
from pathlib import Path

from common.errors import HarnessWarning
from common.files import write_text_atomic
from harness.published import table
from harness.published.compare import caveats, place
from harness.report.runs import RunRecord, find_runs
from harness.report.svg import series_key, strip_chart, time_chart

INDEX_NAME = "index.html"
SCENARIO_ORDER = ("Offline", "Server", "SingleStream", "MultiStream")
_STYLE = """
body{font:14px system-ui,sans-serif;margin:1.2em;color:#222}
table{border-collapse:collapse;font-size:12.5px}th,td{padding:3px 7px;border-bottom:1px solid #ddd;
text-align:left;white-space:nowrap}th{background:#f3f3f3;position:sticky;top:0}
td.num{text-align:right;font-variant-numeric:tabular-nums}.VALID{color:#2a9d3a;font-weight:600}
.INVALID{color:#d62728;font-weight:600}.muted{color:#777}svg text{font-size:10px;fill:#333}
.grid{stroke:#ddd}.scenario{display:flex;flex-wrap:wrap;gap:1.5em;margin:1em 0 2em}
.filters label{margin-right:1.2em}.note{font-size:12px;color:#555;max-width:60em}
ul.place{font-size:12.5px;margin:.3em 0;padding-left:1.2em}
"""
_SCRIPT = """
function applyFilters(){
  var want={};
  document.querySelectorAll('select.filter').forEach(function(s){want[s.name]=s.value;});
  function keep(el){
    for(var k in want){if(want[k]&&el.getAttribute('data-'+k)!==want[k])return false;}
    return true;
  }
  var shown=0;
  document.querySelectorAll('#runs tbody tr').forEach(function(tr){
    var ok=keep(tr);tr.style.display=ok?'':'none';if(ok)shown++;});
  document.querySelectorAll('circle.pt').forEach(function(c){
    c.style.display=keep(c)?'':'none';});
  document.querySelectorAll('section.scenario-block').forEach(function(s){
    s.style.display=(!want.scenario||s.getAttribute('data-scenario')===want.scenario)?'':'none';});
  document.getElementById('shown').textContent=shown;
}
document.querySelectorAll('select.filter').forEach(function(s){
  s.addEventListener('change',applyFilters);});
applyFilters();
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _href(path: Path, results_dir: Path) -> str:
    """A link relative to the page (which sits in ``results_dir``)."""
    rel = os.path.relpath(path, results_dir).replace(os.sep, "/")
    return html.escape("/".join(part.replace("%", "%25").replace("#", "%23").replace("?", "%3F")
                                for part in rel.split("/")), quote=True)


def _metric(run: RunRecord) -> str:
    if run.metric is None:
        return ""
    value = f"{run.metric:,.0f}" if run.metric >= 1000 else f"{run.metric:.4g}"
    return f"{value} {_e(run.unit)}"


def _verdict(run: RunRecord) -> str:
    if run.status in ("failed", "interrupted", "killed"):
        return f'<span class="INVALID">{run.status.upper()}</span>'
    if run.valid is None:
        return '<span class="muted">-</span>'
    word = "VALID" if run.valid else "INVALID"
    return f'<span class="{word}">{word}</span>'


def _row(run: RunRecord, results_dir: Path) -> str:
    where = f"sweep {run.sweep}" if run.sweep else run.status
    summary = run.path / "summary.txt"
    links = f'<a href="{_href(run.path, results_dir)}/">folder</a>'
    if summary.is_file():
        links += f' <a href="{_href(summary, results_dir)}">summary</a>'
    rules = run.rules + (" short" if run.short else "")
    return (f'<tr data-scenario="{_e(run.scenario)}" data-backend="{_e(run.backend)}" '
            f'data-model="{_e(run.model)}"><td>{_e(run.created[:19].replace("T", " "))}</td>'
            f"<td>{_e(run.system)}</td><td>{_e(run.backend)}</td><td>{_e(run.model)}</td>"
            f"<td>{_e(run.scenario)}</td><td>{_e(run.mode)}</td><td>{_e(rules)}</td>"
            f'<td class="num">{_metric(run)}</td><td>{_verdict(run)}</td>'
            f'<td class="num">{"" if run.f1 is None else f"{run.f1:.2f}"}</td>'
            f"<td>{_e(where)}</td><td>{links}</td></tr>")


def _select(name: str, values: set[str]) -> str:
    options = "".join(f'<option value="{_e(v)}">{_e(v)}</option>' for v in sorted(values) if v)
    return (f'<label>{name} <select class="filter" name="{name}" id="filter-{name}">'
            f'<option value="">all</option>{options}</select></label>')


def _placement(scenario: str, runs: list[RunRecord], rows: list[table.Published],
               round_name: str) -> str:
    """The latest result of each series among the published results of ``scenario``."""
    latest: dict[str, RunRecord] = {}
    for run in sorted(runs, key=lambda r: r.timestamp):
        if run.scenario == scenario and run.metric is not None and run.status == "result" \
                and run.mode == "performance":
            latest[series_key(run)] = run
    mine = [r for r in rows if r.scenario == scenario]
    if not mine:
        return (f'<p class="note">MLPerf {round_name} has no published BERT {scenario} '
                "result to compare with.</p>")
    items = []
    for key, run in latest.items():
        p = place(run, mine)
        above = (f"; next above: {p.above.metric:,.4g} {_e(p.above.submitter)} "
                 f"{_e(p.above.system)}") if p.above else ""
        notes = caveats(run)
        warn = (f' <span class="INVALID">not comparable as is:</span> {_e("; ".join(notes))}'
                if notes else "")
        items.append(f"<li>{_e(key)}: {run.metric:,.4g} {_e(run.unit)}, rank {p.rank} of "
                     f"{p.total}{above}.{warn}</li>")
    strip = strip_chart(mine, [(r.metric or 0, series_key(r)) for r in latest.values()])
    return (f'<div><b>Among the {len(mine)} published {round_name} bert-99 {scenario} '
            f"results</b> (coloured by accelerator family; your latest results in red)<br>"
            f'{strip}<ul class="place">{"".join(items) or "<li>no result yet</li>"}</ul></div>')


def render(runs: list[RunRecord], results_dir: Path, round_name: str = "v1.0") -> str:
    """The page's HTML."""
    try:
        rows = table.select(table.load(), round=round_name, benchmark="bert-99")
    except Exception:  # noqa: BLE001 - the page never fails for the published table
        rows = []
    scenarios = [s for s in SCENARIO_ORDER if any(r.scenario == s for r in runs)]
    blocks = []
    for scenario in scenarios:
        unit = next((r.unit for r in runs if r.scenario == scenario and r.unit), "")
        blocks.append(f'<section class="scenario-block" data-scenario="{_e(scenario)}">'
                      f'<h3>{_e(scenario)}</h3><div class="scenario">'
                      f"{time_chart(scenario, runs, unit)}"
                      f"{_placement(scenario, runs, rows, round_name)}</div></section>")
    body = "".join(_row(run, results_dir) for run in runs)
    sweeps = sorted(results_dir.glob("sweeps/*/report.html"))
    sweep_links = " ".join(f'<a href="{_href(p, results_dir)}">{_e(p.parent.name)}</a>'
                           for p in sweeps)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Results: {_e(results_dir.name)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,"><style>{_STYLE}</style></head><body>
<h1>Benchmark results</h1>
<p class="note">{len(runs)} run{'' if len(runs) == 1 else 's'} in {_e(results_dir)} (results,
history, kept failures and sweep points), newest first; written {stamp} by
<code>python -m harness report</code> (every run and sweep rewrites it). Metric:
samples/s in Offline, scheduled samples/s in Server, 90th percentile latency (ms) in
SingleStream, as MLPerf's checker reads LoadGen's summary. Published figures: MLPerf
Inference {round_name} bert-99 (mlcommons/inference_results,
Apache-2.0).{" Sweeps: " + sweep_links if sweep_links else ""}</p>
<div class="filters">{_select("scenario", {r.scenario for r in runs})}
{_select("backend", {r.backend for r in runs})}{_select("model", {r.model for r in runs})}
<span><span id="shown">{len(runs)}</span> of {len(runs)} runs shown</span></div>
{"".join(blocks)}
<table id="runs"><thead><tr><th>date</th><th>system</th><th>backend</th><th>model</th>
<th>scenario</th><th>mode</th><th>rules</th><th>metric</th><th>LoadGen</th><th>F1</th>
<th>kept as</th><th>files</th></tr></thead><tbody>{body}</tbody></table>
<script>{_SCRIPT}</script></body></html>
"""


def write_index(results_dir: Path, round_name: str = "v1.0") -> tuple[Path, int]:
    """Write ``<results_dir>/index.html`` atomically; its path and the number of runs."""
    results_dir = Path(results_dir).absolute()
    runs = find_runs(results_dir)
    path = results_dir / INDEX_NAME
    write_text_atomic(path, render(runs, results_dir, round_name))
    return path, len(runs)


def index_root(results_dir: Path) -> Path:
    """The results tree a run or sweep belongs to: ``results`` for ``results`` itself, for
    ``results/sweeps`` and for a sweep point's ``results/sweeps/<name>/points/<id>`` (a
    sweep kept elsewhere: the folder holding the sweep's folder)."""
    path = Path(results_dir).absolute()
    if path.parent.name == "points" and (path.parents[1] / "sweep.toml").is_file():
        path = path.parents[2]  # the folder of the sweeps (a sweep writes sweep.toml first)
    return path.parent if path.name == "sweeps" else path


def rebuild_index(results_dir: Path) -> Path | None:
    """Rewrite the page of the tree ``results_dir`` belongs to (:func:`index_root`) after a
    run or sweep; a failure is a warning, never an error."""
    try:
        return write_index(index_root(results_dir))[0]
    except Exception as exc:  # noqa: BLE001 - a run must never fail for its index page
        warnings.warn(HarnessWarning(f"{Path(results_dir) / INDEX_NAME} not rewritten: {exc}"),
                      stacklevel=2)
        return None
