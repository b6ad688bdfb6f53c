"""A model file never runs code or touches files: checks made before a framework loads one.

Each check reads the file's graph as data (protobuf messages, no framework runtime) and
raises :class:`~backends.base.BackendError` in one line, naming the file and what was
refused, before anything is imported into a session or run. Frameworks are not imported
here: the callers parse the file and pass the messages in.

TensorFlow (:func:`check_tf_frozen_graph`, :func:`check_tf_saved_model`): every op that
can run must be in :data:`TF_PURE_OPS`, pure computation on tensors and in-memory state
(variables). Ops that read or write files (``WriteFile``, ``ReadFile``, ``SaveV2``,
``MatchingFiles``...), run Python (``PyFunc``, ``EagerPyFunc``), print to a stream
(``PrintV2`` can name a file) or do anything else are refused, whatever they are called:
the list says what is allowed, not what is forbidden. Function bodies count: a call op
(``PartitionedCall``...) is checked through the functions it calls.

* A frozen graph has no legitimate use for anything but computation, so every node, and
  every function in its library, is checked.
* A SavedModel holds a saver subgraph whose save path (``SaveV2``, ``MergeV2Checkpoints``,
  ``StringJoin``...) writes files but is never run by loading for inference. What runs is
  (1) the signatures' outputs (what the backend fetches) and the init ops the loader runs
  (``__saved_model_init_op``, ``saved_model_main_op``, ``legacy_init_op``), and (2) the
  saver's restore op, which reads the SavedModel's own ``variables/`` files. Only what
  these depend on is checked (walking inputs and control inputs backwards, into called
  functions). (1) must be pure; (2) may also use ``RestoreV2``, and only with the file
  prefix the loader feeds (the saver's filename tensor, through ``Identity`` ops and
  function arguments): a ``RestoreV2`` of any other path is refused.

ONNX (:func:`check_onnx_model`): every node, in the main graph, in ``If``/``Loop``/``Scan``
subgraphs and in model-local functions, must use an operator domain of
:data:`ONNX_DOMAINS` (standard ONNX and ONNX Runtime's ``com.microsoft`` contrib ops, which
the transformer optimizer and the quantizer emit), or call a function the model defines
(its body is checked); ``com.microsoft`` ops that call into Python are refused. A custom-op
library is loaded only when the user names one, and then other domains are left to it.
Tensors stored as external data must lie in files inside the model's folder.

PyTorch files are read with ``torch.load(weights_only=True)``; :func:`torch_refusal`
words torch's refusals without its advice to load the file unsafely.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from backends.base import BackendError

# ---- TensorFlow ---------------------------------------------------------------------------

TF_PURE_OPS = frozenset({
    # graph plumbing and control flow (bodies of called functions are checked themselves)
    "Placeholder", "PlaceholderWithDefault", "Const", "Identity", "IdentityN", "NoOp",
    "StopGradient", "PreventGradient", "Snapshot", "CheckNumerics", "Assert",
    "PartitionedCall", "StatefulPartitionedCall", "If", "StatelessIf", "While",
    "StatelessWhile", "Switch", "Merge", "Enter", "Exit", "NextIteration", "LoopCond",
    # elementwise and reductions
    "Add", "AddV2", "AddN", "Sub", "Mul", "Div", "RealDiv", "DivNoNan", "FloorDiv", "FloorMod",
    "Neg", "Reciprocal", "Square", "Sqrt", "Rsqrt", "Pow", "Exp", "Log", "Log1p", "Abs", "Sign",
    "Floor", "Ceil", "Round", "Tanh", "Sigmoid", "Erf", "Erfc", "Relu", "Relu6", "Elu", "Selu",
    "Softplus", "Maximum", "Minimum", "SquaredDifference", "ClipByValue", "BiasAdd", "Cast",
    "Equal", "NotEqual", "Less", "LessEqual", "Greater", "GreaterEqual", "LogicalAnd",
    "LogicalOr", "LogicalNot", "Select", "SelectV2", "Where", "Mean", "Sum", "Max", "Min",
    "Prod", "ArgMax", "ArgMin", "Cumsum", "Softmax", "LogSoftmax",
    # matrix products (grappler's fused forms appear in graphs frozen after optimisation)
    "MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "Einsum", "_FusedMatMul",
    # shapes and indexing
    "Reshape", "Transpose", "ConcatV2", "Concat", "Split", "SplitV", "Slice", "StridedSlice",
    "Shape", "ShapeN", "Size", "Rank", "Gather", "GatherV2", "GatherNd", "ExpandDims",
    "Squeeze", "Pack", "Unpack", "Fill", "Range", "OneHot", "Tile", "ZerosLike", "OnesLike",
    "BroadcastTo", "BroadcastArgs", "Pad", "PadV2", "ReverseV2",
    # variables: in-memory state (a SavedModel's weights)
    "VarHandleOp", "ReadVariableOp", "AssignVariableOp", "VarIsInitializedOp", "VariableV2",
    "Assign", "IsVariableInitialized",
})
# Allowed only on the saver's restore path, reading the prefix the loader feeds.
TF_RESTORE_OPS = frozenset({"RestoreV2"})
CALL_OPS = frozenset({"PartitionedCall", "StatefulPartitionedCall"})
SAVED_MODEL_INIT_COLLECTIONS = ("saved_model_main_op", "legacy_init_op")
NOT_PURE = ("the graph contains operations that are not pure computation ({ops}); a model "
            "file must not read or write files or run code")
FOREIGN_RESTORE = "RestoreV2 of a path other than the SavedModel's variables"


def _node_name(tensor: str) -> str:
    """``"^a"``, ``"a"``, ``"a:1"``, ``"a:out:0"`` (inside functions) -> ``"a"``."""
    return tensor.lstrip("^").split(":")[0]


def _tensor_name(tensor: str) -> str:
    """The same tensor spelt one way: ``"a"`` -> ``"a:0"``."""
    return tensor if ":" in tensor else f"{tensor}:0"


def _origin(tensor: str, nodes: dict[str, Any]) -> str:
    """The tensor ``tensor`` passes on unchanged, through ``Identity`` ops."""
    seen: set[str] = set()
    while (node := nodes.get(_node_name(tensor))) is not None and node.op == "Identity" \
            and node.input and node.name not in seen:
        seen.add(node.name)
        tensor = node.input[0]
    return _tensor_name(tensor)


def _called_functions(node: Any) -> Iterator[str]:
    """Names of the functions an op's attributes name (call ops, If/While branches...)."""
    for value in node.attr.values():
        if value.HasField("func"):
            yield value.func.name
        yield from (f.name for f in value.list.func)


