"""One benchmark run: data -> features -> model -> backend -> LoadGen -> results.

:class:`RunConfig` holds every setting; its resolved form (with the model file's hash,
the backend's version and what it resolved to, the feature cache key, the exact
user.conf) is written as ``settings.json`` beside LoadGen's logs.
"""

from __future__ import annotations

import dataclasses
import platform
import queue
import signal
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from backends import BackendError, get_backend_class, model_backend
from backends.base import first_line, idle_cores, usable_cores
from backends.device import TimedDevice
from common.errors import ConfigError, HarnessError
from common.files import file_md5, refuse_links, write_json_atomic
from harness.config import RunConfig, config_record
from harness.loadgen import rules as run_rules
from harness.loadgen.driver import ForcedStop, RunInterrupted, run_test
from harness.loadgen.limits import (
    RunLimits,
    apply_limits,
    check_run_time,
    duration_text,
    expected_run_s,
    resolve_limits,
)
from harness.loadgen.qsl import QuerySampleLibrary
from harness.loadgen.results import (
    LoadGenResult,
    StagedRun,
    parse_detail_log,
    run_dir,
    write_text_atomic,
)
from harness.loadgen.scenarios import TABLE
from harness.loadgen.settings import (
    command_line_lines,
    expected_lines,
    make_test_settings,
    resolved_user_conf,
)
from harness.loadgen.sizing import (
    FASTER,
    conf_sets,
    effective_s_per_sample,
    server_test,
    service_times,
    size_from_warm_up,
)
from harness.loadgen.sut import BackendCallTimeout, LoadGenSUT, SUTSettings
from harness.report.index import rebuild_index
from harness.system import default_system_name, describe_host
from models.catalog import resolve_model, vocab_for_model
from squad.data import BERT_VOCAB, SQUAD_DEV, PreparedData, prepare_data
from squad.features import read_vocab

AUDIT_CONFIG = "audit.config"  # the name LoadGen looks for in the working directory
# The warm-up's per-call limit when --call-timeout is not given: before the test is sized
# nothing says how slow a call may be (BERT-Large on 2 cores: ~30 s for 8 samples).
WARM_UP_TIMEOUT_S = 120.0


@dataclasses.dataclass(frozen=True)
class RunOutcome:
    """Where the run went and what it measured."""

    directory: Path
    loadgen: LoadGenResult
    accuracy: Any | None = None
    expectation: float | None = None  # what LoadGen expected: samples/s, or ms a query
    simulated: str | None = None  # a self-timed device's "SIMULATED: ..." line
    unlikely: str | None = None  # why the warm-up predicted no VALID Server rate


def _log_settings(outdir: Path, keep_trace: bool = False):
    import mlperf_loadgen as lg

    log_settings = lg.LogSettings()
    log_settings.log_output.outdir = str(outdir)
    log_settings.log_output.copy_summary_to_stdout = False
    log_settings.enable_trace = keep_trace  # the trace is large and slows the run
    return log_settings


