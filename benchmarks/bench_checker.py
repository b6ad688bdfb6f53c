"""The checker against the real, accepted MLPerf Inference BERT submissions.

Given local copies of mlcommons/inference_results_v1.0 and _v1.1 (a checkout or a bare git
repository: only the BERT parts are read), prints per submitter the official checker's
verdict (recorded below; or run again with ``--official ROUND=PATH`` to the round's
``tools/submission/submission-checker.py``) and the harness's: results, FAIL and WARN lines,
and whether they agree (the harness fails exactly what the official checker logs an error
about)::

    python benchmarks/bench_checker.py --results v1.0=/path/inference_results_v1.0 \\
        --results v1.1=/path/inference_results_v1.1 [--official v1.0=/path/checker.py ...]

``--sample DIR`` writes the test sample instead (a few systems of each round, as
``DIR/<round>.tar.xz``). ``--mutations`` runs the official v1.0 checker on each mutation of
the committed v1.0 sample that the tests make (tests/checker_mutations.py) and prints what it
did beside the harness's FAIL line and tag. Not run by the test suite: it needs the
repositories or the official checker.
"""

from __future__ import annotations

import argparse
import io
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from harness.submission.checker import check_submission
from harness.submission.findings import CRASHES, ERROR, LOGGED, UNCHECKED
from tests.checker_mutations import MUTATIONS  # the tests' own mutations

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "shared" / "mlperf-results"
# what a harness tag says the official checker does, as seen in its output
TAG_MEANS = {ERROR: "drops the result", LOGGED: "ERROR logged, result kept",
             UNCHECKED: "nothing", CRASHES: "Python exception"}

BERT_PARTS = re.compile(r"^(closed|open)/[^/]+/((results|measurements|compliance|code)/"
                        r"([^/]+/)?bert|systems/)")
# What the official checkers said on every BERT tree (run 2026-12-05 on the repositories'
# HEAD: v1.0.1's checker with --version v1.0, r1.1's with --version v1.1): results it
# accepted, and its ERROR lines.
OFFICIAL = {
    "v1.0": {"DellEMC": (28, 2), "Fujitsu": (12, 0), "GIGABYTE": (4, 0), "HPE": (8, 0),
             "Inspur": (16, 0), "Intel": (2, 0), "Lenovo": (10, 0), "NVIDIA": (94, 0),
             "Supermicro": (24, 0)},
    "v1.1": {"Dell": (66, 0), "Fujitsu": (2, 0), "GIGABYTE": (4, 0), "HPE": (8, 0),
             "Inspur": (14, 0), "Intel": (2, 0), "Lenovo": (18, 0), "NVIDIA": (122, 0),
             "Nettrix": (4, 0), "Qualcomm": (12, 0), "Supermicro": (20, 0)},
}
# The sample committed for the tests: (round, submitter, system)
SAMPLE = (("v1.0", "Intel", "1-node-2S-ICX-MXNet-INT8"),
          ("v1.0", "DellEMC", "R7525_A100-PCIe-40GBx2_TRT"),
          ("v1.0", "NVIDIA", "AGX_Xavier_TRT_MaxQ"),
          ("v1.0", "NVIDIA", "A100-PCIex8_TRT"),
          ("v1.1", "Intel", "1-node-2S-ICX-PyTorch-INT8"),
          ("v1.1", "Qualcomm", "r282_z93_q1-qaic-v1.5.9-aic100"),
          ("v1.1", "Dell", "XE2420_A10x1_TRT_MaxQ"),
          ("v1.1", "NVIDIA", "A10x1_TRT"))


def _git(repo: Path, *args: str) -> bytes:
    return subprocess.run(["git", "-C", str(repo), *args], check=True,
                          capture_output=True).stdout


