"""One benchmark run: data -> features -> model -> backend -> LoadGen -> results.

:class:`RunConfig` holds every setting; its resolved form (with the model file's hash,
the backend's version and what it resolved to, the feature cache key, the exact
user.conf) is written as ``settings.json`` beside LoadGen's logs.
"""

from __future__ import annotations

import dataclasses
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from backends import BackendSettings, get_backend_class
from harness.errors import ConfigError, HarnessError
from harness.files import file_md5, write_json_atomic
from harness.loadgen.qsl import QuerySampleLibrary
from harness.loadgen.results import (
    DEFAULT_RESULTS,
    LoadGenResult,
    StagedRun,
    parse_detail_log,
    run_dir,
    write_text_atomic,
)
from harness.loadgen.settings import MODES, check_scenario, make_test_settings, resolved_user_conf
from harness.loadgen.sut import LoadGenSUT, SUTSettings
from harness.squad.data import BERT_VOCAB, SQUAD_DEV, DataConfig, PreparedData, prepare_data
from harness.squad.features import read_vocab
from harness.system import default_system_name, describe_host
from models.catalog import DEFAULT_MODEL, DEFAULT_STORE, resolve_model, vocab_for_model


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run; ``short_run`` trades validity for minutes."""

    scenario: str = "Offline"
    mode: str = "performance"
    backend: str = "onnxruntime"
    model: str = DEFAULT_MODEL
    system: str | None = None
    batch_size: int = 1
    backend_settings: BackendSettings = BackendSettings()
    user_conf: Path | None = Path("user.conf")
    short_run: bool = False
    data: DataConfig = DataConfig()
    model_store: Path = DEFAULT_STORE
    model_mirrors: tuple[Path, ...] = ()
    results_dir: Path = DEFAULT_RESULTS
    progress: bool = True

    def validate(self) -> None:
        check_scenario(self.scenario)
        if self.mode not in MODES:
            raise ConfigError(f"unknown mode {self.mode!r}; choose one of {', '.join(MODES)}")
        if self.data.max_examples is not None and self.data.max_examples < 1:
            raise ConfigError("--max-examples must be at least 1")
        if self.user_conf is not None and not Path(self.user_conf).is_file():
            raise ConfigError(f"{self.user_conf}: user.conf not found (pass --user-conf PATH)")


@dataclasses.dataclass(frozen=True)
class RunOutcome:
    """Where the run went and what it measured."""

    directory: Path
    loadgen: LoadGenResult
    accuracy: Any | None = None


def _log_settings(outdir: Path):
    import mlperf_loadgen as lg

    log_settings = lg.LogSettings()
    log_settings.log_output.outdir = str(outdir)
    log_settings.log_output.copy_summary_to_stdout = False
    log_settings.enable_trace = False  # the trace is large and slows the run
    return log_settings


def execute(config: RunConfig) -> RunOutcome:
    """Run one LoadGen test as configured; raise HarnessError/BackendError on failure."""
    config.validate()
    backend_class = get_backend_class(config.backend)  # unknown names fail before any work
    model = resolve_model(config.model, config.backend, config.model_store, config.model_mirrors,
                          download=config.data.download, data=config.data)
    model_vocab = vocab_for_model(model)
    if model_vocab is not None and file_md5(model_vocab) != BERT_VOCAB.md5:
        raise ConfigError(
            f"{model_vocab}: this model's vocabulary differs from the MLPerf BERT vocab.txt, "
            "so the SQuAD features would not match it"
        )
    data = prepare_data(config.data, config.progress)
    system = config.system or default_system_name(config.backend)
    final = run_dir(config.results_dir, system, model.name, config.scenario, config.mode)
    conf_text = resolved_user_conf(
        config.user_conf, config.scenario, len(data.features), config.short_run
    )
    # Everything that can be wrong with the inputs fails here, before anything is written.
    with tempfile.TemporaryDirectory() as scratch:
        conf_path = Path(scratch) / "user.conf"
        conf_path.write_text(conf_text, encoding="utf-8")
        test_settings = make_test_settings(conf_path, config.scenario, config.mode)
    backend = backend_class(config.backend_settings)
    backend.load(model.path)
    staged = StagedRun(final)
    try:
        write_text_atomic(staged.path / "user.conf", conf_text)  # exactly what LoadGen read
        record = _settings_record(config, system, model, backend, data)
        write_json_atomic(staged.path / "settings.json", record)
        loadgen = _start_test(backend, data.features, config, test_settings, staged.path)
        accuracy = None
        if config.mode == "accuracy":
            accuracy = _score(staged.path, data, model)
        _write_summary(staged.path, config, system, model.name, loadgen, accuracy)
    except BaseException as exc:
        failed = staged.fail(f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc()}")
        if isinstance(exc, HarnessError):
            raise HarnessError(f"{exc}\nThe run's logs are kept in {failed}") from exc
        raise
    finally:
        backend.close()
    return RunOutcome(staged.commit(), loadgen, accuracy)


def _start_test(backend, features, config: RunConfig, test_settings, outdir: Path) -> LoadGenResult:
    import mlperf_loadgen as lg

    qsl = QuerySampleLibrary(features)
    sut = LoadGenSUT(backend, qsl, SUTSettings(config.batch_size, config.progress))
    sut_handle = sut.construct()
    qsl_handle = qsl.construct()
    started = time.monotonic()
    try:
        lg.StartTestWithLogSettings(sut_handle, qsl_handle, test_settings, _log_settings(outdir))
    finally:
        sut.destroy()
        qsl.destroy()
    sut.raise_if_failed()
    result = parse_detail_log(outdir / "mlperf_log_detail.txt", config.scenario, config.mode)
    write_json_atomic(
        outdir / "result.json",
        {**result.to_json(), "wall_s": time.monotonic() - started, "backend_calls": sut.batches,
         "samples_completed": sut.completed, "qsl_loads": qsl.loads},
    )
    return result


def _score(outdir: Path, data: PreparedData, model):
    from harness.squad.accuracy import score_accuracy_log

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
    if accuracy is not None:
        lines.append(accuracy.text().splitlines()[0])
        lines += accuracy.text().splitlines()[2:]
    write_text_atomic(outdir / "summary.txt", "\n".join(lines) + "\n")