def execute(config: RunConfig) -> RunOutcome:
    """Run one LoadGen test as configured; raise HarnessError/BackendError on failure.

    A run stopped by a signal raises :class:`RunInterrupted` (its logs kept in an
    ``.interrupted-<time>`` folder); :class:`ForcedStop` means LoadGen may still be running
    and the process must exit at once.
    """
    config.validate()
    if Path(AUDIT_CONFIG).exists():
        raise ConfigError(
            f"{Path(AUDIT_CONFIG).absolute()}: LoadGen would apply this audit.config to the run "
            "without a word; remove it (compliance tests: python -m harness compliance)")
    backend_class = get_backend_class(config.backend)  # unknown names fail before any work
    backend_class(config.backend_settings)  # bad options too, before the cores are measured
    config, threads = _threads_for_machine(config, backend_class)
    backend = backend_class(config.backend_settings)  # load() comes later
    if config.batch_size is None and TABLE[config.scenario].device_batch \
            and isinstance(backend, TimedDevice):
        preferred = backend.preferred_batch_size()
        if preferred is not None:
            config = dataclasses.replace(config, batch_size=preferred)
    model = resolve_model(
        config.model, model_backend(config.backend, config.backend_settings.options),
        config.model_store, config.model_mirrors, download=config.data.download, data=config.data,
    )
    model_vocab = vocab_for_model(model)
    if model_vocab is not None and file_md5(model_vocab) != BERT_VOCAB.md5:
        raise ConfigError(
            f"{model_vocab}: this model's vocabulary differs from the MLPerf BERT vocab.txt, "
            "so the SQuAD features would not match it"
        )
    data = prepare_data(config.data, config.progress)
    system = config.system or default_system_name(getattr(backend, "system_tag", config.backend))
    final = run_dir(run_rules.results_root(config.results_dir, config.audit), system,
                    model.name, config.scenario, config.mode)
    # a link planted below results/ would carry the run's writes and moves outside
    refuse_links(Path(config.results_dir), final, "a run's results")
    expected = expected_lines(config.scenario, backend.expected_performance(model.path)
                              if isinstance(backend, TimedDevice) else None)
    expected_from = f"the {config.backend} backend's own model"
    if expected:
        print(f"note: LoadGen's test is sized by the {config.backend} backend's own model: "
              f"{'; '.join(expected)} (after the user.conf's lines)", file=sys.stderr)
    command_line = command_line_lines(config.scenario, config.target_qps,
                                      config.target_latency_ms)
    user_text = "" if config.user_conf is None else \
        Path(config.user_conf).read_text(encoding="utf-8", errors="replace")  # checked above
    key = TABLE[config.scenario].expectation
    sized_by_warm_up = not (expected or command_line or conf_sets(user_text, config.scenario,
                                                                   key))
    unlikely = None  # why the warm-up's model expects no VALID Server rate
    try:
        backend.load(model.path)
        warmup = _warm_up(backend, data.features, config,
                          config.call_timeout_s or WARM_UP_TIMEOUT_S)
        if threads:
            warmup["threads"] = threads
        if sized_by_warm_up:
            server = None
            if _profiles_lengths(backend, config):
                profile = _length_profile(backend, data.features, config,
                                          config.call_timeout_s or WARM_UP_TIMEOUT_S)
                warmup["length_profile_s"] = profile
                base = resolved_user_conf(config.user_conf, config.scenario,
                                          len(data.features), config.short_run)
                server = (service_times(profile, data.features.input_mask.sum(axis=1)),
                          server_test(base), config.short_run)
            sizing = size_from_warm_up(config.scenario, warmup["s_per_sample"], server)
            if config.rules != run_rules.LOADGEN:
                raise ConfigError(
                    f"rules {config.rules}: a submission run never guesses its expected "
                    f"performance; set {_flag_for(key)} (or bert.{config.scenario}.{key} in "
                    f"{config.user_conf}); the warm-up measured "
                    f"{sizing.measured_samples_per_s:.3g} samples/s, which suggests "
                    f"{_flag_for(key)} {sizing.value:g}")
            expected = [sizing.line(config.scenario)]
            expected_from = (f"sized from the warm-up ({sizing.measured_samples_per_s:.3g} "
                             f"samples/s measured, margin {sizing.margin:g}x)")
            warmup["sized"] = sizing.to_json()
            print(f"note: no expected performance was set for {config.scenario}, so the test "
                  f"is sized from the warm-up: {sizing.line(config.scenario)} "
                  f"({sizing.measured_samples_per_s:.3g} samples/s measured; set "
                  f"{_flag_for(key)} to choose)", file=sys.stderr)
            if sizing.server is not None and not sizing.server.feasible:
                unlikely = sizing.server.reason()
                print(f"warning: this Server test is unlikely to be VALID: {unlikely}; next: "
                      f"{FASTER}", file=sys.stderr)
        conf_text = resolved_user_conf(
            config.user_conf, config.scenario, len(data.features), config.short_run,
            run_rules.conf_lines(config.rules, config.scenario, len(data.features),
                                 config.short_run), config.rules, expected, expected_from,
            command_line,
        )
        test_settings = _test_settings(conf_text, config)
        limits = resolve_limits(
            test_settings, config.scenario, config.batch, config.call_timeout_s,
            None if config.max_run_minutes is None else config.max_run_minutes * 60,
        )
        apply_limits(test_settings, limits, config.mode)
        estimate_s, issued, samples = expected_run_s(
            test_settings, config.scenario, config.mode, len(data.features),
            warmup["s_per_sample"])
        warmup.update(estimated_run_s=round(estimate_s, 1), loadgen_issues=issued,
                      expected_samples=samples)
        check_run_time(estimate_s, issued, limits, config.scenario, warmup["s_per_sample"])
        print(f"LoadGen will issue {issued}: about {duration_text(estimate_s)} at the warm-up's "
              f"{1 / max(warmup['s_per_sample'], 1e-12):.3g} samples/s", file=sys.stderr,
              flush=True)
        staged = StagedRun(final)
        try:
            loadgen, accuracy = _record_and_run(staged, config, system, model, backend, data,
                                                conf_text, test_settings, limits, warmup)
        except BaseException as exc:
            _keep(staged, exc, config)
        outcome = RunOutcome(_commit(staged), loadgen, accuracy,
                             _expectation(test_settings, config.scenario),
                             simulated_line(backend.describe()), unlikely)
        rebuild_index(config.results_dir)  # results/index.html; a failure is only a warning
        return outcome
    finally:
        backend.close()


