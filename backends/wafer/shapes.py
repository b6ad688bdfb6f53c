"""The model's real work: layer shapes, and per layer FLOPs, weights and activations.

An :class:`Architecture` comes from the model being run -- an ONNX graph (initializer
shapes: the embedding table gives vocabulary and hidden width, the feed-forward matrices the
layer count and FFN width, the attention reshape constants the head width) or a Hugging Face
``config.json`` (``bert_config.json`` beside MLPerf's files) -- or from a name in :data:`ZOO`
(the modelzoo R1.6.0 families at their published sizes), so a model can be timed without its
weights.

:func:`layer_costs` turns it into stages at a token count: FLOPs per sample count the
matrix products (2 per multiply-add: projections, attention scores and weighted sums, FFN,
heads); elementwise work (softmax, GELU, LayerNorm, embedding sums) is left out. Weight
counts include biases and LayerNorm parameters. Activation bytes are one sample's working
set in the stage (its input, Q/K/V, the attention scores of every head, the FFN
intermediate and its output). A tied LM head holds its own copy of the embedding table in a
layer pipeline (the weights live where they are used) but is counted once in
:meth:`Architecture.param_count`.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path
from typing import Any

from backends import formats
from backends.base import BackendError

HOST_VALUE_BYTES = 4  # host I/O values (int32 token ids, float32 logits and pixels)


@dataclasses.dataclass(frozen=True)
class LayerCost:
    """One stage's work for one sample: forward FLOPs, the weights it holds, the bytes of
    its working activations and of the activations it passes on."""

    name: str
    flops: float
    params: float
    act_bytes: float
    out_bytes: float


@dataclasses.dataclass(frozen=True)
class Architecture:
    """Layer shapes of a model. ``family``: ``transformer`` (encoder, decoder-only or
    encoder-decoder), ``mlp``, ``unet`` or ``generic`` (weight matrices read from a graph
    that is not a recognised transformer, each a stage; none: the model is timed as host
    I/O only)."""

    name: str
    family: str = "transformer"
    source: str = ""
    layers: int = 0  # encoder layers, or the decoder-only stack
    hidden: int = 0
    heads: int = 0
    ffn: int = 0
    vocab: int = 0
    positions: int = 0
    type_vocab: int = 0
    head_dim: int = 0  # 0: hidden // heads (T5 sets it)
    kv_heads: int = 0  # 0: heads (grouped-query attention sets fewer)
    gated_ffn: bool = False
    decoder_layers: int = 0  # encoder-decoder: the decoder stack, with cross-attention
    causal: bool = False  # decoder-only; attention is counted in full either way
    tied_embeddings: bool = True
    task_head: str = "qa"  # qa, classifier, ner, summarisation, mlm, lm, none
    head_classes: int = 2
    head_bias: bool = False  # an untied LM head with a bias (GPT-J)
    linformer_k: int = 0  # Linformer: keys and values projected to this length
    seq: int = 384  # the published (padded) sequence length
    target_seq: int = 0  # encoder-decoder: the target length
    masked_tokens: int = 0  # MLM head positions per sample
    decode_context: int = 0  # > 0: one generated token attending to this many
    decode_streams: int = 0  # decode: streams whose KV caches are resident (0: one a stage)
    widths: tuple[int, ...] = ()  # mlp: input, hidden..., output
    unet_encoder: tuple[int, ...] = ()
    unet_decoder: tuple[int, ...] = ()
    image: tuple[int, int, int] = (0, 0, 0)  # unet input: height, width, channels
    generic: tuple[tuple[str, int, int], ...] = ()  # (name, K, N) per-token matmuls

    @property
    def attn_width(self) -> int:
        return self.heads * (self.head_dim or self.hidden // max(self.heads, 1))

    @property
    def kv_width(self) -> int:
        return (self.kv_heads or self.heads) * (self.head_dim or self.hidden // max(self.heads, 1))

    def param_count(self) -> int:
        """Unique parameters (a tied head's copy of the embeddings is not counted again)."""
        costs = layer_costs(self)
        total = sum(c.params for c in costs)
        if self.family == "transformer" and self.tied_embeddings and \
                self.task_head in ("mlm", "lm"):
            total -= self.vocab * self.hidden
        return int(total)

    def io_bytes(self, seq: int | None = None) -> tuple[float, float]:
        """Host bytes in and out for one sample at ``seq`` tokens."""
        tokens = self.seq if seq is None else seq
        v = HOST_VALUE_BYTES
        if self.family == "mlp":
            return self.widths[0] * v, self.widths[-1] * v
        if self.family == "unet":
            h, w, c = self.image
            return h * w * c * v, h * w * self.head_classes * v
        if self.family == "generic":
            return 3 * tokens * v, 2 * tokens * v
        if self.decode_context:
            return v, v  # a token in, a token out; the KV cache stays on the wafer
        head = self.task_head
        inputs = 1 if self.causal else 3  # ids (GPT) or ids, mask, segments (BERT)
        if self.decoder_layers:
            return (tokens + 2 * self.target_seq) * v, v  # source, target and labels; a loss
        if head == "qa":
            return inputs * tokens * v, 2 * tokens * v
        if head == "ner":
            return inputs * tokens * v, self.head_classes * tokens * v
        if head in ("classifier", "summarisation"):
            return inputs * tokens * v, self.head_classes * v
        if head == "mlm":
            return (inputs * tokens + 2 * self.masked_tokens) * v, v  # labels in; a loss out
        return (inputs + 1) * tokens * v, v  # lm: ids and labels in; a loss out

    def to_json(self) -> dict[str, Any]:
        data = {k: v for k, v in dataclasses.asdict(self).items() if v not in (0, (), "", False)
                or k in ("name", "family")}
        data["parameters"] = self.param_count()
        return data

    def summary(self) -> str:
        if self.family == "transformer":
            stack = f"{self.layers}" + (f"+{self.decoder_layers}" if self.decoder_layers else "")
            return (f"{self.name}: {stack} layers, hidden {self.hidden}, {self.heads} heads, "
                    f"FFN {self.ffn}, vocabulary {self.vocab}, {self.param_count() / 1e6:,.1f}M "
                    f"parameters ({self.source})")
        return f"{self.name}: {self.family}, {self.param_count():,} parameters ({self.source})"


# ---- per layer costs -----------------------------------------------------------------------


def layer_costs(arch: Architecture, seq: int | None = None,
                value_bytes: float = 2) -> list[LayerCost]:
    """The stages of ``arch`` for one sample of ``seq`` tokens (default: its published
    length), activations at ``value_bytes`` per value."""
    tokens = arch.seq if seq is None else int(seq)
    if tokens < 1 and arch.family in ("transformer", "generic"):
        raise BackendError(f"a sample needs at least one token, got {tokens}")
    if arch.family == "mlp":
        return _mlp(arch, value_bytes)
    if arch.family == "unet":
        return _unet(arch, value_bytes)
    if arch.family == "generic":
        return [LayerCost(name, 2.0 * tokens * k * n, k * n, tokens * (k + n) * value_bytes,
                          tokens * n * value_bytes) for name, k, n in arch.generic]
    return _transformer(arch, tokens, value_bytes)


def _attention_layer(arch: Architecture, name: str, tokens: int, keys: int, vb: float,
                     cross: int = 0, new_kv: int | None = None,
                     caches: int = 1) -> LayerCost:
    """One transformer layer: self-attention over ``keys`` positions (``new_kv`` of them
    projected now; the rest a cache, held for ``caches`` streams), cross-attention over
    ``cross`` encoder positions when given, and the FFN, for ``tokens`` query positions."""
    h, f, heads = arch.hidden, arch.ffn, arch.heads
    a, akv = arch.attn_width, arch.kv_width
    projected = tokens if new_kv is None else new_kv
    k = arch.linformer_k or keys
    flops = 2.0 * tokens * h * a + 2.0 * 2 * projected * h * akv + 2.0 * tokens * a * h
    flops += 2.0 * 2 * tokens * k * a  # scores and the weighted sum of values
    params = h * a + a + 2 * (h * akv + akv) + a * h + h
    acts = tokens * h + tokens * a + 2 * keys * akv * caches + heads * tokens * k + tokens * h
    if arch.linformer_k:
        flops += 2.0 * 2 * arch.linformer_k * keys * akv  # E and F project keys and values
        params += 2 * arch.positions * arch.linformer_k
    if cross:
        flops += 2.0 * tokens * h * a + 2.0 * 2 * cross * h * akv + 2.0 * tokens * a * h
        flops += 2.0 * 2 * tokens * cross * a
        params += h * a + a + 2 * (h * akv + akv) + a * h + h + 2 * h
        acts += 2 * cross * akv + heads * tokens * cross + cross * h
    matrices = 3 if arch.gated_ffn else 2
    flops += 2.0 * matrices * tokens * h * f
    params += matrices * h * f + f + h + 4 * h  # FFN, its biases, two LayerNorms
    acts += tokens * f * (2 if arch.gated_ffn else 1)
    return LayerCost(name, flops, params, acts * vb, tokens * h * vb)


def _transformer(arch: Architecture, tokens: int, vb: float) -> list[LayerCost]:
    h, v = arch.hidden, arch.vocab
    decode = arch.decode_context
    step = 1 if decode else tokens  # positions computed per sample
    embed_params = (v + arch.positions + arch.type_vocab) * h + 2 * h
    costs = [LayerCost("embeddings", 0.0, embed_params, 2 * step * h * vb, step * h * vb)]
    encoder = "decoder" if arch.causal else "encoder"
    # decode: a stream has one token in flight, so a full pipeline serves one stream per
    # stage (embeddings, layers, head), and every layer holds all their KV caches
    streams = arch.decode_streams or arch.layers + 2
    for i in range(arch.layers):
        if decode:
            costs.append(_attention_layer(arch, f"{encoder}.{i}", 1, decode, vb, new_kv=1,
                                          caches=streams))
        else:
            costs.append(_attention_layer(arch, f"{encoder}.{i}", tokens, tokens, vb))
    if arch.decoder_layers:
        target = arch.target_seq or tokens
        costs.append(LayerCost("decoder.embeddings", 0.0, 0 if arch.tied_embeddings else v * h,
                               target * h * vb, target * h * vb))
        for i in range(arch.decoder_layers):
            costs.append(_attention_layer(arch, f"decoder.{i}", target, target, vb, cross=tokens))
        step = target
    head = arch.task_head
    c = arch.head_classes
    if head == "qa":
        costs.append(LayerCost("qa_head", 2.0 * step * h * 2, 2 * h + 2,
                               step * (h + 2) * vb, step * 2 * vb))
    elif head == "classifier":
        costs.append(LayerCost("classifier", 2.0 * h * h + 2.0 * h * c, h * h + h + h * c + c,
                               (step * h + h + c) * vb, c * vb))
    elif head == "ner":
        costs.append(LayerCost("ner_head", 2.0 * step * h * c, h * c + c,
                               step * (h + c) * vb, step * c * vb))
    elif head == "summarisation":
        costs.append(LayerCost("sentence_scores", 2.0 * step * h, h + 1, step * (h + 1) * vb,
                               step * vb))
    elif head == "mlm":
        m = arch.masked_tokens or max(1, round(0.15 * step))
        costs.append(LayerCost("mlm_nsp_head",
                               2.0 * m * h * h + 2.0 * m * h * v + 2.0 * h * h + 2.0 * h * 2,
                               2 * h * h + 2 * h + 2 * h + v + v * h + 2 * h + 2,
                               (m * (2 * h + v) + step * h) * vb, 2 * vb))
    elif head == "lm":
        costs.append(LayerCost("lm_head", 2.0 * step * h * v,
                               v * h + (v if arch.head_bias else 0) + 2 * h,
                               step * (h + v) * vb, step * vb))
    return costs


def _mlp(arch: Architecture, vb: float) -> list[LayerCost]:
    widths = arch.widths
    return [LayerCost(f"linear.{i}", 2.0 * a * b, a * b + b, (a + b) * vb, b * vb)
            for i, (a, b) in enumerate(zip(widths, widths[1:], strict=False))]


def _unet(arch: Architecture, vb: float) -> list[LayerCost]:
    """Blocks of two 3x3 convolutions; 2x2 pooling down, 2x2 transposed convolutions up."""
    height, width, channels = arch.image
    costs: list[LayerCost] = []
    skips: list[int] = []
    c_in, size = channels, height * width
    for i, c in enumerate(arch.unet_encoder):
        if i:
            size //= 4
        flops = 2.0 * size * 9 * (c_in * c + c * c)
        params = 9 * (c_in * c + c * c) + 2 * c
        costs.append(LayerCost(f"encoder.{i}", flops, params, size * (c_in + 2 * c) * vb,
                               size // 4 * c * vb))
        skips.append(c)
        c_in = c
    for i, c in enumerate(arch.unet_decoder):
        size *= 4
        skip = skips[-2 - i] if i + 2 <= len(skips) else c
        up = 2.0 * size * 4 * c_in * c  # transposed 2x2 convolution
        flops = up + 2.0 * size * 9 * ((c + skip) * c + c * c)
        params = 4 * c_in * c + c + 9 * ((c + skip) * c + c * c) + 2 * c
        costs.append(LayerCost(f"decoder.{i}", flops, params,
                               size * (c_in / 4 + c + skip + 2 * c) * vb, size * c * vb))
        c_in = c
    k = arch.head_classes
    costs.append(LayerCost("classifier", 2.0 * size * c_in * k, c_in * k + k,
                           size * (c_in + k) * vb, size * k * vb))
    return costs


# ---- from a model file -----------------------------------------------------------------------


def from_model(path: Path) -> Architecture:
    """The architecture of the model at ``path``: an ONNX graph, a Hugging Face directory, or
    a file with ``config.json``/``bert_config.json`` beside it."""
    path = Path(path)
    if not path.exists():
        raise BackendError(f"{path} does not exist: the wafer backend reads the model's "
                           "layer shapes from it (or name an architecture: arch=bert-large)")
    fmt = formats.detect_format(path)
    if fmt == formats.ONNX:
        return from_onnx(path)
    config, where = formats.config_beside(path)
    if where is None:
        raise BackendError(f"{path}: no config.json or bert_config.json beside it to read the "
                           "layer shapes from; name an architecture with arch=NAME "
                           f"({', '.join(sorted(ZOO))})")
    folder = formats.checkpoint_dir(path)
    return from_config(config, f"{where.name} of {path}", name=folder.name)


def from_config(config: dict[str, Any], source: str = "config",
                name: str | None = None) -> Architecture:
    """A Hugging Face (or Google BERT) config: BERT-like, GPT-2/GPT-J/Llama-like or T5."""
    def get(*keys: str, default: Any = None) -> Any:
        for key in keys:
            if config.get(key) is not None:
                return config[key]
        return default

    kinds = " ".join(config.get("architectures") or []) + " " + str(config.get("model_type", ""))
    hidden = get("hidden_size", "n_embd", "d_model")
    layers = get("num_hidden_layers", "n_layer", "num_layers")
    heads = get("num_attention_heads", "n_head", "num_heads")
    if not (hidden and layers and heads):
        raise BackendError(f"{source}: no hidden size, layer count and head count to time "
                           "(hidden_size/num_hidden_layers/num_attention_heads)")
    ffn = get("intermediate_size", "n_inner", "d_ff", default=4 * hidden)
    common = dict(name=name or str(config.get("model_type") or "model"),
                  source=source, layers=int(layers), hidden=int(hidden), heads=int(heads),
                  ffn=int(ffn), vocab=int(get("vocab_size", default=30522)))
    if "T5" in kinds or config.get("model_type") in ("t5", "mt5"):
        return Architecture(**common, head_dim=int(get("d_kv", default=hidden // heads)),
                            decoder_layers=int(get("num_decoder_layers", default=layers)),
                            task_head="lm", seq=512, target_seq=114,
                            gated_ffn="gated" in str(config.get("feed_forward_proj", "")))
    causal = any(k in kinds for k in ("LMHead", "CausalLM", "gpt", "llama", "GPTJ"))
    if causal:
        return Architecture(**common, causal=True, task_head="lm",
                            positions=int(get("n_positions", "max_position_embeddings",
                                              default=0)) if "gptj" not in kinds.lower() else 0,
                            kv_heads=int(get("num_key_value_heads", default=0)),
                            gated_ffn="llama" in kinds.lower(),
                            tied_embeddings=bool(config.get("tie_word_embeddings", True)),
                            seq=int(get("n_positions", "max_position_embeddings",
                                        default=1024)))
    head = ("classifier" if "SequenceClassification" in kinds else
            "ner" if "TokenClassification" in kinds else
            "mlm" if ("MaskedLM" in kinds or "PreTraining" in kinds) else "qa")
    labels = len(config.get("id2label") or {}) or 2
    return Architecture(**common, positions=int(get("max_position_embeddings", default=512)),
                        type_vocab=int(get("type_vocab_size", default=2)), task_head=head,
                        head_classes=labels if head in ("classifier", "ner") else 2, seq=384)


def from_onnx(path: Path) -> Architecture:
    """Shapes from an ONNX graph's initializers (see the module doc); a graph that is not a
    recognised transformer becomes ``generic``: each MatMul/Gemm with a weight matrix a
    stage (none: timed as host I/O only)."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as exc:
        raise BackendError("reading layer shapes from an ONNX graph needs onnx "
                           "(pip install -e '.[onnx]')") from exc
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf errors of every kind
        raise BackendError(f"{path}: not a readable ONNX model: {exc}") from None
    graph = model.graph
    shapes = {i.name: tuple(int(d) for d in i.dims) for i in graph.initializer}
    # a weight fed through DequantizeLinear (QDQ int8) keeps its initializer's shape
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and node.input and node.input[0] in shapes:
            shapes[node.output[0]] = shapes[node.input[0]]
    matrices: list[tuple[str, int, int]] = []
    for node in graph.node:
        if node.op_type in ("MatMul", "MatMulInteger") and len(node.input) > 1:
            shape = shapes.get(node.input[1])
            if shape is not None and len(shape) == 2:
                matrices.append((node.name or node.output[0], *shape))
        elif node.op_type == "Gemm" and len(node.input) > 1:
            shape = shapes.get(node.input[1])
            trans = any(a.name == "transB" and a.i for a in node.attribute)
            if shape is not None and len(shape) == 2:
                matrices.append((node.name or node.output[0],
                                 *(shape[::-1] if trans else shape)))
    gathers = [shapes[n.input[0]] for n in graph.node
               if n.op_type == "Gather" and n.input and len(shapes.get(n.input[0], ())) == 2]
    name = Path(path).stem if Path(path).stem != "model" else Path(path).resolve().parent.name
    if gathers:
        vocab, hidden = max(gathers)
        counts = Counter((k, n) for _, k, n in matrices)
        ffn_in = [(k, n) for (k, n) in counts if k == hidden and n != hidden and n > 2]
        if ffn_in:
            ffn = max(ffn_in, key=lambda kn: counts[kn])[1]
            layers = counts[(hidden, ffn)]
            others = sorted((s for s in gathers if s[1] == hidden and s[0] != vocab),
                            reverse=True)
            positions = others[0][0] if others else 0
            types = others[1][0] if len(others) > 1 else 0
            heads, how = _heads_from_constants(graph, numpy_helper, hidden, layers)
            head = "qa" if (hidden, 2) in counts or (2, hidden) in shapes.values() else "none"
            return Architecture(name, source=f"ONNX graph {path} (heads {how})", layers=layers,
                                hidden=hidden, heads=heads, ffn=ffn, vocab=vocab,
                                positions=positions, type_vocab=types, task_head=head)
    generic = tuple((n, k, m) for n, k, m in matrices)
    what = (f"{len(generic)} weight matrices, no recognised transformer" if generic
            else "no weight matrices: timed as host I/O only")
    return Architecture(name, family="generic", source=f"ONNX graph {path} ({what})",
                        generic=generic)


def _heads_from_constants(graph, numpy_helper, hidden: int, layers: int) -> tuple[int, str]:
    """The head count from the attention reshapes' head-width constant (e.g. 64 or 32)."""
    found: Counter = Counter()
    tensors = list(graph.initializer) + [a.t for n in graph.node if n.op_type == "Constant"
                                         for a in n.attribute if a.name == "value"]
    for tensor in tensors:
        if tensor.data_type in (6, 7) and len(tensor.dims) <= 1 and \
                (not tensor.dims or tensor.dims[0] <= 4):
            for value in numpy_helper.to_array(tensor).ravel().tolist():
                found[int(value)] += 1
    widths = [w for w in (128, 96, 80, 64, 32, 16) if hidden % w == 0 and w < hidden
              and found[w] >= max(layers, 1)]
    if widths:
        width = max(widths, key=lambda w: found[w])
        return hidden // width, f"from the {width}-wide attention reshapes"
    width = 64 if hidden % 64 == 0 else hidden
    return hidden // width, f"assumed {width} wide"


# ---- named architectures (modelzoo R1.6.0 sizes) ---------------------------------------------


def _bert(name: str, layers: int, hidden: int, seq: int, head: str = "qa", **kw) -> Architecture:
    return Architecture(name, source=kw.pop("source", "BERT config"), layers=layers,
                        hidden=hidden, heads=hidden // 64, ffn=4 * hidden, vocab=30522,
                        positions=512, type_vocab=2, task_head=head, seq=seq, **kw)


def _gpt(name: str, layers: int, hidden: int, seq: int, **kw) -> Architecture:
    return Architecture(name, source=kw.pop("source", "GPT config"), layers=layers,
                        hidden=hidden, heads=kw.pop("heads", hidden // 64), ffn=4 * hidden,
                        vocab=kw.pop("vocab", 50257), positions=kw.pop("positions", seq),
                        causal=True, task_head="lm", seq=seq, **kw)


MZ = "modelzoo R1.6.0"
ZOO: dict[str, Architecture] = {a.name: a for a in (
    # the SQuAD models this harness runs (QA head, 384 tokens)
    _bert("bert-large", 24, 1024, 384, source="BERT-Large SQuAD (MLPerf)"),
    _bert("bert-base", 12, 768, 384, source="BERT-Base with a QA head"),
    Architecture("minilm-l6", source="the demo model's config.json", layers=6, hidden=384,
                 heads=12, ffn=1536, vocab=30522, positions=512, type_vocab=2, seq=384),
    # modelzoo R1.6.0 families at their published sizes
    _bert("bert-base-msl128", 12, 768, 128, "mlm", masked_tokens=20,
          source=f"{MZ} params_bert_base_msl128"),
    _bert("bert-base-msl512", 12, 768, 512, "mlm", masked_tokens=80,
          source=f"{MZ} params_bert_base_msl512"),
    _bert("bert-large-msl128", 24, 1024, 128, "mlm", masked_tokens=20,
          source=f"{MZ} params_bert_large_msl128"),
    _bert("bert-large-msl512", 24, 1024, 512, "mlm", masked_tokens=80,
          source=f"{MZ} params_bert_large_msl512"),
    _bert("bert-large-squad", 24, 1024, 384, source=f"{MZ} fine_tuning/qa "
          "params_bert_large_squad"),
    _bert("bert-classifier", 12, 768, 128, "classifier",
          source=f"{MZ} fine_tuning/classifier (BERT-Base, 2 classes)"),
    _bert("bert-ner", 12, 768, 128, "ner", head_classes=9,
          source=f"{MZ} fine_tuning/token_classifier (BERT-Base, 9 labels)"),
    _bert("bert-summarisation", 12, 768, 512, "summarisation", head_classes=1,
          source=f"{MZ} fine_tuning/extractive_summarization (BERTSUM, BERT-Base)"),
    Architecture("roberta-base", source=f"{MZ} roberta base", layers=12, hidden=768, heads=12,
                 ffn=3072, vocab=50265, positions=514, type_vocab=1, task_head="mlm",
                 masked_tokens=77, seq=512),
    Architecture("roberta-large", source=f"{MZ} roberta large", layers=24, hidden=1024,
                 heads=16, ffn=4096, vocab=50265, positions=514, type_vocab=1,
                 task_head="mlm", masked_tokens=77, seq=512),
    _gpt("gpt2-small", 12, 768, 1024, source=f"{MZ} params_gpt2_small"),
    _gpt("gpt2-small-ws", 12, 768, 2048, source=f"{MZ} params_gpt2_small_ws"),
    _gpt("gpt2-medium", 24, 1024, 1024, heads=16, source=f"{MZ} params_gpt2_medium"),
    _gpt("gpt2-large", 36, 1280, 1024, heads=20, source=f"{MZ} params_gpt2_large"),
    _gpt("gpt3-xl", 24, 2048, 2048, heads=16, source=f"{MZ} params_gpt3_xl_ws"),
    _gpt("gpt3-6.7b", 32, 4096, 2048, heads=32, source=f"{MZ} params_gpt3_6p7b_ws"),
    _gpt("gpt3-13b", 40, 5120, 2048, heads=40, source=f"{MZ} params_gpt3_13b_ws"),
    _gpt("gpt3-20b", 44, 6144, 2048, heads=48, source=f"{MZ} params_gpt3_20b_ws"),
    Architecture("gptj-6b", source=f"{MZ} params_gptj", layers=28, hidden=4096, heads=16,
                 ffn=16384, vocab=50400, causal=True, tied_embeddings=False, head_bias=True,
                 task_head="lm", seq=2048),
    Architecture("gptj-6b-summarisation", source=f"{MZ} GPT-J fine-tuning (summarisation, "
                 "weight streaming)", layers=28, hidden=4096, heads=16, ffn=16384, vocab=50400,
                 causal=True, tied_embeddings=False, head_bias=True, task_head="lm", seq=2048),
    Architecture("t5-small", source=f"{MZ} t5 small", layers=8, hidden=512, heads=6,
                 head_dim=64, ffn=1024, vocab=32128, decoder_layers=8, task_head="lm",
                 seq=512, target_seq=114),
    Architecture("t5-base", source=f"{MZ} t5 base", layers=12, hidden=768, heads=12,
                 ffn=3072, vocab=32128, decoder_layers=12, task_head="lm", seq=512,
                 target_seq=114),
    Architecture("transformer-base", source=f"{MZ} transformer base", layers=6, hidden=512,
                 heads=8, ffn=2048, vocab=32000, positions=256, decoder_layers=6,
                 task_head="lm", seq=256, target_seq=256),
    Architecture("transformer-large", source=f"{MZ} transformer large", layers=6,
                 hidden=1024, heads=16, ffn=4096, vocab=32000, positions=256,
                 decoder_layers=6, task_head="lm", seq=256, target_seq=256),
    _bert("linformer-base", 12, 768, 512, "mlm", masked_tokens=77, linformer_k=256,
          source=f"{MZ} linformer (RoBERTa base layout, projection 256)"),
    _bert("linformer-large", 24, 1024, 512, "mlm", masked_tokens=77, linformer_k=128,
          source=f"{MZ} linformer (RoBERTa large layout, projection 128)"),
    Architecture("fc-mnist", family="mlp", source=f"{MZ} fc_mnist TF 784-500-300-10",
                 widths=(784, 500, 300, 10), seq=1),
    Architecture("fc-mnist-pytorch", family="mlp", source=f"{MZ} fc_mnist PyTorch 10x50",
                 widths=(784,) + (50,) * 10 + (10,), seq=1),
    Architecture("unet-2d", family="unet", source=f"{MZ} unet params_severstal",
                 unet_encoder=(32, 64, 128, 256), unet_decoder=(128, 64, 32),
                 image=(256, 256, 1), head_classes=4, seq=1),
    # decode anchors (Cerebras inference, 2024): one generated token over a 2k context
    Architecture("llama-3.1-8b", source="Llama 3.1 8B config (decode step)", layers=32,
                 hidden=4096, heads=32, kv_heads=8, ffn=14336, gated_ffn=True, vocab=128256,
                 causal=True, tied_embeddings=False, task_head="lm", seq=1,
                 decode_context=2048),
    Architecture("llama-3.1-70b", source="Llama 3.1 70B config (decode step)", layers=80,
                 hidden=8192, heads=64, kv_heads=8, ffn=28672, gated_ffn=True, vocab=128256,
                 causal=True, tied_embeddings=False, task_head="lm", seq=1,
                 decode_context=2048),
)}
# The families of the modelzoo R1.6.0 table, in its order (the --zoo summary)
ZOO_TABLE = (
    "bert-base-msl128", "bert-base-msl512", "bert-large-msl128", "bert-large-msl512",
    "bert-classifier", "bert-ner", "bert-summarisation", "bert-large-squad", "roberta-base",
    "roberta-large", "gpt2-small", "gpt2-small-ws", "gpt2-medium", "gpt2-large", "gpt3-xl",
    "gpt3-6.7b", "gpt3-13b", "gpt3-20b", "gptj-6b", "gptj-6b-summarisation",
    "linformer-base", "linformer-large",
    "t5-small", "t5-base", "transformer-base", "transformer-large", "fc-mnist",
    "fc-mnist-pytorch", "unet-2d",
)


def named(name: str) -> Architecture:
    """A named architecture; an unknown name lists the known ones."""
    if name in ZOO:
        return ZOO[name]
    raise BackendError(f"unknown architecture {name!r}; known: {', '.join(sorted(ZOO))}")


def resolve(name_or_path: str | Path) -> Architecture:
    """A named architecture, or the shapes of the model file at that path."""
    text = str(name_or_path)
    if text in ZOO:
        return ZOO[text]
    if Path(text).exists():
        return from_model(Path(text))
    raise BackendError(f"{text!r} is neither a named architecture "
                       f"({', '.join(sorted(ZOO))}) nor a model file")
