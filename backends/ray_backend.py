"""Scale-out on Ray: any registered backend, run in Ray actors, behind one LoadGen.

``--backend ray`` starts (or joins, with ``address=...``) a Ray cluster and creates
``actors`` actors, each loading the model with the backend named by the ``backend`` option
(ONNX Runtime by default) and ``threads_per_actor`` intra-op threads, reserved as that many
Ray CPUs. LoadGen stays the single load generator in this process: the harness's SUT sends
each batch to the least busy actor and keeps several calls in flight
(:meth:`RayBackend.max_in_flight`), so Offline batches and Server queries are spread over
every actor. Options ``inner.KEY=VALUE`` are passed to each actor's backend as ``KEY=VALUE``.

On a multi-node cluster every node must have this project installed (the same Python
environment) and the model file at the same path; see the README's recipe. An actor that
dies fails its calls with Ray's error: the run ends as a backend failure and keeps its logs.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import os
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np
from pydantic.dataclasses import dataclass as pydantic_dataclass

from backends.base import Backend, BackendError, BackendSettings, FeatureBatch, usable_cores
from common.settings import STRICT, Text, Whole, setting

if importlib.util.find_spec("ray") is None:  # lets the registry name the [ray] extra
    raise ImportError("No module named 'ray'", name="ray")

INNER_PREFIX = "inner."
READY_TIMEOUT_S = 300.0  # actors load their model within this, or the load fails


class _Actor:
    """One worker: a backend with the model loaded, in its own Ray worker process."""

    def __init__(self, backend: str, settings: dict[str, Any], model_path: str | None) -> None:
        from backends import load_backend

        self._backend = load_backend(backend, Path(model_path) if model_path else None,
                                     BackendSettings(**settings))

    def predict(self, ids: np.ndarray, mask: np.ndarray, segments: np.ndarray):
        return self._backend.predict(FeatureBatch(ids, mask, segments))

    def describe(self) -> dict[str, Any]:
        import ray

        return {**self._backend.describe(), "pid": os.getpid(),
                "node": ray.util.get_node_ip_address()}


@pydantic_dataclass(frozen=True, config=STRICT)
class RayOptions:
    """``--backend-option``s of the Ray backend (``inner.KEY=VALUE`` goes to the actors'
    backend)."""

    backend: Text = setting("onnxruntime", help="the backend each actor runs")
    actors: Whole = setting(0, ge=0, le=4096, unit="actors",
                            help="how many actors (0: the cluster's CPUs / threads_per_actor)")
    threads_per_actor: Whole = setting(1, ge=1, le=1024, unit="threads",
                                       help="intra-op threads per actor, reserved as Ray CPUs")
    address: Text | None = setting(None, help="a Ray cluster to join (e.g. auto or "
                                   "ray://HEAD:10001; default: start a local Ray instance for "
                                   "this run)")
    in_flight_per_actor: Whole = setting(2, ge=1, le=1024, unit="calls",
                                         help="calls queued at each actor")


class RayBackend(Backend):
    """Spreads batches over Ray actors that each run another registered backend (a
    :class:`backends.device.AsyncDevice`)."""

    name = "ray"
    Options = RayOptions
    options: RayOptions
    option_prefixes = (INNER_PREFIX,)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        options = self.options
        self._inner = options.backend
        if self._inner == self.name:
            raise BackendError("the ray backend cannot run itself in its actors")
        self._threads = options.threads_per_actor
        self._actors_wanted = options.actors
        self._per_actor = options.in_flight_per_actor
        self._address = options.address
        self._actors: list[Any] = []
        self._outstanding: list[int] = []
        self._lock = threading.Lock()
        self._started_ray = False
        self._described: list[dict[str, Any]] = []

    def version(self) -> str:
        import ray

        return ray.__version__

    def _inner_settings(self) -> dict[str, Any]:
        options = {k[len(INNER_PREFIX):]: v for k, v in self.settings.options.items()
                   if k.startswith(INNER_PREFIX)}
        inner = BackendSettings(
            intra_op_threads=self.settings.intra_op_threads or self._threads,
            inter_op_threads=self.settings.inter_op_threads,
            device=self.settings.device, options=options,
        )
        return dataclasses.asdict(inner)

    def load(self, model_path: Path | None) -> None:
        """Start or join Ray, create the actors and wait until each has loaded the model."""
        import ray

        from backends import get_backend_class

        get_backend_class(self._inner)  # an unknown or uninstalled inner backend fails here
        if not ray.is_initialized():
            try:
                ray.init(address=self._address or None, include_dashboard=False,
                         log_to_driver=False, logging_level=logging.ERROR,
                         **({} if self._address else {"num_cpus": usable_cores()}))
            except Exception as exc:  # ConnectionError, a bad address...
                raise BackendError(f"cannot start or join Ray (address "
                                   f"{self._address or 'local'}): {exc}") from exc
            self._started_ray = True
        cpus = int(ray.cluster_resources().get("CPU", 1))
        count = self._actors_wanted or max(1, cpus // self._threads)
        if count * self._threads > cpus and self._started_ray:
            # Ray would keep the extra actors pending for ever: say so now, not in 300 s
            self.close()
            raise BackendError(
                f"ray backend: actors={count} x threads_per_actor={self._threads} need "
                f"{count * self._threads} CPUs, and the local Ray instance has {cpus} (this "
                f"machine's usable cores); set actors to at most {max(1, cpus // self._threads)}"
                " (or 0: as many as fit), or fewer threads_per_actor")
        remote = ray.remote(num_cpus=self._threads, max_restarts=0)(_Actor)
        path = str(Path(model_path).resolve()) if model_path is not None else None
        self._actors = [remote.remote(self._inner, self._inner_settings(), path)
                        for _ in range(count)]
        self._outstanding = [0] * count
        try:
            self._described = ray.get([a.describe.remote() for a in self._actors],
                                      timeout=READY_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            self.close()
            raise BackendError(
                f"ray backend: the actors were not all ready within {READY_TIMEOUT_S:.0f} s; "
                f"{count} actors x {self._threads} CPUs asked of a cluster with {cpus} CPUs "
                "(pending actors wait for free CPUs), or the model loads slower than that"
            ) from None
        except Exception as exc:  # the inner backend's load error, an actor that died...
            self.close()
            raise BackendError(f"ray backend: an actor could not load {model_path} with "
                               f"{self._inner}: {_cause(exc)}") from None

    def max_in_flight(self) -> int:
        """Calls queued at the actors at once: ``in_flight_per_actor`` each."""
        return max(1, len(self._actors) * self._per_actor)

    def predict_async(self, batch: FeatureBatch) -> Future:
        """Send the batch to the least busy actor; the future gives its logits."""
        if not self._actors:
            raise BackendError("ray backend: call load() before predict()")
        with self._lock:
            index = min(range(len(self._actors)), key=self._outstanding.__getitem__)
            self._outstanding[index] += 1
        ref = self._actors[index].predict.remote(*batch.arrays())
        future = ref.future()
        result: Future = Future()

        def done(finished: Future) -> None:
            with self._lock:
                self._outstanding[index] -= 1
            try:
                result.set_result(finished.result())
            except BaseException as exc:  # noqa: BLE001 - an actor that died, its error
                result.set_exception(BackendError(
                    f"ray actor {index} ({self._inner}) failed: {_cause(exc)}"))

        future.add_done_callback(done)
        return result

    def predict(self, batch: FeatureBatch) -> tuple[np.ndarray, np.ndarray]:
        return self.predict_async(batch).result()

    def close(self) -> None:
        """Stop the actors, and Ray itself if this backend started it."""
        import ray

        for actor in self._actors:
            try:
                ray.kill(actor)
            except Exception:  # noqa: BLE001, S110 - already gone
                pass
        self._actors = []
        if self._started_ray and ray.is_initialized():
            ray.shutdown()
            self._started_ray = False

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(inner_backend=self._inner, actors=len(self._described),
                    threads_per_actor=self._threads, address=self._address or "local",
                    in_flight_per_actor=self._per_actor,
                    nodes=sorted({d.get("node", "?") for d in self._described}),
                    actor=self._described[0] if self._described else None)
        return info


def _cause(exc: BaseException) -> str:
    """The useful line of a Ray error (the actor's own exception when there is one)."""
    cause = getattr(exc, "cause", None) or exc
    text = str(cause).strip().splitlines()
    return (text[-1] if text else type(cause).__name__)[:500]