def extract_bert(repo: Path, dest: Path) -> int:
    """Copy the BERT parts of a results repository (checkout or bare) into ``dest``."""
    count = 0
    if (repo / "closed").is_dir():
        for path in sorted(repo.rglob("*")):
            relative = path.relative_to(repo).as_posix()
            if path.is_file() and BERT_PARTS.match(relative):
                (dest / relative).parent.mkdir(parents=True, exist_ok=True)
                (dest / relative).write_bytes(path.read_bytes())
                count += 1
        return count
    listing = _git(repo, "ls-tree", "-r", "HEAD").decode()
    blobs = []
    for line in listing.splitlines():
        meta, path = line.split("\t", 1)
        if meta.split()[1] == "blob" and BERT_PARTS.match(path):
            blobs.append((meta.split()[2], path))
    batch = subprocess.run(["git", "-C", str(repo), "cat-file", "--batch"], check=True,
                           input="".join(f"{oid}\n" for oid, _ in blobs).encode(),
                           capture_output=True).stdout
    stream = io.BytesIO(batch)
    for _, path in blobs:
        header = stream.readline().split()
        if header[1] == b"missing":
            continue
        data = stream.read(int(header[2]))
        stream.read(1)
        (dest / path).parent.mkdir(parents=True, exist_ok=True)
        (dest / path).write_bytes(data)
        count += 1
    return count


def bert_submitters(root: Path) -> list[tuple[str, str]]:
    return sorted((d.parent.name, d.name) for d in root.glob("*/*")
                  if any((d / "results").glob("*/bert*")))


def run_official(checker: Path, root: Path, rules: str, submitter: str) -> tuple[int, int]:
    """(results accepted, ERROR lines) of the official checker on one submitter."""
    with tempfile.TemporaryDirectory() as csv_dir:
        out = subprocess.run([sys.executable, str(checker), "--input", str(root), "--version",
                              rules, "--submitter", submitter, "--csv",
                              str(Path(csv_dir) / "s.csv")], capture_output=True, text=True,
                             cwd=checker.parent)
    text = out.stdout + out.stderr
    match = re.search(r"Results=(\d+)", text)
    errors = len(re.findall(r" ERROR\] (?!NoResults|SUMMARY)", text))
    return (int(match.group(1)) if match else -1), errors


def agreement(rules: str, root: Path, checker: Path | None) -> bool:
    print(f"\n{rules}: official vs harness (results accepted, FAIL = official ERROR lines)")
    print("| submitter | official results | official ERROR lines | harness results | "
          "harness FAIL | harness WARN | agree |")
    print("|---|---|---|---|---|---|---|")
    everyone = True
    for division, submitter in bert_submitters(root):
        with tempfile.TemporaryDirectory() as tmp:
            one = Path(tmp)
            (one / division).mkdir()
            (one / division / submitter).symlink_to(root / division / submitter)
            report = check_submission(one, rules=rules)
            official = (run_official(checker, one, rules, submitter) if checker
                        else OFFICIAL.get(rules, {}).get(submitter))
        accepted = sum(r.valid is True and r.f1 is not None and r.target is not None
                       and r.f1 >= r.target for r in report.results)
        fails, warns = len(report.failures), len(report.warnings)
        if checker is None and official is not None and submitter == "Dell" and rules == "v1.1":
            official = (62, 0) if division == "closed" else (4, 0)  # closed 62 + open 4
        agree = official is not None and accepted == official[0] \
            and (fails > 0) == (official[1] > 0)
        everyone &= agree
        shown = official or ("?", "?")
        print(f"| {division}/{submitter} | {shown[0]} | {shown[1]} | {accepted} | {fails} | "
              f"{warns} | {'yes' if agree else 'NO'} |")
    return everyone