def _threads_for_machine(config: RunConfig, backend_class) -> tuple[RunConfig, dict | None]:
    """A thread count of 0 means every usable core that other work leaves idle (measured
    now, before the model loads): the config to run, and what was measured (settings.json).
    Backends whose intra-op threads do not compute on this machine's cores keep 0."""
    settings = config.backend_settings
    if settings.intra_op_threads or not backend_class.threads_on_local_cores:
        return config, None
    usable, idle = usable_cores(), idle_cores()
    measured = {"usable_cores": usable, "idle_cores": idle,
                "intra_op_threads": min(idle, usable), "source": "--threads 0: idle cores"}
    if idle >= usable:
        return config, measured
    print(f"note: other work keeps {usable - idle} of this process's {usable} cores busy, so "
          f"the {config.backend} backend runs {idle} intra-op thread{'s' * (idle > 1)} (a "
          "thread on a busy core would hold up every step; --threads N to choose)",
          file=sys.stderr)
    return dataclasses.replace(config, backend_settings=dataclasses.replace(
        settings, intra_op_threads=idle)), measured


def _test_settings(conf_text: str, config: RunConfig):
    """LoadGen's settings from the resolved user.conf (and audit.config), written to a
    scratch folder that LoadGen reads once (FromConfig is allowed once per process)."""
    audit_text = run_rules.audit_config_text(config.audit)
    with tempfile.TemporaryDirectory() as scratch:
        conf_path = Path(scratch) / "user.conf"
        conf_path.write_text(conf_text, encoding="utf-8")
        audit_path = None
        if audit_text is not None:  # handed to LoadGen, never left in the working directory
            audit_path = Path(scratch) / AUDIT_CONFIG
            audit_path.write_text(audit_text, encoding="utf-8")
        return make_test_settings(conf_path, config.scenario, config.mode, audit_path,
                                  run_rules.settings_overrides(config.rules, config.audit))


def _expectation(test_settings, scenario: str) -> float:
    """The expectation LoadGen ran with: samples/s, or ms a query."""
    entry = TABLE[scenario]
    value = float(getattr(test_settings, entry.loadgen_expectation))
    return value if entry.expectation == "target_qps" else value / 1e6


def _flag_for(key: str) -> str:
    return "--target-qps" if key == "target_qps" else "--target-latency-ms"


