"""One benchmark run: data -> features -> model -> backend -> LoadGen -> results.

:class:`RunConfig` holds every setting; its resolved form (with the model file's hash,
the backend's version and what it resolved to, the feature cache key, the exact
user.conf) is written as ``settings.json`` beside LoadGen's logs.
"""

from __future__ import annotations

import dataclasses
import platform
import signal
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any, NoReturn

from backends import BackendError, BackendSettings, get_backend_class, model_backend
from backends.device import TimedDevice
from common.errors import ConfigError, HarnessError
from common.files import file_md5, write_json_atomic
from harness.loadgen import rules as run_rules
from harness.loadgen.driver import ForcedStop, RunInterrupted, run_test
from harness.loadgen.limits import (
    RunLimits,
    apply_limits,
    check_run_time,
    expected_run_s,
    resolve_limits,
)
from harness.loadgen.qsl import QuerySampleLibrary
from harness.loadgen.results import (
    DEFAULT_RESULTS,
    LoadGenResult,
    StagedRun,
    parse_detail_log,
    run_dir,
    write_text_atomic,
)
from harness.loadgen.settings import (
    MODES,
    check_scenario,
    check_user_conf,
    expected_lines,
    make_test_settings,
    resolved_user_conf,
)
from harness.loadgen.sut import BackendCallTimeout, LoadGenSUT, SUTSettings
from harness.system import default_system_name, describe_host
from models.catalog import DEFAULT_MODEL, DEFAULT_STORE, resolve_model, vocab_for_model
from squad.data import BERT_VOCAB, SQUAD_DEV, DataConfig, PreparedData, prepare_data
from squad.features import read_vocab