class _TFGraphCheck:
    """Collects the op types a graph would run that are not allowed."""

    def __init__(self, library: Any) -> None:
        self.functions = {f.signature.name: f for f in library.function}
        self.offending: set[str] = set()
        self._checked: set[tuple[str, frozenset[str], bool]] = set()

    def everything(self, graph_def: Any) -> None:
        """Every node of the graph and of every function in its library (no RestoreV2)."""
        for node in graph_def.node:
            self._op(node)
        for function in self.functions.values():
            for node in function.node_def:
                self._op(node)

    def _op(self, node: Any, restore: bool = False) -> None:
        allowed = node.op in TF_PURE_OPS or node.op in self.functions
        if not allowed and not (restore and node.op in TF_RESTORE_OPS):
            self.offending.add(node.op)

    def reachable(self, nodes: dict[str, Any], roots: Iterable[str], *, restore: bool = False,
                  prefixes: frozenset[str] = frozenset()) -> None:
        """Check what ``roots`` (node names) depend on, and the functions those call.

        ``restore``: the saver's restore path, where ``RestoreV2`` may read one of
        ``prefixes`` (tensor names that carry the file prefix the loader feeds).
        """
        stack, seen = list(roots), set()
        while stack:
            name = stack.pop()
            node = nodes.get(name)
            if node is None or name in seen:  # a function argument, or done already
                continue
            seen.add(name)
            self._op(node, restore)
            if node.op in TF_RESTORE_OPS and restore and (
                    not node.input or _origin(node.input[0], nodes) not in prefixes):
                self.offending.add(FOREIGN_RESTORE)
            self._calls(node, nodes, restore, prefixes)
            stack.extend(_node_name(tensor) for tensor in node.input)

    def _calls(self, node: Any, nodes: dict[str, Any], restore: bool,
               prefixes: frozenset[str]) -> None:
        """Check the bodies of the functions ``node`` calls, all their nodes (a function's
        stateful ops run whether or not its outputs need them)."""
        names = [node.op] if node.op in self.functions else list(_called_functions(node))
        direct = node.op in self.functions or node.op in CALL_OPS
        data_inputs = [tensor for tensor in node.input if not tensor.startswith("^")]
        for name in names:
            function = self.functions.get(name)
            if function is None:  # TensorFlow refuses a call to an undefined function
                continue
            args = [arg.name for arg in function.signature.input_arg]
            # which arguments receive the restore prefix (only a call passes inputs as args)
            carried = frozenset(
                _tensor_name(arg) for arg, tensor in zip(args, data_inputs, strict=False)
                if direct and _origin(tensor, nodes) in prefixes
            )
            key = (name, carried, restore)
            if key in self._checked:
                continue
            self._checked.add(key)
            body = {n.name: n for n in function.node_def}
            self.reachable(body, list(body), restore=restore, prefixes=carried)

    def raise_if_any(self, path: Path) -> None:
        if self.offending:
            raise BackendError(
                f"{path}: refused: " + NOT_PURE.format(ops=", ".join(sorted(self.offending)))
            )