def _record_and_run(staged: StagedRun, config: RunConfig, system: str, model, backend,
                    data: PreparedData, conf_text: str, test_settings, limits: RunLimits,
                    warmup: dict) -> tuple[LoadGenResult, Any]:
    write_text_atomic(staged.path / "user.conf", conf_text)  # exactly what LoadGen read
    if config.audit is not None:
        write_text_atomic(staged.path / AUDIT_CONFIG, run_rules.audit_config_text(config.audit))
    record = _settings_record(config, system, model, backend, data)
    sut = dataclasses.asdict(_sut_settings(config, test_settings, limits,
                                           warmup.get("expected_samples")))
    sut["fixed_sequence_length"] = backend.fixed_sequence_length()
    rules = run_rules.rules_record(config.rules, config.scenario, config.mode,
                                   config.short_run, len(data.features), config.audit,
                                   limits.to_json())
    record.update(limits=limits.to_json(), warmup=warmup, sut=sut, rules=rules)
    write_json_atomic(staged.path / "settings.json", record)
    loadgen = _start_test(backend, data.features, config, test_settings, limits, staged.path,
                          warmup.get("expected_samples"))
    accuracy = _score(staged.path, data, model) if config.mode == "accuracy" else None
    _write_summary(staged.path, config, system, model.name, loadgen, accuracy,
                   simulated_line(record["backend"]))
    return loadgen, accuracy


def simulated_line(described: dict[str, Any]) -> str | None:
    """For a backend that models its timing (the wafer simulator): one line saying so, with
    its preset, release and band, for summary.txt and the command's output."""
    simulated = described.get("simulated")
    if not isinstance(simulated, dict):
        return None
    band = simulated.get("band_samples_per_s") or {}
    band_text = (f", band {band.get('low', 0):,.0f}-{band.get('high', 0):,.0f} samples/s "
                 f"(expected {band.get('expected', 0):,.0f})") if band else ""
    return (f"SIMULATED: timing modelled, not measured (preset {simulated.get('preset')}, "
            f"release {simulated.get('release')}{band_text}; LoadGen sized for "
            f"{simulated.get('loadgen_sized_for')})")


def _keep(staged: StagedRun, exc: BaseException, config: RunConfig) -> NoReturn:
    """Keep a run that did not finish, with a note saying why; raise what the user sees:
    one line naming the kept folder, and for a signal the exit code it calls for."""
    if isinstance(exc, KeyboardInterrupt):  # a Ctrl-C outside the LoadGen test itself
        exc = RunInterrupted(signal.SIGINT)
    interrupted = isinstance(exc, RunInterrupted) or (
        isinstance(exc, ForcedStop) and exc.exit_code > 128)
    if isinstance(exc, RunInterrupted):
        _summarise_stopped(staged.path, config, str(exc))
        note = f"{exc}\n"
    else:
        note = f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc()}"
    kept = staged.keep(note, "interrupted" if interrupted else "failed")
    where = f"The run's logs are kept in {kept}"
    if isinstance(exc, (RunInterrupted, ForcedStop)):
        exc.args = (f"{exc}. {where}",)  # keeps its exit code
        raise exc
    if isinstance(exc, OSError):  # a full disk, a read-only folder
        raise HarnessError(f"cannot write {exc.filename or 'the results'}: "
                           f"{exc.strerror or exc}. {where}") from None
    if isinstance(exc, (HarnessError, BackendError)):
        raise HarnessError(f"{exc}\n{where}") from exc
    raise exc


def _commit(staged: StagedRun) -> Path:
    try:
        return staged.commit()
    except OSError as exc:
        kept = staged.keep(f"could not move the finished run into place: {exc}")
        raise HarnessError(f"cannot move the finished run to {staged.final}: "
                           f"{exc.strerror or exc}. It is kept in {kept}") from None


def _summarise_stopped(outdir: Path, config: RunConfig, reason: str) -> None:
    """A summary for a run that LoadGen ended early, when its detail log is there."""
    try:
        result = parse_detail_log(outdir / "mlperf_log_detail.txt", config.scenario, config.mode)
        lines = [f"STOPPED EARLY: {reason}", *result.summary_lines()]
        write_text_atomic(outdir / "summary.txt", "\n".join(lines) + "\n")
    except (OSError, HarnessError, ValueError):
        pass  # no or partial logs: the note says what happened