def write_sample(trees: dict[str, Path], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for rules, root in trees.items():
        with tarfile.open(out / f"{rules}.tar.xz", "w:xz") as archive:
            for round_, submitter, system in SAMPLE:
                if round_ != rules:
                    continue
                base = root / "closed" / submitter
                for part in ("results", "measurements", "compliance"):
                    archive.add(base / part / system, f"closed/{submitter}/{part}/{system}")
                archive.add(base / "systems" / f"{system}.json",
                            f"closed/{submitter}/systems/{system}.json")
                for code in sorted((base / "code").glob("bert*")):
                    if code.is_file():  # code/bert-99 naming the folder that holds it
                        archive.add(code, code.relative_to(root).as_posix())
                        continue
                    # the code itself is not data: its README stands for it
                    for readme in sorted(code.rglob("README*"))[:1]:
                        archive.add(readme, readme.relative_to(root).as_posix())
        print(f"wrote {out / f'{rules}.tar.xz'} ({(out / f'{rules}.tar.xz').stat().st_size:,} "
              "bytes)")


def official_on_mutations(checker: Path) -> bool:
    """The official v1.0 checker on each mutation of the v1.0 sample, beside the harness."""
    print("| mutation | official v1.0.1 checker | harness | tag holds |")
    print("|---|---|---|---|")
    everyone = True
    for name, (mutate, fragment, _tag, _official) in MUTATIONS.items():
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "tree"
            root.mkdir()
            with tarfile.open(SAMPLE_DIR / "v1.0.tar.xz") as archive:
                archive.extractall(root, filter="data")
            mutate(root)
            report = check_submission(root, rules="v1.0")
            out = subprocess.run([sys.executable, str(checker), "--input", str(root),
                                  "--version", "v1.0", "--submitter", "NVIDIA", "--csv",
                                  str(Path(tmp) / "s.csv")], capture_output=True, text=True,
                                 cwd=checker.parent)
        text = out.stdout + out.stderr
        dropped = re.search(r"NoResults=(\d+)", text)
        errors = [line for line in text.splitlines() if " ERROR] " in line
                  and "NoResults" not in line and "SUMMARY" not in line]
        if "Traceback" in text:
            did = TAG_MEANS[CRASHES]
        elif dropped and int(dropped.group(1)):
            did = TAG_MEANS[ERROR]
        elif errors:
            did = TAG_MEANS[LOGGED]
        else:
            did = TAG_MEANS[UNCHECKED]
        found = [f for f in report.failures if fragment in f"{f.path}: {f.message}"]
        holds = bool(found) and TAG_MEANS[found[0].official] == did
        everyone &= holds
        shown = f"FAIL [{found[0].official}]" if found else "not caught"
        print(f"| {name} | {did} | {shown} | {'yes' if holds else 'NO'} |")
    return everyone


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", action="append", default=[], metavar="ROUND=PATH",
                        help="a results repository (checkout or bare git) of a round")
    parser.add_argument("--official", action="append", default=[], metavar="ROUND=PATH",
                        help="the round's submission-checker.py, run per submitter")
    parser.add_argument("--sample", type=Path, default=None,
                        help="write the tests' sample to this folder instead")
    parser.add_argument("--mutations", action="store_true",
                        help="run the official v1.0 checker (--official v1.0=PATH) on the "
                        "tests' mutations of the v1.0 sample")
    args = parser.parse_args()
    checkers = dict(item.split("=", 1) for item in args.official)
    if args.mutations:
        if "v1.0" not in checkers:
            parser.error("--mutations needs --official v1.0=PATH/submission-checker.py")
        return 0 if official_on_mutations(Path(checkers["v1.0"]).resolve()) else 1
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        trees = {}
        for item in args.results:
            rules, repo = item.split("=", 1)
            trees[rules] = Path(tmp) / rules
            count = extract_bert(Path(repo), trees[rules])
            print(f"{rules}: {count} files of BERT results from {repo}")
        if args.sample is not None:
            write_sample(trees, args.sample)
            return 0
        for rules, root in trees.items():
            checker = checkers.get(rules)
            ok &= agreement(rules, root, Path(checker).resolve() if checker else None)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
