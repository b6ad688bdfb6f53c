"""The configurations ``tune`` tries, and those the machine cannot use, with the reason.

A :class:`Candidate` is one run's settings: backend, model (fp32 or a derived int8 model),
batch size, sequence bucket, intra-op threads and backend options. Candidates that compute
the same arithmetic share a :attr:`Candidate.numerics` key, so the accuracy gate scores
each arithmetic once: batch size, bucket, threads, instances, Ray actors and ``compile``
change how fast the answers come, not what they are (compile keeps the precision). The
exception is dynamic int8: each call quantizes its activations with one scale for the whole
batch (padding included), so a model ``*-int8-dynamic`` answers differently at another batch
size or bucket (measured on the demo model: F1 65.54 sorted in batches of 16, 16-token
buckets, below 99% of fp32's 66.26) and its batch size and bucket are part of its
arithmetic.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from backends import BackendError, get_backend_class
from backends.base import option_text
from common.files import slug

CPUINFO = Path("/proc/cpuinfo")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One configuration; ``options`` are backend options (values as a TOML file has them)."""

    backend: str
    model: str
    batch_size: int
    seq_bucket: int = 1
    threads: int = 0
    options: tuple[tuple[str, Any], ...] = ()
    baseline: bool = False

    @property
    def option_dict(self) -> dict[str, Any]:
        return dict(self.options)

    @property
    def label(self) -> str:
        """Short and unique: ``onnxruntime:minilm-int8-dynamic b32 s16 optimizer=...``."""
        parts = [f"{self.backend}:{self.model}", f"b{self.batch_size}", f"s{self.seq_bucket}"]
        parts += [f"t{self.threads}"] if self.threads else []
        parts += [f"{k}={option_text(v)}" for k, v in self.options]
        return " ".join(parts)

    @property
    def id(self) -> str:
        """A folder name for this candidate's runs."""
        return slug(self.label.replace(" ", "_").replace(":", "_").replace("=", "-"))

    @property
    def numerics(self) -> tuple[Any, ...]:
        """What decides the answers: backend family, model and precision options."""
        options = self.option_dict
        if self.backend == "ray":  # its actors run the inner backend with its defaults
            return Candidate(options.get("backend", "onnxruntime"), self.model,
                             self.batch_size, self.seq_bucket).numerics
        precision = options.get("precision", "fp32") if self.backend == "pytorch" else ""
        optimizer = options.get("optimizer", "none") if self.backend == "onnxruntime" else ""
        if self.batch_dependent or self.one_at_a_time:
            return (self.backend, self.model, f"{precision}{optimizer}",
                    f"b{self.batch_size} s{self.seq_bucket}")
        return (self.backend, self.model, f"{precision}{optimizer}")

    @property
    def batch_dependent(self) -> bool:
        """Whether the answers depend on the batch: dynamic int8 (see the module's text),
        but for one unpadded sample a call, which shares its scale with nothing."""
        return self.model.endswith("-int8-dynamic") and not self.one_at_a_time

    @property
    def one_at_a_time(self) -> bool:
        """Dynamic int8 at one unpadded sample a call: its answers depend on no batch, but
        they are those of one sample at its own length, which the gate must score so (at
        the gate's batch of 16, padded, the demo model's F1 was 65.54, against 66.13)."""
        return self.model.endswith("-int8-dynamic") and self.batch_size == 1 \
            and self.seq_bucket == 1

    def gate_options(self) -> dict[str, Any]:
        """The options the accuracy gate runs this arithmetic with (speed ones left out)."""
        keep = {"precision", "optimizer"}
        if self.backend == "ray":
            return {}
        return {k: v for k, v in self.options if k in keep}

    @property
    def gate_backend(self) -> str:
        return self.option_dict.get("backend", "onnxruntime") if self.backend == "ray" \
            else self.backend

    def settings(self, scenario: str) -> dict[str, Any]:
        """The settings as a ``--settings`` TOML file (a sweep's ``[base]`` keys) holds them."""
        values: dict[str, Any] = {"scenario": scenario, "backend": self.backend,
                                  "model": self.model, "batch_size": self.batch_size,
                                  "seq_bucket": self.seq_bucket, "threads": self.threads}
        if self.options:
            values["backend_options"] = self.option_dict
        return values

    def run_args(self) -> list[str]:
        """The ``python -m harness run`` flags that give these settings."""
        argv = ["--backend", self.backend, "--model", self.model,
                "--batch-size", str(self.batch_size), "--seq-bucket", str(self.seq_bucket),
                "--threads", str(self.threads)]
        for key, value in self.options:
            argv += ["--backend-option", f"{key}={option_text(value)}"]
        return argv


