"""ONNX Runtime backend: runs MLPerf's ``model.onnx`` or a Hugging Face export.

The tensor names are read from the graph, inputs and outputs independently, because the
MLCommons files mix conventions: ``model.onnx`` uses MLPerf names throughout, while
``bert_large_v1_1_fake_quant.onnx`` and Hugging Face exports use Hugging Face input names.
Feed dtypes follow the graph (int64 or int32). Imports neither torch nor transformers.

Safety: before ONNX Runtime sees the file, it is read with ``onnx`` (without its external
data) and refused if a node uses an operator domain the backends do not need, or a tensor
keeps its data outside the model's folder (:func:`backends.model_safety.check_onnx_model`).
No custom-op library is registered unless the user names one (``custom_ops_library``).
"""

from __future__ import annotations

import importlib.util
import mmap
import queue
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from pydantic.dataclasses import dataclass as pydantic_dataclass

from backends import formats, tensor_names
from backends.base import Backend, BackendError, FeatureBatch, first_line, usable_cores
from backends.model_safety import check_onnx_model
from common.settings import STRICT, Whole, choice, setting

if importlib.util.find_spec("onnx") is None:  # lets the registry name the [onnx] extra
    raise ImportError("No module named 'onnx'", name="onnx")

INPUT_DTYPES: dict[str, type[np.integer]] = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}
GRAPH_OPT_LEVELS: dict[str, ort.GraphOptimizationLevel] = {
    "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
CPU, CUDA = "CPUExecutionProvider", "CUDAExecutionProvider"
ON_OFF = ("on", "off")


@pydantic_dataclass(frozen=True, config=STRICT)
class OnnxRuntimeOptions:
    """``--backend-option``s of the ONNX Runtime backend."""

    graph_optimization_level: choice(tuple(GRAPH_OPT_LEVELS)) = setting(  # type: ignore
        "all", choices=tuple(GRAPH_OPT_LEVELS), help="ONNX Runtime's graph optimisations")
    custom_ops_library: Path | None = setting(
        None, help="PATH of an ONNX Runtime custom-op library you trust (default none); its "
        "operator domains are then allowed")
    optimizer: choice(("none", "transformers")) = setting(  # type: ignore
        "none", choices=("none", "transformers"),
        help="transformers: ONNX Runtime's BERT fusions (Attention, SkipLayerNorm...), "
        "applied in memory at load")
    arena: choice(ON_OFF) = setting(  # type: ignore
        "on", choices=ON_OFF, help="ONNX Runtime's CPU memory arena")
    spinning: choice(ON_OFF) = setting(  # type: ignore
        "on", choices=ON_OFF, help="intra-op threads spin between calls")
    instances: Whole = setting(
        1, ge=1, le=64, unit="sessions",
        help="N sessions sharing the threads, each serving its own call, so N batches run "
        "at once")


def _describe_tensors(args: list[Any]) -> str:
    """``name [dims] type`` for each ORT NodeArg, e.g. ``input_ids ['batch', 384] int64``."""
    return ", ".join(f"{a.name} {list(a.shape)} {a.type}" for a in args) or "(none)"


class OnnxRuntimeBackend(Backend):
    """Runs a BERT SQuAD ONNX model with ONNX Runtime (CPU, or CUDA when asked/available)."""

    name = "onnxruntime"
    threads_on_local_cores = True
    Options = OnnxRuntimeOptions
    options: OnnxRuntimeOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._session: ort.InferenceSession | None = None
        self._model_path: Path | None = None
        self._input_names: tuple[str, str, str] = tensor_names.INPUTS["mlperf"]
        self._output_names: tuple[str, str] = tensor_names.OUTPUTS["mlperf"]
        self._input_dtypes: tuple[type[np.integer], ...] = (np.int64,) * 3
        self._opt_level = "all"
        self._fixed_seq: int | None = None
        self._custom_ops: Path | None = None
        self._choices: dict[str, str] = {}
        self._fusions: dict[str, int] = {}
        self._servers: list[threading.Thread] = []  # one per session when instances > 1
        self._calls: queue.SimpleQueue = queue.SimpleQueue()

    def version(self) -> str:
        """The onnxruntime package version, e.g. ``"1.31.1"``."""
        return ort.__version__

    # ---- loading -------------------------------------------------------------------------

    def _providers(self) -> list[str]:
        """Execution providers to request, from ``settings.device``."""
        device = self.settings.device
        available = ort.get_available_providers()
        if device == "cpu":
            return [CPU]
        if device == "auto":
            return [CUDA, CPU] if CUDA in available else [CPU]
        if CUDA not in available:  # device "gpu"
            raise BackendError(
                f"device 'gpu' needs ONNX Runtime's {CUDA}, but this onnxruntime "
                f"({ort.__version__}) offers only: {', '.join(available)}. Install "
                "onnxruntime-gpu on a machine with CUDA, or use device 'cpu' or 'auto'."
            )
        return [CUDA, CPU]

    def _session_options(self) -> ort.SessionOptions:
        """SessionOptions from the settings (threads: 0 = every core this process may use;
        ONNX Runtime's own default was 2.8x slower on the 2-core VM it was measured on)."""
        s, o = self.settings, self.options
        self._choices = {"optimizer": o.optimizer, "arena": o.arena, "spinning": o.spinning}
        level = o.graph_optimization_level
        self._opt_level = level
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = s.intra_op_threads or usable_cores()
        opts.inter_op_num_threads = s.inter_op_threads
        opts.enable_cpu_mem_arena = self._choices["arena"] == "on"
        opts.add_session_config_entry(
            "session.intra_op.allow_spinning", "1" if self._choices["spinning"] == "on" else "0")
        opts.graph_optimization_level = GRAPH_OPT_LEVELS[level]
        library = o.custom_ops_library
        self._custom_ops = None
        if library is not None:  # only ever a library the user named
            library = Path(library)
            if not library.is_file():
                raise BackendError(f"custom_ops_library {library} is not a file; pass the path "
                                   "of an ONNX Runtime custom-op library (.so, .dll, .dylib)")
            try:
                opts.register_custom_ops_library(str(library))
            except Exception as exc:  # not a library, or not one for this ONNX Runtime
                raise BackendError(f"ONNX Runtime cannot register the custom-op library "
                                   f"{library}: {first_line(exc)}") from exc
            self._custom_ops = library
        return opts

    def _check_model_file(self, path: Path) -> None:
        """Read ``path`` as data (no external data) and refuse what a model must not do."""
        import onnx

        model = onnx.ModelProto()
        try:  # as onnx.load(load_external_data=False) does, mapped: ~2x faster on BERT-Large
            with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) \
                    as mapped:
                model.ParseFromString(memoryview(mapped))
        except Exception as exc:  # DecodeError, ValueError (an empty file)...
            raise BackendError(
                f"cannot read {path} as an ONNX model: {first_line(exc)}. The file may be "
                "corrupt or truncated; fetch or export it again."
            ) from exc
        check_onnx_model(model, path, custom_ops=self._custom_ops is not None)

    def _fused(self, path: Path) -> bytes:
        """The model with ONNX Runtime's BERT fusions, serialised in memory (nothing written)."""
        from onnxruntime.transformers.optimizer import optimize_model

        config, _ = formats.config_beside(path)  # else the fusion scripts guess from the graph
        try:
            optimized = optimize_model(str(path), model_type="bert", opt_level=0,
                                       num_heads=int(config.get("num_attention_heads", 0)),
                                       hidden_size=int(config.get("hidden_size", 0)))
        except Exception as exc:  # an unusual graph the fusion scripts cannot read
            raise BackendError(f"ONNX Runtime's transformer optimizer failed on {path}: "
                               f"{first_line(exc)}; load it without optimizer=transformers") \
                from exc
        self._fusions = {k: v for k, v in optimized.get_fused_operator_statistics().items() if v}
        return optimized.model.SerializeToString()

    def load(self, model_path: Path) -> None:
        """Open ``model_path`` (an ``.onnx`` file) and work out its tensor names and dtypes."""
        path = Path(model_path)
        if not path.is_file():
            what = "is a directory, not" if path.is_dir() else "does not exist; expected"
            raise BackendError(
                f"ONNX model {path} {what} an .onnx file. Fetch or build it with "
                "`make model MODEL=...`, or pass the path of an existing .onnx file."
            )
        opts = self._session_options()
        providers = self._providers()
        self._check_model_file(path)
        source: str | bytes = str(path)
        if self._choices["optimizer"] == "transformers":
            source = self._fused(path)
        instances = self._instances()
        if instances > 1:  # the cores are shared out: each session serves one call at a time
            opts.intra_op_num_threads = max(1, opts.intra_op_num_threads // instances)
        try:
            session = ort.InferenceSession(source, sess_options=opts, providers=providers)
            extra = [ort.InferenceSession(source, sess_options=opts, providers=providers)
                     for _ in range(instances - 1)]
        except Exception as exc:  # ORT raises several pybind types (InvalidProtobuf, Fail...)
            raise BackendError(
                f"ONNX Runtime cannot load {path}: {first_line(exc)}. The file may be corrupt "
                "or truncated; fetch or export it again."
            ) from exc
        # ORT silently falls back to CPU when CUDA fails to initialise; 'gpu' must not.
        if self.settings.device == "gpu" and CUDA not in session.get_providers():
            raise BackendError(
                f"device 'gpu' requested but ONNX Runtime could not start {CUDA} for {path} "
                f"(providers in use: {', '.join(session.get_providers())})"
            )
        self._detect_names(session, path)
        self._session, self._model_path = session, path
        self._start_instances([session, *extra] if extra else [])

    def _instances(self) -> int:
        return self.options.instances

    def _start_instances(self, sessions: list[ort.InferenceSession]) -> None:
        """One daemon thread per session, taking calls from a shared queue."""
        self._servers = [threading.Thread(target=self._serve, args=(s,), daemon=True,
                                          name=f"ort-instance-{i}")
                         for i, s in enumerate(sessions)]
        for server in self._servers:
            server.start()

    def _serve(self, session: ort.InferenceSession) -> None:
        while (call := self._calls.get()) is not None:
            batch, future = call
            try:
                future.set_result(self._run(session, batch))
            except BaseException as exc:  # noqa: BLE001 - delivered through the future
                future.set_exception(exc)

    def max_in_flight(self) -> int:
        return max(1, len(self._servers))

    def predict_async(self, batch: FeatureBatch) -> Future:
        """With instances > 1, queue the call for the next free session."""
        future: Future = Future()
        if self._servers:
            self._calls.put((batch, future))
            return future
        try:  # one session: in the caller's thread (max_in_flight 1: the harness's thread)
            future.set_result(self.predict(batch))
        except BaseException as exc:  # noqa: BLE001 - delivered through the future
            future.set_exception(exc)
        return future

    def _detect_names(self, session: ort.InferenceSession, path: Path) -> None:
        """Match the graph's inputs and outputs to a known naming; raise listing both if not."""
        inputs = {a.name: a for a in session.get_inputs()}
        outputs = {a.name for a in session.get_outputs()}
        in_names = tensor_names.match_inputs(inputs)
        out_names = tensor_names.match_outputs(outputs)
        if in_names is None or out_names is None:
            raise BackendError(
                f"{path} is not a BERT SQuAD model this backend understands. "
                f"Graph inputs: {_describe_tensors(session.get_inputs())}; "
                f"graph outputs: {_describe_tensors(session.get_outputs())}. "
                f"Accepted inputs: {tensor_names.accepted_inputs()}; "
                f"accepted outputs: {tensor_names.accepted_outputs()}."
            )
        dtypes = []
        for name in in_names:
            onnx_type = inputs[name].type
            if onnx_type not in INPUT_DTYPES:
                raise BackendError(
                    f"{path}: input {name!r} has type {onnx_type}; expected "
                    f"{' or '.join(INPUT_DTYPES)}"
                )
            dtypes.append(INPUT_DTYPES[onnx_type])
        self._input_names, self._output_names = in_names, out_names
        self._input_dtypes = tuple(dtypes)
        # a graph exported with a fixed sequence axis (an int, not a name) needs that length
        dims = inputs[in_names[0]].shape
        self._fixed_seq = dims[1] if len(dims) == 2 and isinstance(dims[1], int) else None

    def fixed_sequence_length(self) -> int | None:
        """The graph's sequence length when its input fixes one, else None (any length)."""
        return self._fixed_seq

    # ---- inference -----------------------------------------------------------------------

    def predict(self, batch: FeatureBatch) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(start_logits, end_logits)``, float32 ``[B, S]`` (C-contiguous)."""
        if self._session is None:
            raise BackendError("onnxruntime backend: call load() before predict()")
        return self._run(self._session, batch)

    def _run(self, session: ort.InferenceSession, batch: FeatureBatch):
        arrays = batch.arrays()
        shape = np.shape(arrays[0])
        # astype(copy=False) is free when the harness already holds the graph's dtype.
        feeds = {
            name: np.ascontiguousarray(np.asarray(a).astype(dtype, copy=False))
            for name, a, dtype in zip(self._input_names, arrays, self._input_dtypes, strict=True)
        }
        try:
            start, end = session.run(list(self._output_names), feeds)
        except Exception as exc:  # shape the graph does not accept, out-of-range ids...
            raise BackendError(
                f"ONNX Runtime failed on a batch of shape {shape} with {self._model_path} "
                f"(graph inputs: {_describe_tensors(session.get_inputs())}): "
                f"{first_line(exc)}"
            ) from exc
        return self._as_logits(start, shape), self._as_logits(end, shape)

    @staticmethod
    def _as_logits(out: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """Float32 ``[B, S]``; some exports emit ``[B, S, 1]`` or float16."""
        if out.shape != shape and out.size == shape[0] * shape[1]:
            out = out.reshape(shape)
        if out.shape != shape:
            raise BackendError(f"model returned logits of shape {out.shape}, expected {shape}")
        return np.ascontiguousarray(out, dtype=np.float32)

    # ---- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        """Drop the sessions (ORT frees their memory when the last reference goes)."""
        for _ in self._servers:
            self._calls.put(None)
        self._servers = []
        self._session = None

    def describe(self) -> dict[str, Any]:
        """Base description plus model path, providers in use, tensor names and threads."""
        info = super().describe()
        session = self._session
        info.update(
            model_path=str(self._model_path) if self._model_path else None,
            providers=session.get_providers() if session is not None else [],
            input_names=list(self._input_names),
            input_dtypes=[np.dtype(d).name for d in self._input_dtypes],
            output_names=list(self._output_names),
            intra_op_threads=self.settings.intra_op_threads or usable_cores(),
            inter_op_threads=self.settings.inter_op_threads,
            graph_optimization_level=self._opt_level,
            custom_ops_library=str(self._custom_ops) if self._custom_ops else None,
            **self._choices,
            fusions=self._fusions,
            instances=max(1, len(self._servers)),
        )
        return info