def check_tf_frozen_graph(graph_def: Any, path: Path) -> None:
    """Refuse a frozen ``GraphDef`` with any op (in its nodes or functions) not pure compute."""
    check = _TFGraphCheck(graph_def.library)
    check.everything(graph_def)
    check.raise_if_any(path)


def _tensor_info_names(info: Any) -> Iterator[str]:
    """Tensor names a SavedModel ``TensorInfo`` refers to (dense, sparse or composite)."""
    if info.name:
        yield info.name
    if info.HasField("coo_sparse"):
        sparse = info.coo_sparse
        yield from (sparse.values_tensor_name, sparse.indices_tensor_name,
                    sparse.dense_shape_tensor_name)
    for component in info.composite_tensor.components:
        yield from _tensor_info_names(component)


def check_tf_saved_model(meta_graph: Any, path: Path) -> None:
    """Refuse a SavedModel ``MetaGraphDef`` whose loading or signatures would run an op that
    is not pure compute (see the module docstring for what is walked)."""
    graph_def = meta_graph.graph_def
    nodes = {node.name: node for node in graph_def.node}
    roots = [
        _node_name(name)
        for signature in meta_graph.signature_def.values()
        for info in signature.outputs.values()
        for name in _tensor_info_names(info)
    ]
    for key in SAVED_MODEL_INIT_COLLECTIONS:
        if key in meta_graph.collection_def:
            roots += [_node_name(n) for n in meta_graph.collection_def[key].node_list.value]
    check = _TFGraphCheck(graph_def.library)
    check.reachable(nodes, roots)
    saver = meta_graph.saver_def
    if saver.restore_op_name:
        prefix = frozenset({_tensor_name(saver.filename_tensor_name)})
        check.reachable(nodes, [_node_name(saver.restore_op_name)], restore=True,
                        prefixes=prefix)
    check.raise_if_any(path)


# ---- ONNX ---------------------------------------------------------------------------------

# "" and "ai.onnx" are standard ONNX; "com.microsoft" holds ONNX Runtime's contrib ops
# (Attention, SkipLayerNormalization, MatMulInteger, DynamicQuantizeMatMul, QAttention...).
ONNX_DOMAINS = frozenset({"", "ai.onnx", "com.microsoft"})
# contrib ops that call back into Python (ONNX Runtime training builds)
ONNX_REFUSED_OPS = frozenset({("com.microsoft", "PythonOp"), ("com.microsoft", "PythonOpGrad")})
EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL
ORT_MEMORY_TAG = "_ORT_MEM_ADDR_"  # ORT reads such "external data" from a memory address


def _attribute_graphs(node: Any) -> Iterator[Any]:
    """The graphs in a node's attributes (If branches, Loop and Scan bodies), nested ones too."""
    for attr in node.attribute:
        for graph in [attr.g] if attr.HasField("g") else []:
            yield from _onnx_graphs(graph)
        for graph in attr.graphs:
            yield from _onnx_graphs(graph)