@dataclasses.dataclass(frozen=True)
class Skipped:
    """A kind of candidate the machine cannot use: what, and why."""

    what: str
    reason: str


def cpu_flags(cpuinfo: Path = CPUINFO) -> frozenset[str]:
    """The CPU's feature flags (``/proc/cpuinfo``); empty where it cannot be read."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def _installed(backend: str) -> str | None:
    """None when ``backend`` can be imported, else why not (one line)."""
    try:
        get_backend_class(backend)
    except BackendError as exc:
        return str(exc).splitlines()[0]
    return None


def default_candidate(backend: str, model: str, batch_size: int) -> Candidate:
    """The fp32 default: what ``python -m harness run`` does with no options."""
    return Candidate(backend, model, batch_size, baseline=True)


def build_candidates(
    model: str, default_batch: int, flags: frozenset[str],
    installed: Callable[[str], str | None] = _installed,
    backends: Iterable[str] = ("onnxruntime", "pytorch", "ray"), derived: bool = True,
) -> tuple[list[Candidate], list[Skipped]]:
    """The candidates for ``model`` (the fp32 ONNX Runtime default first), and the skipped.

    ``flags``: the CPU's flags (bf16 needs one of :data:`BF16_FLAGS`; int8 models are tried
    only with one of :data:`VNNI_FLAGS`, without which int8 is no faster than fp32 here;
    ``derived``: whether int8 models can be derived from ``model``, a catalog name).
    """
    backends = tuple(backends)
    skipped: list[Skipped] = []
    missing = {name: installed(name) for name in backends}
    for name, why in missing.items():
        if why:
            skipped.append(Skipped(f"backend {name}", why))
    base = default_candidate("onnxruntime", model, default_batch)
    out: list[Candidate] = [base]
    if missing.get("onnxruntime"):
        return [], skipped
    bigger = max(32, default_batch)
    models = [model]
    if not derived:
        skipped.append(Skipped("int8 dynamic and static models",
                               "int8 models are derived from catalog models only"))
    elif flags & set(VNNI_FLAGS):
        models += [f"{model}-int8-dynamic", f"{model}-int8-static"]
    else:
        skipped.append(Skipped("int8 dynamic and static models",
                               f"the CPU has no VNNI flag ({', '.join(VNNI_FLAGS)})"))
    fused = (("optimizer", "transformers"),)
    for name in models:
        fp32 = name == model
        opt = fused if fp32 else ()  # the int8 files are quantized from the unfused graph
        grid = [Candidate("onnxruntime", name, default_batch, 1, 0, opt),
                Candidate("onnxruntime", name, bigger, 16, 0, opt),
                Candidate("onnxruntime", name, default_batch, 1, 0, (*opt, ("instances", 2)))]
        if fp32:
            grid += [Candidate("onnxruntime", name, bigger, 1, 0)]
        if name.endswith("-int8-dynamic"):  # one sample a call: its own scales, no padding
            grid += [Candidate("onnxruntime", name, 1, 1, 0, (("instances", 2),))]
        out += grid
    if "pytorch" in backends and not missing.get("pytorch"):
        # PyTorch fp32 computes what ONNX Runtime fp32 does, slower on CPUs (its GEMM runs at
        # about half of ORT's here): it is a candidate only where bf16 is not
        if flags & set(BF16_FLAGS):
            bf16 = (("precision", "bf16"),)
            out += [Candidate("pytorch", model, default_batch, 1, 0, bf16),
                    Candidate("pytorch", model, bigger, 16, 0, bf16),
                    Candidate("pytorch", model, default_batch, 16, 0,
                              (*bf16, ("compile", True)))]
            skipped.append(Skipped("pytorch fp32", "the same arithmetic as ONNX Runtime fp32, "
                                   "which runs it faster on CPUs"))
        else:
            out.append(Candidate("pytorch", model, default_batch, 1, 0,
                                 (("precision", "fp32"),)))
            skipped.append(Skipped("pytorch bf16",
                                   f"the CPU has no BF16 flag ({', '.join(BF16_FLAGS)})"))
    if "ray" in backends and not missing.get("ray"):
        best = f"{model}-int8-dynamic" if len(models) > 1 else model
        actors = (("backend", "onnxruntime"), ("actors", 2), ("threads_per_actor", 1))
        out.append(Candidate("ray", best, default_batch, 1, 0, actors))
        if best != model:
            out.append(Candidate("ray", best, 1, 1, 0, actors))
    return out, skipped
