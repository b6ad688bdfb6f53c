"""One self-contained HTML page a sweep: pictures embedded, the table, the command, the machine.

The page needs no server and no network: images are inline PNG data, styles are inline, and
links to run folders are relative, so it opens from the file system and can be mailed.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common.files import write_text_atomic

# The table's columns: (row key, heading, format).
COLUMNS = (
    ("label", "point", "{}"), ("status", "status", "{}"), ("probe", "probe", "{}"),
    ("samples_per_second", "samples/s", "{:.2f}"), ("scheduled_qps", "scheduled QPS", "{:.2f}"),
    ("p50_ms", "p50 ms", "{:.1f}"), ("p90_ms", "p90 ms", "{:.1f}"), ("p99_ms", "p99 ms", "{:.1f}"),
    ("mean_ms", "mean ms", "{:.1f}"), ("max_ms", "max ms", "{:.1f}"),
    ("query_p99_ms", "query p99 ms", "{:.1f}"), ("modelled", "modelled", "{:.4g}"),
    ("valid", "verdict", "{}"), ("reason", "reason", "{}"),
    ("early_stopping_met", "early stopping met", "{}"),
    ("early_stopping_estimate_ms", "early-stopping estimate ms", "{:.1f}"),
    ("query_count", "queries", "{}"),
    ("seconds", "run s", "{:.0f}"), ("run_dir", "run folder", "{}"),
)
# LoadGen's INVALID reasons are sentences ("Reduce target QPS to improve latency; ..."):
# the table shows each as a few words, the full text on hover (and in the run folder).
SHORT_REASONS = (
    ("reduce target qps", "latency over the bound"),
    ("latency constraint", "latency over the bound"),
    ("reduce samples per query", "latency over the bound"),
    ("increase target qps", "too few queries generated"),
    ("increase the target qps", "too few queries generated"),
    ("increase expected qps", "ended too soon"),
    ("exited early", "ended early"),
    ("min_duration", "too short"), ("minimum duration", "too short"),
    ("min_query_count", "too few queries"), ("minimum query count", "too few queries"),
    ("early stopping", "early stopping not met"),
)
REASON_WORDS = 40  # characters of a reason the table does not know


def short_reason(text: str) -> str:
    """A few words for each of LoadGen's reasons, ``; ``-joined, each once."""
    shorts: list[str] = []
    for reason in (part.strip() for part in text.split(";")):
        if not reason:
            continue
        lower = reason.lower()
        short = next((words for phrase, words in SHORT_REASONS if phrase in lower), None)
        if short is None:
            short = reason if len(reason) <= REASON_WORDS else reason[:REASON_WORDS - 1] + "…"
        if short not in shorts:
            shorts.append(short)
    return "; ".join(shorts)


STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1200px;
       color: #222; padding: 0 1em; }
