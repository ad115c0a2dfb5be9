"""The default backend: TensorFlow in this process, loading SavedModels from a TF Serving base path.

Serves what TF Serving would serve from the same base path (models.config's models and version
policy and labels, else every model's latest version). Versions load in the background one at a
time (LOADING -> AVAILABLE, or UNAVAILABLE with the error), each warmed with one zero batch so the
first request does not pay for tracing. Signatures run in a thread pool: the event loop never
blocks on TensorFlow. TensorFlow's own thread pools are sized as TF Serving's
--tensorflow_intra_op_parallelism / --tensorflow_inter_op_parallelism would size them (0: TensorFlow
picks, one thread per core).
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import structlog

from modipick.executor.backends.base import AVAILABLE, DEFAULT_SIGNATURE, UNAVAILABLE, ModelInfo, ModelRef
from modipick.executor.backends.catalog import loading, pick_version, pool_entries
from modipick.executor.errors import BackendFailure, InvalidInput, ModelNotFound
from modipick.zoo.layout import served_models, versions_to_serve

log = structlog.get_logger("modipick.executor.embedded")


class EmbeddedBackend:
    name = "embedded"

    def __init__(self, model_base: str | os.PathLike[str], *, threads: int = 2, models: Sequence[str] = (),
                 warmup: bool = True, intra_op_threads: int = 0, inter_op_threads: int = 0) -> None:
        self._base = Path(model_base)
        self._tf_threads = (intra_op_threads, inter_op_threads)
        self._only = frozenset(models)
        self._warmup = warmup
        self._pool = ThreadPoolExecutor(max(1, threads), thread_name_prefix="embedded-tf")
        self._loader = ThreadPoolExecutor(1, thread_name_prefix="embedded-load")
        self._versions: dict[str, dict[int, ModelInfo]] = {}
        self._labels: dict[str, dict[str, int]] = {}
        self._loaded: dict[tuple[str, int], Any] = {}  # keeps each SavedModel (and its variables) alive
        self._loading: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if not self._base.is_dir():
            raise FileNotFoundError(f"model base path {self._base} does not exist (build one: modipick zoo build)")
        entries = pool_entries(self._base)
        todo: list[tuple[str, int, Path]] = []
        for model in served_models(self._base):
            if self._only and model.name not in self._only:
                continue
            self._labels[model.name] = dict(model.version_labels)
            versions = versions_to_serve(model)
            self._versions[model.name] = {v: loading(model.name, v, entries.get(model.name)) for v in versions}
            todo += [(model.name, v, Path(model.base_path) / str(v)) for v in versions]
        if not todo:
            log.warning("no models found", model_base=str(self._base))
        self._loading = asyncio.create_task(self._load_all(todo))

    async def wait_ready(self, timeout_s: float | None = None) -> None:
        """Until every version finished loading (AVAILABLE or UNAVAILABLE)."""
        if self._loading is not None:
            await asyncio.wait_for(asyncio.shield(self._loading), timeout_s)

    async def _load_all(self, todo: list[tuple[str, int, Path]]) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._loader, size_tensorflow_threads, *self._tf_threads)
        for name, version, path in todo:
            info = self._versions[name][version]
            try:
                loaded, input_spec, output_name = await loop.run_in_executor(
                    self._loader, self._load, path, info.output_name)
            except Exception as exc:  # a broken SavedModel must not stop the others
                log.error("model failed to load", model=f"{name}:{version}", path=str(path), error=str(exc))
                self._versions[name][version] = replace(info, state=UNAVAILABLE, detail=f"load failed: {exc}")
                continue
            self._loaded[(name, version)] = loaded
            input_name, shape, dtype = input_spec
            self._versions[name][version] = replace(info, state=AVAILABLE, input_name=input_name,
                                                    input_shape=shape, input_dtype=dtype, output_name=output_name)
            log.info("model available", model=f"{name}:{version}", input=input_name, shape=list(shape))

    def _load(self, path: Path, preferred_output: str) -> tuple[Any, tuple[str, tuple[int, ...], str], str]:
        import tensorflow as tf

        loaded = tf.saved_model.load(str(path))
        signature = loaded.signatures.get(DEFAULT_SIGNATURE)
        if signature is None:
            raise ValueError(f"no {DEFAULT_SIGNATURE!r} signature (has: {', '.join(loaded.signatures) or 'none'})")
        inputs = signature.structured_input_signature[1]
        if len(inputs) != 1:
            raise ValueError(f"expected one input tensor, signature has {sorted(inputs)}")
        input_name, spec = next(iter(inputs.items()))
        outputs = signature.structured_outputs
        output_name = preferred_output if preferred_output in outputs else next(iter(outputs))
        shape = tuple(-1 if d is None else int(d) for d in spec.shape)
        if self._warmup and all(d > 0 for d in shape[1:]):
            signature(**{input_name: tf.zeros((1, *shape[1:]), spec.dtype)})
        return loaded, (input_name, shape, spec.dtype.name), output_name

    async def models(self) -> list[ModelInfo]:
        return [info for versions in self._versions.values() for _, info in sorted(versions.items())]

    async def resolve(self, ref: ModelRef, *, timeout_s: float | None = None) -> ModelInfo:
        versions = self._versions.get(ref.name)
        if versions is None:
            known = ", ".join(sorted(self._versions)) or "none"
            raise ModelNotFound(f"unknown model {ref.name!r} (served: {known})")
        return pick_version(ref, versions, self._labels.get(ref.name))

    async def predict(self, model: ModelInfo, batch: np.ndarray, *, signature: str = DEFAULT_SIGNATURE,
                      timeout_s: float | None = None, version_label: str = "") -> tuple[int, np.ndarray]:
        loaded = self._loaded.get((model.name, model.version))
        if loaded is None:
            raise ModelNotFound(f"model {model.name}:{model.version} is not loaded")
        function = loaded.signatures.get(signature)
        if function is None:
            raise InvalidInput(f"model {model.name}:{model.version} has no signature {signature!r} "
                               f"(has: {', '.join(loaded.signatures)})")
        loop = asyncio.get_running_loop()
        output = await loop.run_in_executor(self._pool, _run, function, model, batch)
        return model.version, output

    async def close(self) -> None:
        if self._loading is not None and not self._loading.done():
            self._loading.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._loader.shutdown(wait=False, cancel_futures=True)
        self._loaded.clear()


def size_tensorflow_threads(intra_op: int, inter_op: int) -> None:
    """Before TensorFlow runs its first op; after that its pools are fixed for the process."""
    if not intra_op and not inter_op:
        return
    import tensorflow as tf

    current = (tf.config.threading.get_intra_op_parallelism_threads(),
               tf.config.threading.get_inter_op_parallelism_threads())
    wanted = (intra_op or current[0], inter_op or current[1])
    if current == wanted:
        return
    try:
        if intra_op:
            tf.config.threading.set_intra_op_parallelism_threads(intra_op)
        if inter_op:
            tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    except RuntimeError as exc:  # TensorFlow already ran in this process (an embedding test, a notebook)
        log.warning("TensorFlow thread pools already sized; keeping them", error=str(exc),
                    intra_op=current[0], inter_op=current[1])
        return
    log.info("TensorFlow thread pools sized", intra_op=intra_op or "auto", inter_op=inter_op or "auto")


def _run(function: Any, model: ModelInfo, batch: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    try:
        outputs = function(**{model.input_name: tf.constant(batch, dtype=model.input_dtype)})
    except (tf.errors.InvalidArgumentError, ValueError, TypeError) as exc:
        raise InvalidInput(f"model {model.name}:{model.version} rejected the input: {_first_line(exc)}") from exc
    except tf.errors.OpError as exc:
        raise BackendFailure(f"model {model.name}:{model.version} failed: {_first_line(exc)}") from exc
    output = outputs.get(model.output_name)
    if output is None:
        raise BackendFailure(f"model {model.name}:{model.version} has no output {model.output_name!r}")
    return np.asarray(output.numpy(), dtype=np.float32)


def _first_line(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__
