"""TensorFlow backend: runs MLPerf's frozen ``model.pb`` or a SavedModel directory.

Both run in a ``tf.compat.v1.Session`` on their own graph, so one code path feeds and
fetches by tensor name. MLPerf's ``model.pb`` (frozen with Google/NVIDIA ``modeling.py``)
has int32 placeholders ``input_ids``, ``input_mask``, ``segment_ids`` fixed to ``[1, 384]``
and one output ``logits`` ``[B, S, 2]`` (start, end in the last axis): a placeholder with a
fixed batch size is fed in chunks of that size. Hugging Face input names and separate
``start_logits``/``end_logits`` outputs are accepted too (SavedModel signatures often use
them). Feed dtypes follow the graph (int32 or int64).

Threads: TensorFlow creates its intra-op pool once per process, when its runtime starts.
The first load sets ``tf.config.threading`` and starts the runtime (sessions also get the
counts in their ConfigProto); a later load asking for different counts is refused rather
than silently ignored. Code that ran TF earlier in the process fixes the pools instead.

Safety: before a session exists, the graph is read as data and refused, naming the ops, if
anything it would run is not pure computation (:mod:`backends.model_safety`: a frozen graph
entirely; a SavedModel as far as its signatures, init ops and variable restore reach).

TensorFlow is imported only when a model is loaded (``import`` of this module is cheap).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from pydantic.dataclasses import dataclass as pydantic_dataclass

from backends import tensor_names
from backends.base import Backend, BackendError, FeatureBatch, first_line
from backends.formats import SAVED_MODEL_FILE
from backends.model_safety import check_tf_frozen_graph, check_tf_saved_model
from common.settings import STRICT, choice, setting

if importlib.util.find_spec("tensorflow") is None:  # lets the registry name the [tf] extra
    raise ImportError("No module named 'tensorflow'", name="tensorflow")

# Either one [B, S, 2] tensor or a (start, end) pair of [B, S] tensors.
OUTPUT_NAMINGS: tuple[tuple[str, ...], ...] = (
    (tensor_names.LOGITS,), *tensor_names.OUTPUTS.values()
)
INPUT_DTYPES = {"int32": np.int32, "int64": np.int64}
WARMUP_SEQ_LEN = 384  # tokens; MLPerf's sequence length
SERVE_TAGS = ("serve",)  # the SavedModel MetaGraphDef loaded (its tag set, exactly)


def _tf() -> Any:
    """TensorFlow, imported with its C++ INFO/WARNING logs off unless the user set a level."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf


def _shape(tensor: Any) -> list[int | None]:
    return tensor.shape.as_list() if tensor.shape.rank is not None else []


def _describe(tensors: list[Any]) -> str:
    """``name [dims] dtype`` for each tensor, e.g. ``input_ids:0 [1, 384] int32``."""
    return ", ".join(f"{t.name} {_shape(t)} {t.dtype.name}" for t in tensors) or "(none)"


@pydantic_dataclass(frozen=True, config=STRICT)
class TensorFlowOptions:
    """``--backend-option``s of the TensorFlow backend."""

    graph_rewrites: choice(("on", "off")) = setting(  # type: ignore
        "on", choices=("on", "off"),
        help="grappler's optimisations; off loads faster (one-off checks)")