def _warm_up(backend, features, config: RunConfig, timeout_s: float | None) -> dict:
    """Two untimed-by-LoadGen calls on real features of median length, at the length the
    run will use: the first warms caches, the second is timed; each must return within
    ``timeout_s``. Seconds per sample of the second call."""
    count = min(config.batch, len(features))
    by_length = np.argsort(features.input_mask.sum(axis=1), kind="stable")
    middle = (len(features) - count) // 2
    rows = sorted(int(r) for r in by_length[middle:middle + count])
    batch = _cut(backend, features.batch(rows), config)
    seconds = _timed_calls(backend, batch, timeout_s)
    return {"batch_size": len(batch), "s_per_call": seconds,
            "s_per_sample": effective_s_per_sample(seconds, len(batch))}


WARM_UP_CALLS = 5  # one warms caches, the other four are timed (fault options count all five)
# Server sizing: a sample at each of these quantiles of the features' lengths is timed (two
# calls each, the second timed) for the queueing model of harness.loadgen.sizing.
PROFILE_QUANTILES = (0.1, 0.5, 0.9, 0.99, 1.0)


def _profiles_lengths(backend, config: RunConfig) -> bool:
    """Whether a Server run is sized by the queueing model: one sample a call on a backend
    that computes (a self-timed device states its own figures)."""
    return TABLE[config.scenario].scheduled and config.batch == 1 \
        and not isinstance(backend, TimedDevice)


def _length_profile(backend, features, config: RunConfig,
                    timeout_s: float | None) -> list[tuple[int, float]]:
    """(length, seconds) of one call on a real feature at each of PROFILE_QUANTILES of the
    lengths, at the length the run will use."""
    lengths = features.input_mask.sum(axis=1)
    order = np.argsort(lengths, kind="stable")
    profile = []
    for quantile in PROFILE_QUANTILES:
        row = int(order[round(quantile * (len(order) - 1))])
        batch = _cut(backend, features.batch([row] * config.batch), config)
        profile.append((int(lengths[row]), _timed_calls(backend, batch, timeout_s, calls=2)))
    return profile


