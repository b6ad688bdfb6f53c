"""LoadGen test settings, the LoadGen 6 way.

mlperf.conf is built into LoadGen 6; the harness calls ``TestSettings.FromConfig`` exactly
once, with one user.conf that it writes beside the results: the user's file verbatim,
followed by the lines the harness adds (a smaller query sample library, the short-run
setting). What LoadGen read is therefore always on disk next to its logs.
"""

from __future__ import annotations

from pathlib import Path

from harness.errors import ConfigError

SCENARIOS = ("SingleStream", "MultiStream", "Server", "Offline")
MODES = ("performance", "accuracy")
LOADGEN_MODEL = "bert"  # the benchmark name mlperf.conf knows

# Short-run setting: enough to see a real LoadGen run in about ten seconds of timed work per
# scenario on a laptop. The results are INVALID for a submission (the real minimum is 600 s
# and, for BERT, 10833 Offline samples or 270336 Server queries), and are marked as such.
SHORT_RUN_LINES = {
    scenario: (
        f"*.{scenario}.min_duration = 10000",
        f"*.{scenario}.min_query_count = 1",
    )
    for scenario in SCENARIOS
}
# Also in LoadGen's own defaults: the most samples the QSL holds in memory at once for BERT.
MLPERF_PERFORMANCE_SAMPLE_COUNT = 10833


def check_scenario(scenario: str) -> str:
    """Return the scenario name, or raise ConfigError listing the valid ones."""
    if scenario not in SCENARIOS:
        raise ConfigError(f"unknown scenario {scenario!r}; choose one of {', '.join(SCENARIOS)}")
    return scenario


def resolved_user_conf(
    user_conf: Path | None, scenario: str, qsl_size: int, short_run: bool
) -> str:
    """Text of the single user.conf LoadGen will read for this run."""
    check_scenario(scenario)
    parts: list[str] = []
    if user_conf is not None:
        try:
            parts.append(f"# --- from {user_conf}\n" + Path(user_conf).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"{user_conf}: cannot read user.conf ({exc})") from exc
    added: list[str] = []
    if qsl_size < MLPERF_PERFORMANCE_SAMPLE_COUNT:
        # A QSL smaller than mlperf.conf's 10833 (--max-examples): LoadGen must not index past it.
        added.append(f"*.*.performance_sample_count_override = {qsl_size}")
    if short_run:
        added.extend(SHORT_RUN_LINES[scenario])
    if added:
        parts.append("# --- added by the harness\n" + "\n".join(added) + "\n")
    return "\n".join(parts)


def make_test_settings(conf_path: Path, scenario: str, mode: str):
    """Build ``mlperf_loadgen.TestSettings`` from the resolved user.conf (one FromConfig call)."""
    import mlperf_loadgen as lg

    check_scenario(scenario)
    if mode not in MODES:
        raise ConfigError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    settings = lg.TestSettings()
    settings.scenario = getattr(lg.TestScenario, scenario)
    settings.mode = (
        lg.TestMode.AccuracyOnly if mode == "accuracy" else lg.TestMode.PerformanceOnly
    )
    # FromConfig reports problems through its return code, not an exception.
    status = settings.FromConfig(str(conf_path), LOADGEN_MODEL, scenario)
    if status != 0:
        raise ConfigError(
            f"{conf_path}: LoadGen rejected this user.conf (FromConfig returned {status}); "
            "check its lines have the form 'model.Scenario.key = value'"
        )
    return settings