class TensorFlowBackend(Backend):
    """Runs a BERT SQuAD TensorFlow frozen graph (``.pb``) or SavedModel on CPU (or GPU)."""

    name = "tensorflow"
    threads_on_local_cores = True
    Options = TensorFlowOptions
    options: TensorFlowOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._session: Any = None
        self._model_path: Path | None = None
        self._format = ""
        self._feeds: tuple[str, ...] = ()  # tensor names, FeatureBatch order
        self._fetches: tuple[str, ...] = ()  # one logits tensor, or start and end
        self._dtypes: tuple[type[np.integer], ...] = ()
        self._fixed_batch: int | None = None
        self._fixed_seq: int | None = None
        self._warmup_s: float | None = None

    def version(self) -> str:
        """The TensorFlow version, e.g. ``"2.21.0"``."""
        return _tf().__version__

    # ---- loading -------------------------------------------------------------------------

    def _session_config(self, tf: Any) -> Any:
        """Apply thread counts process-wide (first use wins in TF) and build a ConfigProto."""
        s = self.settings
        threading = tf.config.threading
        for label, value, setter, getter in (
            ("intra", s.intra_op_threads, threading.set_intra_op_parallelism_threads,
             threading.get_intra_op_parallelism_threads),
            ("inter", s.inter_op_threads, threading.set_inter_op_parallelism_threads,
             threading.get_inter_op_parallelism_threads),
        ):
            try:
                setter(value)
            except RuntimeError as exc:  # TF already started in this process
                if value and getter() != value:
                    raise BackendError(
                        f"TensorFlow already runs in this process with {label}-op threads "
                        f"{getter() or 'default'}; it cannot switch to {value}. Start a new "
                        "process for a different thread count."
                    ) from exc
        # Starting the runtime now creates the intra-op pool with these counts (a Session alone
        # would not lock them in) and makes any later, different request fail above.
        tf.config.list_logical_devices("CPU")
        gpus = tf.config.list_physical_devices("GPU")
        if s.device == "gpu" and not gpus:
            raise BackendError(
                f"device 'gpu' requested but TensorFlow {tf.__version__} sees no GPU "
                "(tensorflow-cpu has no CUDA support). Install tensorflow[and-cuda] on a machine "
                "with a GPU, or use device 'cpu' or 'auto'."
            )
        rewrites = self.options.graph_rewrites
        config = tf.compat.v1.ConfigProto(
            intra_op_parallelism_threads=s.intra_op_threads,
            inter_op_parallelism_threads=s.inter_op_threads,
            device_count={"GPU": 0} if s.device == "cpu" else {},
            allow_soft_placement=True,
        )
        config.graph_options.rewrite_options.disable_meta_optimizer = rewrites == "off"
        return config

    def load(self, model_path: Path) -> None:
        """Open a frozen graph ``.pb`` or a SavedModel directory and bind its tensor names."""
        path = Path(model_path)
        if path.is_dir() and not (path / SAVED_MODEL_FILE).is_file():
            raise BackendError(
                f"{path} is a directory without {SAVED_MODEL_FILE}: not a SavedModel. Pass a "
                "frozen graph .pb file or a SavedModel directory."
            )
        if not path.exists():
            raise BackendError(
                f"TensorFlow model {path} does not exist; expected a frozen graph .pb or a "
                "SavedModel directory. Fetch it with `make model MODEL=bert-large-fp32-tf` or "
                "build one with `python -m models.convert SRC model.pb`."
            )
        tf = _tf()
        # Read and check the graph before anything of it is imported or run.
        graph_def = None if path.is_dir() else self._read_frozen_graph(tf, path)
        if graph_def is None:
            self._check_saved_model(path)
        config = self._session_config(tf)
        graph = tf.Graph()
        session = tf.compat.v1.Session(graph=graph, config=config)
        try:
            if graph_def is None:
                self._format = "tf-savedmodel"
                self._bind_saved_model(tf, session, path)
            else:
                self._format = "tf-frozen"
                self._bind_frozen_graph(tf, session, path, graph_def)
        except BaseException:
            session.close()
            raise
        self._session, self._model_path = session, path
        # TF optimises the graph (grappler) on the first run, ~10 s per BERT-Large layer on
        # 2 cores: do it here, so that it is not timed as the first query's latency.
        started = time.perf_counter()
        shape = (self._fixed_batch or 1, self._fixed_seq or WARMUP_SEQ_LEN)
        ones = np.ones(shape, dtype=np.int64)
        self.predict(FeatureBatch(ones, ones, np.zeros(shape, dtype=np.int64)))
        self._warmup_s = time.perf_counter() - started

    @staticmethod
    def _frozen_graph_error(path: Path, exc: Exception) -> BackendError:
        return BackendError(
            f"TensorFlow cannot load {path} as a frozen graph: {first_line(exc)}. The file "
            "may be corrupt or truncated, or not a GraphDef; fetch or convert it again."
        )

    def _read_frozen_graph(self, tf: Any, path: Path) -> Any:
        """The GraphDef in ``path``, refused unless every op in it is pure computation."""
        graph_def = tf.compat.v1.GraphDef()
        try:
            graph_def.ParseFromString(path.read_bytes())
        except Exception as exc:  # DecodeError, RuntimeWarning...
            raise self._frozen_graph_error(path, exc) from exc
        check_tf_frozen_graph(graph_def, path)
        return graph_def

    def _check_saved_model(self, path: Path) -> None:
        """Refuse the SavedModel if what loading and serving it would run is not pure
        computation. The loader reads ``saved_model.pb`` first (before ``.pbtxt``) and takes
        the first MetaGraphDef whose tag set is exactly ``SERVE_TAGS``: so does this."""
        from tensorflow.core.protobuf import saved_model_pb2

        saved_model = saved_model_pb2.SavedModel()
        try:
            saved_model.ParseFromString((path / SAVED_MODEL_FILE).read_bytes())
        except Exception as exc:  # DecodeError, OSError
            raise self._saved_model_error(path, exc) from exc
        meta_graph = next((m for m in saved_model.meta_graphs
                           if set(m.meta_info_def.tags) == set(SERVE_TAGS)), None)
        if meta_graph is not None:  # else the loader refuses it, before running anything
            check_tf_saved_model(meta_graph, path)

    def _bind_frozen_graph(self, tf: Any, session: Any, path: Path, graph_def: Any) -> None:
        try:
            with session.graph.as_default():
                tf.graph_util.import_graph_def(graph_def, name="")
        except Exception as exc:  # InvalidArgumentError, ValueError...
            raise self._frozen_graph_error(path, exc) from exc
        graph = session.graph
        placeholders = [op.outputs[0] for op in graph.get_operations() if op.type == "Placeholder"]
        by_name = {t.name.split(":")[0]: t for t in placeholders}
        inputs = next((n for n in tensor_names.INPUTS.values() if set(n) <= set(by_name)), None)
        ops = {op.name: op for op in graph.get_operations()}
        outputs = next((n for n in OUTPUT_NAMINGS if all(o in ops for o in n)), None)
        if inputs is None or outputs is None:
            consumed = {t.op.name for op in graph.get_operations() for t in op.inputs}
            candidates = [op.outputs[0] for op in graph.get_operations()
                          if op.name not in consumed and op.outputs and op.type != "Const"]
            raise BackendError(self._names_message(path, placeholders, candidates))
        self._bind(path, [by_name[n] for n in inputs], [ops[n].outputs[0] for n in outputs])

    def _bind_saved_model(self, tf: Any, session: Any, path: Path) -> None:
        logger = tf.get_logger()
        level = logger.level
        logger.setLevel(logging.ERROR)  # the v1 loader logs a deprecation notice on every load
        try:
            meta_graph = tf.compat.v1.saved_model.load(session, list(SERVE_TAGS), str(path))
        except Exception as exc:
            raise self._saved_model_error(path, exc) from exc
        finally:
            logger.setLevel(level)
        signatures = meta_graph.signature_def
        key = "serving_default" if "serving_default" in signatures else None
        if key is None and len(signatures) == 1:
            key = next(iter(signatures))
        if key is None:
            raise BackendError(
                f"{path} has no serving_default signature; signatures: "
                f"{', '.join(signatures) or '(none)'}. Save it with a serving_default signature."
            )
        signature = signatures[key]
        graph = session.graph
        sig_in = {k: graph.get_tensor_by_name(v.name) for k, v in signature.inputs.items()}
        sig_out = {k: graph.get_tensor_by_name(v.name) for k, v in signature.outputs.items()}
        inputs = tensor_names.match_inputs(sig_in)
        outputs = next((n for n in OUTPUT_NAMINGS if set(n) <= set(sig_out)), None)
        if inputs is None or outputs is None:
            message = self._names_message(path, list(sig_in.values()), list(sig_out.values()))
            listing = f" Signature {key!r}: inputs {sorted(sig_in)}, outputs {sorted(sig_out)}."
            raise BackendError(message + listing)
        self._bind(path, [sig_in[n] for n in inputs], [sig_out[n] for n in outputs])

    @staticmethod
    def _saved_model_error(path: Path, exc: Exception) -> BackendError:
        return BackendError(
            f"TensorFlow cannot load the SavedModel {path} (tag 'serve'): "
            f"{first_line(exc)}. Export it again with a serving signature."
        )

    @staticmethod
    def _names_message(path: Path, inputs: list[Any], outputs: list[Any]) -> str:
        accepted_out = " or ".join("(" + ", ".join(n) + ")" for n in OUTPUT_NAMINGS)
        return (
            f"{path} is not a BERT SQuAD model this backend understands. "
            f"Placeholders: {_describe(inputs)}; candidate outputs: {_describe(outputs)}. "
            f"Accepted inputs: {tensor_names.accepted_inputs()}; accepted outputs: {accepted_out}."
        )

    def _bind(self, path: Path, inputs: list[Any], outputs: list[Any]) -> None:
        """Record feed/fetch names, feed dtypes and any fixed batch or sequence length."""
        dtypes = []
        for tensor in inputs:
            if tensor.dtype.name not in INPUT_DTYPES:
                raise BackendError(f"{path}: input {tensor.name} is {tensor.dtype.name}; "
                                   f"expected {' or '.join(INPUT_DTYPES)}")
            dtypes.append(INPUT_DTYPES[tensor.dtype.name])
        shape = _shape(inputs[0])
        if shape and len(shape) != 2:
            raise BackendError(f"{path}: input {inputs[0].name} has shape {shape}; expected [B, S]")
        self._fixed_batch, self._fixed_seq = (shape[0], shape[1]) if shape else (None, None)
        self._feeds = tuple(t.name for t in inputs)
        self._fetches = tuple(t.name for t in outputs)
        self._dtypes = tuple(dtypes)

    # ---- inference -----------------------------------------------------------------------

    def predict(self, batch: FeatureBatch) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(start_logits, end_logits)``, float32 ``[B, S]`` (C-contiguous)."""
        if self._session is None:
            raise BackendError("tensorflow backend: call load() before predict()")
        arrays = batch.arrays()
        shape = np.shape(arrays[0])
        if self._fixed_seq is not None and shape[1] != self._fixed_seq:
            raise BackendError(
                f"{self._model_path} takes sequences of exactly {self._fixed_seq} tokens; got "
                f"{shape[1]}. Use max_seq_length {self._fixed_seq} or a model with a dynamic axis."
            )
        feeds = [np.asarray(a).astype(d, copy=False) for a, d in zip(arrays, self._dtypes,
                                                                    strict=True)]
        step = self._fixed_batch or shape[0]
        starts, ends = [], []
        for lo in range(0, shape[0], step):
            chunk = [f[lo:lo + step] for f in feeds]
            rows = chunk[0].shape[0]
            if rows < step:  # a fixed-batch graph: pad the last chunk with copies of a row
                chunk = [np.concatenate([c, np.repeat(c[-1:], step - rows, axis=0)])
                         for c in chunk]
            start, end = self._run(chunk, (step, shape[1]))
            starts.append(start[:rows])
            ends.append(end[:rows])
        start = starts[0] if len(starts) == 1 else np.concatenate(starts)
        end = ends[0] if len(ends) == 1 else np.concatenate(ends)
        return np.ascontiguousarray(start), np.ascontiguousarray(end)

    def _run(self, feeds: list[np.ndarray], shape: tuple[int, int]) -> tuple[np.ndarray, ...]:
        try:
            out = self._session.run(list(self._fetches), dict(zip(self._feeds, feeds, strict=True)))
        except Exception as exc:  # out-of-range ids, shapes the graph rejects...
            raise BackendError(
                f"TensorFlow failed on a batch of shape {shape} with {self._model_path} "
                f"(inputs {', '.join(self._feeds)}): {first_line(exc)}"
            ) from exc
        if len(out) == 1:  # MLPerf's logits [B, S, 2]
            logits = out[0]
            if logits.shape != (*shape, 2):
                raise BackendError(f"model returned logits of shape {logits.shape}, expected "
                                   f"{(*shape, 2)}")
            out = [logits[..., 0], logits[..., 1]]
        result = []
        for logits in out:
            if logits.shape != shape and logits.size == shape[0] * shape[1]:
                logits = logits.reshape(shape)
            if logits.shape != shape:
                raise BackendError(f"model returned logits of shape {logits.shape}, "
                                   f"expected {shape}")
            result.append(np.ascontiguousarray(logits, dtype=np.float32))
        return tuple(result)

    def fixed_sequence_length(self) -> int | None:
        """384 for MLPerf's ``model.pb`` (its placeholders are fixed to [1, 384])."""
        return self._fixed_seq

    # ---- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        """Close the session and free the graph."""
        if self._session is not None:
            self._session.close()
        self._session = None

    def describe(self) -> dict[str, Any]:
        """Base description plus model path/format, tensor names, devices and threads."""
        info = super().describe()
        session = self._session
        threading = _tf().config.threading
        info.update(
            model_path=str(self._model_path) if self._model_path else None,
            model_format=self._format or None,
            input_names=list(self._feeds),
            input_dtypes=[np.dtype(d).name for d in self._dtypes],
            output_names=list(self._fetches),
            fixed_batch_size=self._fixed_batch,
            fixed_sequence_length=self._fixed_seq,
            warmup_s=self._warmup_s,
            devices=[d.name for d in session.list_devices()] if session is not None else [],
            intra_op_threads=threading.get_intra_op_parallelism_threads(),
            inter_op_threads=threading.get_inter_op_parallelism_threads(),
        )
        return info