h1 { margin-bottom: .2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
.summary { background: #f3f8f3; border-left: 5px solid #2a9d3a; padding: .6em 1em; }
.summary.none { background: #fbf3f3; border-color: #d62728; }
figure { margin: 1.2em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 13px; }
table { border-collapse: collapse; font-size: 12.5px; width: 100%; }
th, td { border: 1px solid #ddd; padding: 3px 6px; text-align: right; vertical-align: top; }
th { background: #f4f4f4; position: sticky; top: 0; }
td.text { text-align: left; max-width: 22em; }
tr.invalid td { background: #fdf0f0; } tr.failed td, tr.pending td { background: #eee;
  color: #777; }
pre { background: #f7f7f7; padding: .8em; overflow-x: auto; font-size: 12.5px; }
dl { display: grid; grid-template-columns: max-content auto; gap: .2em 1em; }
dt { font-weight: 600; } dd { margin: 0; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _cell(key: str, form: str, row: dict[str, Any]) -> str:
    value = row.get(key)
    if value is None or value == "":
        return "<td></td>"
    if key == "valid":
        return f"<td>{'VALID' if value else 'INVALID'}</td>"
    if key == "early_stopping_met":
        return f"<td>{'yes' if value else 'no'}</td>"
    if key == "run_dir":  # the path is long: the point's folder names it, the path is a tooltip
        parts = Path(value).parts
        name = parts[1] if len(parts) > 1 and parts[0] == "points" else Path(value).name
        return f'<td class="text"><a href="{_e(value)}" title="{_e(value)}">{_e(name)}</a></td>'
    if key in ("reason", "error") and isinstance(value, str):
        return f'<td class="text" title="{_e(value)}">{_e(short_reason(value))}</td>'
    try:
        text = form.format(value)
    except (ValueError, TypeError):
        text = str(value)
    kind = ' class="text"' if isinstance(value, str) else ""
    return f"<td{kind}>{_e(text)}</td>"


def _table(rows: Sequence[dict[str, Any]]) -> str:
    columns = [c for c in COLUMNS if any(r.get(c[0]) not in (None, "") for r in rows)]
    head = "".join(f"<th>{_e(title)}</th>" for _, title, _ in columns)
    body = []
    for row in rows:
        kind = row.get("status") if row.get("status") != "done" else (
            "invalid" if row.get("valid") is False else "")
        cells = "".join(_cell(key, form, row) for key, _, form in columns)
        body.append(f'<tr class="{_e(kind or "")}">{cells}</tr>')
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _image(path: Path, caption: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return (f'<figure><img alt="{_e(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _facts(facts: dict[str, Any]) -> str:
    items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts.items()
                    if v not in (None, ""))
    return f"<dl>{items}</dl>"


def _backend_name(summary: dict[str, Any]) -> str:
    """The base's backend (its version alone read as ``backend 0`` for the null backend)."""
    if "backend" in (summary.get("axes") or {}):
        return "varied (" + ", ".join(map(str, summary["axes"]["backend"])) + ")"
    return str((summary.get("base") or {}).get("backend") or "the default backend,")


def report_html(summary: dict[str, Any], rows: Sequence[dict[str, Any]],
                images: Sequence[tuple[Path, str]]) -> str:
    """The page's text (``summary``: the sweep.json head; ``images``: path and caption)."""
    verdict = summary.get("headline") or ""
    found = "" if summary.get("headline_ok", True) else " none"
    host = summary.get("host") or {}
    machine = {"cpu": host.get("cpu"), "cores": host.get("cores"),
               "memory": f"{host.get('memory_gib')} GiB" if host.get("memory_gib") else None,
               "os": host.get("os"), "node": host.get("node"),
               "python": summary.get("python"), "LoadGen": summary.get("loadgen_version"),
               "backend": " ".join(str(part) for part in (
                   _backend_name(summary), summary.get("backend_version")) if part)}
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>sweep {_e(summary.get('sweep'))}</title><style>{STYLE}</style></head><body>",
        f"<h1>Sweep {_e(summary.get('sweep'))}</h1>",
        f"<p>{_e(summary.get('description') or '')}</p>" if summary.get("description") else "",
        f'<p class="summary{found}">{_e(verdict)}</p>' if verdict else "",
        "<ul>" + "".join(f"<li>{_e(note)}</li>" for note in summary.get("notes") or [])
        + "</ul>" if summary.get("notes") else "",
        _facts({"command": summary.get("command_line"), "sweep file": summary.get("file"),
                "finished": summary.get("updated"), "points": summary.get("counts"),
                "results": summary.get("folder")}),
        "<h2>Pictures</h2>", *(_image(path, caption) for path, caption in images),
        "<h2>Points</h2>", _table(rows),
        "<h2>Machine</h2>", _facts(machine),
        "<h2>Sweep file</h2>", f"<pre>{_e(summary.get('file_text') or '')}</pre>",
        "</body></html>",
    ]
    return "\n".join(part for part in parts if part) + "\n"


def write_report(path: Path, summary: dict[str, Any], rows: Sequence[dict[str, Any]],
                 images: Sequence[tuple[Path, str]]) -> Path:
    write_text_atomic(path, report_html(summary, rows, images))
    return path