def _onnx_graphs(graph: Any) -> Iterator[Any]:
    """``graph`` and every subgraph in its nodes' attributes, depth first."""
    yield graph
    for node in graph.node:
        yield from _attribute_graphs(node)


def _all_graphs(model: Any) -> Iterator[Any]:
    """The main graph, its subgraphs and the subgraphs in model-local functions' nodes."""
    yield from _onnx_graphs(model.graph)
    for function in model.functions:
        for node in function.node:
            yield from _attribute_graphs(node)


def _onnx_nodes(model: Any) -> Iterator[Any]:
    """Every node: of every graph, and of every model-local function."""
    for graph in _all_graphs(model):
        yield from graph.node
    for function in model.functions:
        yield from function.node


def _onnx_tensors(model: Any) -> Iterator[Any]:
    """Every TensorProto: initializers (dense and sparse) and tensor-valued attributes."""
    for graph in _all_graphs(model):
        yield from graph.initializer
        for sparse in graph.sparse_initializer:
            yield from (sparse.values, sparse.indices)
    for node in _onnx_nodes(model):
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            for sparse in [attr.sparse_tensor, *attr.sparse_tensors]:
                yield from (sparse.values, sparse.indices)


def check_onnx_model(model: Any, path: Path, *, custom_ops: bool = False) -> None:
    """Refuse operator domains the backends do not need, and external data outside the model's
    folder. ``model`` is an ``onnx.ModelProto`` read without its external data;
    ``custom_ops``: the user registered a custom-op library, which decides other domains."""
    path = Path(path)
    local = {(f.domain, f.name) for f in model.functions}
    foreign: dict[str, set[str]] = {}
    for node in _onnx_nodes(model):
        key = (node.domain, node.op_type)
        if key in ONNX_REFUSED_OPS or (
            node.domain not in ONNX_DOMAINS and key not in local and not custom_ops
        ):
            foreign.setdefault(node.domain or "ai.onnx", set()).add(node.op_type)
    if foreign:
        listed = "; ".join(f"{d}: {', '.join(sorted(ops))}" for d, ops in sorted(foreign.items()))
        raise BackendError(
            f"{path}: refused: the model uses operators the backends do not need ({listed}); "
            "a model file must not run code from custom-op libraries (name a library you "
            "trust with the backend option custom_ops_library=PATH)"
        )
    folder = path.resolve().parent
    for tensor in _onnx_tensors(model):
        if tensor.data_location != EXTERNAL and not len(tensor.external_data):
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        parts = re.split(r"[\\/]", location)
        target = (folder / location).resolve()
        if (not location or ORT_MEMORY_TAG in location or Path(location).is_absolute()
                or ".." in parts or not target.is_relative_to(folder)):
            raise BackendError(
                f"{path}: refused: tensor {tensor.name!r} keeps its data in {location!r}, "
                "which is not a file in the model's folder; a model file must not read "
                "other files"
            )


# ---- PyTorch ------------------------------------------------------------------------------

# torch's error texts advise loading unsafely or allowlisting; none of that is repeated.
UNSAFE_ADVICE = re.compile(r"weights_only|safe_globals|trust|file an issue|documentation of",
                           re.IGNORECASE)


def torch_refusal(text: str) -> str:
    """What torch's weights-only unpickler refused, in a few words, without its advice:
    ``"it calls posix.system"``, ``"pickle opcode 149"``..."""
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if found:
        return f"it calls {found.group(1)}"
    found = re.search(r"Unsupported operand (\d+)", text)
    if found:
        return f"pickle opcode {found.group(1)}, which a weights-only file does not use"
    return without_unsafe_advice(text) or "it is not a plain pickle of tensors"


def without_unsafe_advice(text: str) -> str:
    """The first line of ``text`` that is not torch's advice to load unsafely ("" if none)."""
    for line in text.splitlines():
        sentences = [s for s in re.split(r"(?<=\.)\s+", line.strip())
                     if s and not UNSAFE_ADVICE.search(s)
                     and not s.startswith(("Weights only load failed", "WeightsUnpickler"))]
        if sentences:
            return " ".join(sentences).rstrip(".")
    return ""