def _cut(backend, batch, config: RunConfig):
    """A batch cut to the length the SUT gives the backend (its longest row, rounded up to
    the bucket) when the backend takes any length."""
    if backend.fixed_sequence_length() is None and config.seq_bucket is not None:
        longest = int(batch.input_mask.sum(axis=1).max())
        seq = min(batch.input_ids.shape[1], -(-longest // config.seq_bucket) * config.seq_bucket)
        batch = type(batch)(*(a[:, :seq] for a in batch.arrays()))
    return batch


def _timed_calls(backend, batch, timeout_s: float | None, calls: int = WARM_UP_CALLS) -> float:
    """Seconds of one ``backend.predict`` call: ``calls`` calls on one daemon thread (the
    thread's start is not timed), each given up after ``timeout_s``; the fastest timed call
    (all but the first), the one least disturbed by other work on the machine (a single
    timed call of a backend that answers in microseconds can be ten times off)."""
    results: queue.SimpleQueue = queue.SimpleQueue()
    count = calls

    def calls_() -> None:
        for _ in range(count):
            started = time.perf_counter()
            try:
                backend.predict(batch)
            except BaseException as exc:  # noqa: BLE001 - re-raised below
                results.put(exc)
                return
            results.put(time.perf_counter() - started)

    threading.Thread(target=calls_, name="warm-up", daemon=True).start()
    timed: list[float] = []
    for number in range(count):
        try:
            item = results.get(timeout=timeout_s)
        except queue.Empty:
            raise BackendCallTimeout(
                f"backend {backend.name!r}: the warm-up call on {len(batch)} samples did not "
                f"return within {timeout_s:g} s (raise --call-timeout if the backend is that "
                "slow)") from None
        if isinstance(item, (BackendError, HarnessError)):
            raise item
        if isinstance(item, BaseException):  # the backend's own failure: one line
            raise BackendError(f"backend {backend.name!r} failed in its warm-up call on "
                               f"{len(batch)} samples: {type(item).__name__}: "
                               f"{first_line(item)}") from item
        if number > 0:
            timed.append(item)
    return min(timed)


BATCH_WAIT_SHARE = 0.05  # Server, batch > 1: wait up to this share of the latency bound


def _sut_settings(config: RunConfig, test_settings, limits: RunLimits,
                  expected_samples: int | None = None) -> SUTSettings:
    """How the SUT batches and bounds this run (recorded in settings.json)."""
    wait_ms = config.batch_wait_ms
    if wait_ms is None:
        bound_ms = test_settings.server_target_latency_ns / 1e6
        wait_ms = BATCH_WAIT_SHARE * bound_ms \
            if TABLE[config.scenario].waits_for_batch and config.batch > 1 else 0.0
    return SUTSettings(
        config.batch, config.progress, limits.call_timeout_s, limits.deadline_s,
        hold_on_stop=TABLE[config.scenario].scheduled and config.mode == "performance",
        seq_bucket=config.seq_bucket, sort_by_length=config.sort_by_length,
        batch_wait_s=wait_ms / 1000, expected_samples=expected_samples,
    )


def _start_test(backend, features, config: RunConfig, test_settings, limits: RunLimits,
                outdir: Path, expected_samples: int | None = None) -> LoadGenResult:
    qsl = QuerySampleLibrary(features, stage=backend.stage
                             if isinstance(backend, TimedDevice) else None)
    sut = LoadGenSUT(backend, qsl, _sut_settings(config, test_settings, limits,
                                                 expected_samples))
    sut_handle = sut.construct()
    qsl_handle = qsl.construct()
    started = time.monotonic()
    try:
        signum = run_test(sut, sut_handle, qsl_handle, test_settings,
                          _log_settings(outdir, config.keep_trace))
    except ForcedStop:
        raise  # LoadGen still holds the handles: leave them
    except BaseException:
        sut.destroy()
        qsl.destroy()
        raise
    sut.destroy()
    qsl.destroy()
    if signum is not None:
        raise RunInterrupted(signum)
    sut.raise_if_failed()
    if sut.stopped:  # the run passed its time limit
        raise HarnessError(f"the run was stopped: {sut.stop_reason}")
    result = parse_detail_log(outdir / "mlperf_log_detail.txt", config.scenario, config.mode)
    write_json_atomic(
        outdir / "result.json",
        {**result.to_json(), "wall_s": time.monotonic() - started, "backend_calls": sut.batches,
         "samples_completed": sut.completed, "qsl_loads": qsl.loads, **sut.throughput()},
    )
    return result


def _score(outdir: Path, data: PreparedData, model):
    from squad.accuracy import score_accuracy_log

    report, predictions = score_accuracy_log(
        outdir / "mlperf_log_accuracy.json", data.features, data.examples,
        read_vocab(data.vocab_path), model.precision, model.mlperf,
    )
    write_json_atomic(outdir / "predictions.json", predictions)
    write_json_atomic(outdir / "accuracy.json", report.to_json())
    write_text_atomic(outdir / "accuracy.txt", report.text())
    return report


def _settings_record(config, system, model, backend, data: PreparedData) -> dict:
    from importlib.metadata import version

    return {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": sys.argv,
        "system": system,
        "config": config_record(config),
        "model": model.to_json(),
        "backend": backend.describe(),
        "loadgen_version": version("mlcommons-loadgen"),
        "data": {
            "squad_file": str(data.squad_path),
            "squad_md5": SQUAD_DEV.md5,
            "vocab_file": str(data.vocab_path),
            "vocab_md5": BERT_VOCAB.md5,
            "feature_cache": str(data.cache_path),
            "features": len(data.features),
            "questions": data.features.num_examples,
        },
        "host": describe_host(),
        "python": platform.python_version(),
    }


def _write_summary(outdir, config: RunConfig, system, model_name, loadgen, accuracy,
                   simulated: str | None = None) -> None:
    lines = [f"system: {system}   model: {model_name}   backend: {config.backend}"]
    if simulated:
        lines.append(simulated)
    lines += loadgen.summary_lines()
    if config.short_run:
        lines.append("short run (--short): not valid for a submission")
    lines.append(f"rules: {config.rules}" + (f", compliance {config.audit}" if config.audit
                                             else ""))
    if accuracy is not None:
        lines.append(accuracy.text().splitlines()[0])
        lines += accuracy.text().splitlines()[2:]
    write_text_atomic(outdir / "summary.txt", "\n".join(lines) + "\n")