# Batch sizes when none is given: Offline batches of 8 similar-length samples ran the demo
# model at 1.4x batch 1 (ORT, variable length, this 2-core VM); MultiStream queries carry 8
# samples; Server and SingleStream answer each query as it comes.
DEFAULT_BATCH_SIZES = {"Offline": 8, "MultiStream": 8}
# Where a device's own throughput batch (TimedDevice.preferred_batch_size) replaces that
# default: MultiStream's batch is its query of 8, Server and SingleStream answer as they come.
DEVICE_BATCH_SCENARIOS = frozenset({"Offline"})
AUDIT_CONFIG = "audit.config"  # the name LoadGen looks for in the working directory


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run; ``short_run`` trades validity for minutes."""

    scenario: str = "Offline"
    mode: str = "performance"
    backend: str = "onnxruntime"
    model: str = DEFAULT_MODEL
    system: str | None = None
    batch_size: int | None = None  # None: DEFAULT_BATCH_SIZES for the scenario
    backend_settings: BackendSettings = BackendSettings()
    user_conf: Path | None = Path("user.conf")
    short_run: bool = False
    data: DataConfig = DataConfig()
    model_store: Path = DEFAULT_STORE
    model_mirrors: tuple[Path, ...] = ()
    results_dir: Path = DEFAULT_RESULTS
    progress: bool = True
    # Limits (harness.loadgen.limits): None takes the default from the user.conf's
    # expectations; call_timeout_s 0 turns the per-call timeout off.
    call_timeout_s: float | None = None
    max_run_minutes: float | None = None
    # Variable-length execution (harness.loadgen.sut.SUTSettings): batches run at their
    # longest real length rounded up to seq_bucket tokens (None: padded to 384), samples
    # batched in order of length; batch_wait_ms None: BATCH_WAIT_SHARE of the Server
    # latency bound when batching, else 0.
    seq_bucket: int | None = 1
    sort_by_length: bool = True
    batch_wait_ms: float | None = None
    # keep LoadGen's trace (mlperf_log_trace.json: every sample's latency); large and slows a
    # fast run, so off unless asked for (a sweep's latency-distribution point asks)
    keep_trace: bool = False
    # The rules (harness.loadgen.rules): "loadgen" is LoadGen 6's own mlperf.conf, "v1.0"
    # the MLPerf v1.0 BERT rules; audit: a compliance test's settings (TEST01, TEST05).
    rules: str = run_rules.LOADGEN
    audit: str | None = None

    @property
    def batch(self) -> int:
        """The batch size this run uses."""
        return self.batch_size or DEFAULT_BATCH_SIZES.get(self.scenario, 1)

    def validate(self) -> None:
        check_scenario(self.scenario)
        size = self.batch_size
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
            raise ConfigError(f"--batch-size must be an integer of at least 1, got "
                              f"{self.batch_size!r}")
        if self.call_timeout_s is not None and not self.call_timeout_s >= 0:
            raise ConfigError(f"--call-timeout must be >= 0 seconds (0: none), got "
                              f"{self.call_timeout_s}")
        if self.seq_bucket is not None and self.seq_bucket < 1:
            raise ConfigError(f"--seq-bucket must be at least 1 token (0: padded), got "
                              f"{self.seq_bucket}")
        if self.batch_wait_ms is not None and not self.batch_wait_ms >= 0:
            raise ConfigError(f"--batch-wait-ms must be >= 0, got {self.batch_wait_ms}")
        if self.max_run_minutes is not None and not self.max_run_minutes > 0:
            raise ConfigError(f"--max-run-minutes must be positive, got {self.max_run_minutes}")
        if self.mode not in MODES:
            raise ConfigError(f"unknown mode {self.mode!r}; choose one of {', '.join(MODES)}")
        run_rules.check_rules(self.rules, self.scenario, self.mode, self.audit)
        if self.data.max_examples is not None and self.data.max_examples < 1:
            raise ConfigError("--max-examples must be at least 1")
        if self.user_conf is not None and not Path(self.user_conf).is_file():
            raise ConfigError(f"{self.user_conf}: user.conf not found (pass --user-conf PATH)")
        if self.user_conf is not None:
            check_user_conf(Path(self.user_conf))  # in milliseconds, before any model work


@dataclasses.dataclass(frozen=True)
class RunOutcome:
    """Where the run went and what it measured."""

    directory: Path
    loadgen: LoadGenResult
    accuracy: Any | None = None


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
    backend = backend_class(config.backend_settings)  # bad options too; load() comes later
    if config.batch_size is None and config.scenario in DEVICE_BATCH_SCENARIOS \
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
    system = config.system or default_system_name(config.backend)
    final = run_dir(run_rules.results_root(config.results_dir, config.audit), system,
                    model.name, config.scenario, config.mode)
    expected = expected_lines(config.scenario, backend.expected_performance(model.path)
                              if isinstance(backend, TimedDevice) else None)
    if expected:
        print(f"note: LoadGen's test is sized by the {config.backend} backend's own model: "
              f"{'; '.join(expected)} (after the user.conf's lines)", file=sys.stderr)
    conf_text = resolved_user_conf(
        config.user_conf, config.scenario, len(data.features), config.short_run,
        run_rules.conf_lines(config.rules, config.scenario, len(data.features),
                             config.short_run), config.rules, expected, config.backend,
    )
    audit_text = run_rules.audit_config_text(config.audit)
    # Everything that can be wrong with the inputs fails here, before anything is written.
    with tempfile.TemporaryDirectory() as scratch:
        conf_path = Path(scratch) / "user.conf"
        conf_path.write_text(conf_text, encoding="utf-8")
        audit_path = None
        if audit_text is not None:  # handed to LoadGen, never left in the working directory
            audit_path = Path(scratch) / AUDIT_CONFIG
            audit_path.write_text(audit_text, encoding="utf-8")
        test_settings = make_test_settings(
            conf_path, config.scenario, config.mode, audit_path,
            run_rules.settings_overrides(config.rules, config.audit))
    limits = resolve_limits(
        test_settings, config.scenario, config.batch, config.call_timeout_s,
        None if config.max_run_minutes is None else config.max_run_minutes * 60,
    )
    apply_limits(test_settings, limits, config.mode)
    try:
        backend.load(model.path)
        warmup = _warm_up(backend, data.features, config, limits.call_timeout_s)
        estimate_s, issued = expected_run_s(test_settings, config.scenario, config.mode,
                                            len(data.features), warmup["s_per_sample"])
        warmup.update(estimated_run_s=round(estimate_s, 1), loadgen_issues=issued)
        check_run_time(estimate_s, issued, limits, config.scenario, warmup["s_per_sample"])
        staged = StagedRun(final)
        try:
            loadgen, accuracy = _record_and_run(staged, config, system, model, backend, data,
                                                conf_text, test_settings, limits, warmup)
        except BaseException as exc:
            _keep(staged, exc, config)
        return RunOutcome(_commit(staged), loadgen, accuracy)
    finally:
        backend.close()


def _record_and_run(staged: StagedRun, config: RunConfig, system: str, model, backend,
                    data: PreparedData, conf_text: str, test_settings, limits: RunLimits,
                    warmup: dict) -> tuple[LoadGenResult, Any]:
    write_text_atomic(staged.path / "user.conf", conf_text)  # exactly what LoadGen read
    if config.audit is not None:
        write_text_atomic(staged.path / AUDIT_CONFIG, run_rules.audit_config_text(config.audit))
    record = _settings_record(config, system, model, backend, data)
    sut = dataclasses.asdict(_sut_settings(config, test_settings, limits))
    sut["fixed_sequence_length"] = backend.fixed_sequence_length()
    rules = run_rules.rules_record(config.rules, config.scenario, config.mode,
                                   config.short_run, len(data.features), config.audit,
                                   limits.to_json())
    record.update(limits=limits.to_json(), warmup=warmup, sut=sut, rules=rules)
    write_json_atomic(staged.path / "settings.json", record)
    loadgen = _start_test(backend, data.features, config, test_settings, limits, staged.path)
    accuracy = _score(staged.path, data, model) if config.mode == "accuracy" else None
    _write_summary(staged.path, config, system, model.name, loadgen, accuracy)
    return loadgen, accuracy


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
    """Two untimed-by-LoadGen calls on real features, at the length the run will use: the
    first warms caches, the second is timed; each must return within ``timeout_s``.
    Seconds per sample of the second call."""
    rows = list(range(min(config.batch, len(features))))
    batch = features.batch(rows)
    longest = int(features.input_mask[rows].sum(axis=1).max())
    if backend.fixed_sequence_length() is None and config.seq_bucket is not None:
        seq = min(batch.input_ids.shape[1], -(-longest // config.seq_bucket) * config.seq_bucket)
        batch = type(batch)(*(a[:, :seq] for a in batch.arrays()))
    seconds = 0.0
    for _ in range(2):
        started = time.perf_counter()
        _call_with_timeout(backend, batch, timeout_s)
        seconds = time.perf_counter() - started
    return {"batch_size": len(batch), "s_per_sample": seconds / len(batch)}


def _call_with_timeout(backend, batch, timeout_s: float | None) -> None:
    """``backend.predict`` on a daemon thread: a call that never returns is given up."""
    outcome: list[BaseException | None] = []

    def call() -> None:
        try:
            backend.predict(batch)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            outcome.append(exc)

    thread = threading.Thread(target=call, name="warm-up", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if not outcome:
        raise BackendCallTimeout(
            f"backend {backend.name!r}: the warm-up call on {len(batch)} samples did not return "
            f"within {timeout_s:g} s (raise --call-timeout if the backend is that slow)"
        )
    if outcome[0] is not None:
        raise outcome[0]


BATCH_WAIT_SHARE = 0.05  # Server, batch > 1: wait up to this share of the latency bound


def _sut_settings(config: RunConfig, test_settings, limits: RunLimits) -> SUTSettings:
    """How the SUT batches and bounds this run (recorded in settings.json)."""
    wait_ms = config.batch_wait_ms
    if wait_ms is None:
        bound_ms = test_settings.server_target_latency_ns / 1e6
        wait_ms = BATCH_WAIT_SHARE * bound_ms \
            if config.scenario == "Server" and config.batch > 1 else 0.0
    return SUTSettings(
        config.batch, config.progress, limits.call_timeout_s, limits.deadline_s,
        hold_on_stop=config.scenario == "Server" and config.mode == "performance",
        seq_bucket=config.seq_bucket, sort_by_length=config.sort_by_length,
        batch_wait_s=wait_ms / 1000,
    )


def _start_test(backend, features, config: RunConfig, test_settings, limits: RunLimits,
                outdir: Path) -> LoadGenResult:
    qsl = QuerySampleLibrary(features, stage=backend.stage
                             if isinstance(backend, TimedDevice) else None)
    sut = LoadGenSUT(backend, qsl, _sut_settings(config, test_settings, limits))
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
        "config": dataclasses.asdict(config),
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


def _write_summary(outdir, config: RunConfig, system, model_name, loadgen, accuracy) -> None:
    lines = [f"system: {system}   model: {model_name}   backend: {config.backend}"]
    lines += loadgen.summary_lines()
    if config.short_run:
        lines.append("short run (--short): not valid for a submission")
    lines.append(f"rules: {config.rules}" + (f", compliance {config.audit}" if config.audit
                                             else ""))
    if accuracy is not None:
        lines.append(accuracy.text().splitlines()[0])
        lines += accuracy.text().splitlines()[2:]
    write_text_atomic(outdir / "summary.txt", "\n".join(lines) + "\n")
