"""The MLPerf Inference submission tree, declared once: folder and file names, and the
scenario folders real trees use. The tree builder, the compliance runs, the submission's
runs and the checker all name paths from here::

    <root>/<division>/<submitter>/
        systems/<system>.json
        code/<benchmark>/<implementation>/...
        measurements/<system>/<benchmark>/<scenario>/{mlperf.conf,user.conf,README.md,
                                                     <system>_<implementation>_<scenario>.json}
        results/<system>/<benchmark>/<scenario>/{accuracy/,performance/run_1/}
        compliance/<system>/<benchmark>/<scenario>/<TEST>/{verify_*.txt,accuracy/,
                                                          performance/run_1/}
"""

from __future__ import annotations

from pathlib import Path

DIVISIONS = ("closed", "open")
SYSTEMS, CODE, MEASUREMENTS, RESULTS, COMPLIANCE = (
    "systems", "code", "measurements", "results", "compliance")
ACCURACY = "accuracy"
PERFORMANCE = "performance"
RUN_1 = "run_1"
POWER, RANGING = "power", "ranging"  # power (MaxQ) runs: beside run_1

# LoadGen's logs and the files beside them
SUMMARY_LOG = "mlperf_log_summary.txt"
DETAIL_LOG = "mlperf_log_detail.txt"
ACCURACY_LOG = "mlperf_log_accuracy.json"
TRACE_LOG = "mlperf_log_trace.json"
ACCURACY_TXT = "accuracy.txt"
SPL_TXT = "spl.txt"  # a power run's power samples
VERIFY_ACCURACY = "verify_accuracy.txt"
VERIFY_PERFORMANCE = "verify_performance.txt"
BASELINE_ACCURACY = "baseline_accuracy.txt"  # TEST01, when responses differ between modes
COMPLIANCE_ACCURACY = "compliance_accuracy.txt"

# What each folder holds, as the MLCommons checkers list them
ACCURACY_FILES = (SUMMARY_LOG, DETAIL_LOG, ACCURACY_TXT, ACCURACY_LOG)
PERFORMANCE_FILES = (SUMMARY_LOG, DETAIL_LOG)
PERFORMANCE_OPTIONAL_FILES = (ACCURACY_LOG,)
POWER_PERFORMANCE_FILES = (SPL_TXT,)
IGNORED_FILES = (TRACE_LOG, "results.json")  # the checkers skip them in any file list
TEST01_ACCURACY_FILES = (ACCURACY_LOG, ACCURACY_TXT)
TEST01_FALLBACK_FILES = (BASELINE_ACCURACY, COMPLIANCE_ACCURACY)

# Scenario folders: the proper names, and the lower-case ones some real trees use (Intel's
# v1.0 and v1.1 BERT results); the MLCommons checkers map them the same way.
SCENARIO_FOLDERS = {"singlestream": "SingleStream", "multistream": "MultiStream",
                    "server": "Server", "offline": "Offline"}


def scenario_of(folder: str) -> str:
    """The scenario a folder name stands for (``offline`` -> ``Offline``); other names as
    they are."""
    return SCENARIO_FOLDERS.get(folder, folder)


def system_file(submitter_dir: Path, system: str) -> Path:
    return Path(submitter_dir) / SYSTEMS / f"{system}.json"


def result_dir(submitter_dir: Path, system: str, benchmark: str, scenario: str) -> Path:
    return Path(submitter_dir) / RESULTS / system / benchmark / scenario


def performance_run(scenario_dir: Path) -> Path:
    """``performance/run_1`` under a result's or a compliance test's folder."""
    return Path(scenario_dir) / PERFORMANCE / RUN_1


def measurements_dir(submitter_dir: Path, system: str, benchmark: str, scenario: str) -> Path:
    return Path(submitter_dir) / MEASUREMENTS / system / benchmark / scenario


def compliance_dir(submitter_dir: Path, system: str, benchmark: str, scenario: str) -> Path:
    return Path(submitter_dir) / COMPLIANCE / system / benchmark / scenario


def implementation_file(system: str, implementation: str, scenario: str) -> str:
    """``<system>_<implementation>_<scenario>.json`` in a result's measurements folder."""
    return f"{system}_{implementation}_{scenario}.json"
