"""Rebuild ``bert_results.csv`` from local copies of the MLPerf Inference results repositories.

It reads files only, never the network: each source is a git repository (bare or not; read
with ``git cat-file``) or a plain folder holding ``closed/`` and ``open/``. One row per
``<division>/<submitter>/results/<system>/bert-99*/<scenario>/performance/run_1``, the
folders the official submission checker counts (closed and open alike). The metric is what
the checker reads from LoadGen's summary: Offline ``Samples per second``, Server ``Scheduled
samples per second`` (samples/s), SingleStream ``90th percentile latency (ns)`` shown in ms.
Power (when the result has ``performance/power``) is the mean of ``spl.txt``'s watts between
LoadGen's ``power_begin`` and ``power_end``: W for Offline and Server, J/sample in
SingleStream (watts / the QPS with LoadGen overhead, as the v1.0/v1.1 checker computes it).

    python -m harness.published.build v1.0=/path/inference_results_v1.0 \\
        v1.1=/path/inference_results_v1.1 [--out harness/published/bert_results.csv]
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

from common.errors import ConfigError, HarnessError
from common.files import write_text_atomic
from harness.published.table import COLUMNS, TABLE_PATH

_RUN = re.compile(r"^(closed|open)/([^/]+)/results/([^/]+)/(bert-99(?:\.9)?)/([^/]+)/"
                  r"performance/run_1/mlperf_log_summary\.txt$")
SCENARIO_NAMES = {"offline": "Offline", "server": "Server", "singlestream": "SingleStream",
                  "multistream": "MultiStream"}
# What the checker reads from the summary per scenario, and the unit shown.
METRIC = {"Offline": ("Samples per second", "samples/s", 1.0),
          "Server": ("Scheduled samples per second", "samples/s", 1.0),
          "SingleStream": ("90th percentile latency (ns)", "ms", 1e-6),
          "MultiStream": ("Samples per query", "samples/query", 1.0)}
_F1 = re.compile(r'"f1"\s*:\s*([\d.]+)')
_TIME = "%m-%d-%Y %H:%M:%S.%f"


class Source:
    """The files of one results repository: a git repository (HEAD) or a plain folder."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.git = self._is_git()
        self.commit = self._git("rev-parse", "HEAD").strip() if self.git else ""
        self._proc: subprocess.Popen | None = None

    def _is_git(self) -> bool:
        if not self.path.is_dir():
            raise ConfigError(f"{self.path}: no such folder (a copy of an MLPerf results "
                              "repository)")
        if (self.path / "closed").is_dir():
            return False
        done = subprocess.run(["git", "-C", str(self.path), "rev-parse", "HEAD"],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise ConfigError(f"{self.path}: neither a git repository nor a folder holding "
                              "closed/")
        return True

    def _git(self, *args: str) -> str:
        return subprocess.run(["git", "-C", str(self.path), *args], capture_output=True,
                              text=True, check=True).stdout

    def names(self) -> list[str]:
        """Every file's path relative to the repository root."""
        if self.git:
            return self._git("ls-tree", "-r", "--name-only", "HEAD").splitlines()
        return sorted(str(p.relative_to(self.path)) for p in self.path.rglob("*") if p.is_file())

    def read(self, name: str) -> str | None:
        """One file's text, None when it is not there."""
        if not self.git:
            path = self.path / name
            return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else None
        if self._proc is None:
            self._proc = subprocess.Popen(["git", "-C", str(self.path), "cat-file", "--batch"],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(f"HEAD:{name}\n".encode())
        self._proc.stdin.flush()
        header = self._proc.stdout.readline().decode().split()
        if len(header) < 3 or header[1] != "blob":
            return None
        data = self._proc.stdout.read(int(header[2]))
        self._proc.stdout.read(1)  # the newline after each object
        return data.decode("utf-8", errors="replace")

    def close(self) -> None:
        if self._proc is not None:
            self._proc.stdin.close()  # type: ignore[union-attr]
            self._proc.wait()


def parse_summary(text: str) -> dict[str, str]:
    """``key : value`` lines of a LoadGen summary."""
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    return fields


def _detail(text: str) -> dict[str, object]:
    """The ``:::MLLOG`` entries of a detail log, key -> value."""
    entries: dict[str, object] = {}
    for line in text.splitlines():
        if line.startswith(":::MLLOG"):
            try:
                entry = json.loads(line[len(":::MLLOG"):])
            except json.JSONDecodeError:
                continue
            entries.setdefault(entry.get("key"), entry.get("value"))
    return entries


def _power(src: Source, perf: str, scenario: str) -> float | None:
    """Mean watts over LoadGen's power window (W), or J/sample in SingleStream; None when the
    result has no power logs or they cannot be read."""
    server, client = src.read(f"{perf}/power/server.json"), src.read(f"{perf}/power/client.json")
    detail, spl = src.read(f"{perf}/run_1/mlperf_log_detail.txt"), src.read(f"{perf}/run_1/spl.txt")
    if not (server and client and detail and spl):
        return None
    try:
        server_tz = dt.timedelta(seconds=json.loads(server)["timezone"])
        client_tz = dt.timedelta(seconds=json.loads(client)["timezone"])
        log = _detail(detail)
        begin = dt.datetime.strptime(str(log["power_begin"]), _TIME) + client_tz
        end = dt.datetime.strptime(str(log["power_end"]), _TIME) + client_tz
        watts = []
        for line in spl.splitlines():
            parts = line.split(",")
            if len(parts) > 3:
                when = dt.datetime.strptime(parts[1], _TIME) + server_tz
                if begin < when < end:
                    watts.append(float(parts[3]))
        if not watts:
            return None
        mean = sum(watts) / len(watts)
        if scenario == "SingleStream":
            return mean / float(log["result_qps_with_loadgen_overhead"])  # type: ignore[arg-type]
        return mean
    except (KeyError, ValueError, TypeError, json.JSONDecodeError):
        return None


def _number(value: object) -> str:
    return "" if value in (None, "") else str(value)


def rows_of(round_name: str, src: Source) -> list[dict[str, str]]:
    """The table's rows for one round's repository."""
    rows, systems = [], {}
    for name in src.names():
        found = _RUN.match(name)
        if not found:
            continue
        division, submitter, system, benchmark, folder = found.groups()
        scenario = SCENARIO_NAMES.get(folder.lower(), folder)
        summary = parse_summary(src.read(name) or "")
        field, unit, scale = METRIC[scenario]
        if field not in summary:
            raise HarnessError(f"{name}: no {field!r} line")
        key = f"{division}/{submitter}/systems/{system}.json"
        if key not in systems:
            text = src.read(key)
            systems[key] = json.loads(text) if text else {}
        desc = systems[key]
        base = name.rsplit("/performance/", 1)[0]
        accuracy = _F1.search(src.read(f"{base}/accuracy/accuracy.txt") or "")
        power = _power(src, f"{base}/performance", scenario)
        nodes = desc.get("number_of_nodes") or 1
        accelerators = desc.get("accelerators_per_node")
        count = accelerators * nodes if isinstance(accelerators, int) else accelerators
        rows.append({
            "round": round_name, "division": division, "submitter": submitter,
            "system": system, "system_name": desc.get("system_name", ""),
            "system_type": desc.get("system_type", ""),
            "accelerator": (desc.get("accelerator_model_name") or "").strip(),
            "accelerators": _number(count),
            "host_processor": (desc.get("host_processor_model_name") or "").strip(),
            "host_cores": _number(desc.get("host_processor_core_count")),
            "host_processors": _number(desc.get("host_processors_per_node")),
            "framework": (desc.get("framework") or "").strip(),
            "benchmark": benchmark, "scenario": scenario,
            "metric": f"{float(summary[field]) * scale:.12g}", "unit": unit,
            "valid": "VALID" if summary.get("Result is") == "VALID" else "INVALID",
            "f1": f"{float(accuracy.group(1)):.3f}" if accuracy else "",
            "power": "" if power is None else f"{power:.2f}",
            "power_unit": "" if power is None else ("J/sample" if scenario == "SingleStream"
                                                    else "W"),
            "source": f"{base}/performance/run_1",
        })
    return rows


def build(sources: dict[str, Path]) -> tuple[str, list[dict[str, str]], dict[str, str]]:
    """The CSV text, its rows and each round's commit."""
    rows, commits = [], {}
    for round_name, path in sources.items():
        src = Source(path)
        try:
            rows += rows_of(round_name, src)
        finally:
            src.close()
        commits[round_name] = src.commit or str(path)
    rows.sort(key=lambda r: (r["round"], r["benchmark"], r["scenario"], r["division"],
                             r["submitter"], r["system"]))
    out = io.StringIO()
    writer = csv.DictWriter(out, COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue(), rows, commits


def counts_text(rows: list[dict[str, str]]) -> str:
    """Rows per round, benchmark, scenario (and division when open results exist)."""
    counted = Counter((r["round"], r["benchmark"], r["scenario"], r["division"]) for r in rows)
    lines = [f"  {k[0]} {k[1]:9s} {k[2]:12s} {k[3]:6s} {n}" for k, n in sorted(counted.items())]
    for round_name in sorted({r["round"] for r in rows}):
        mine = [r for r in rows if r["round"] == round_name]
        lines.append(f"  {round_name}: {len(mine)} results, "
                     f"{len({r['submitter'] for r in mine})} submitters")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.published.build",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("sources", nargs="+", metavar="ROUND=PATH",
                        help="e.g. v1.0=/work/.mirror/mlcommons+inference_results_v1.0/repo")
    parser.add_argument("--out", type=Path, default=TABLE_PATH)
    args = parser.parse_args(argv)
    try:
        sources = {}
        for item in args.sources:
            round_name, sep, path = item.partition("=")
            if not sep or not round_name.startswith("v"):
                raise ConfigError(f"{item!r}: expected ROUND=PATH, e.g. v1.0=/path/to/repo")
            sources[round_name] = Path(path)
        text, rows, commits = build(sources)
        write_text_atomic(args.out, text)
    except (HarnessError, subprocess.CalledProcessError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.out}: {len(rows)} rows")
    for round_name, commit in commits.items():
        print(f"  {round_name} from {sources[round_name]} at {commit}")
    print(counts_text(rows), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
