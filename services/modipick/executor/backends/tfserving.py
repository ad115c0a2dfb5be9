"""TensorFlow Serving over its gRPC API (tensorflow_serving.apis).

- ModelService.GetModelStatus: which versions exist and which are AVAILABLE (only those run).
- PredictionService.GetModelMetadata: the signature's input/output names, shape and dtype; asked
  with a version label, it also says which version the label names.
- PredictionService.Predict: model name + version (or the caller's version label) + signature,
  with the request's remaining budget as the call's gRPC deadline.

TF Serving has no "list models" call, so the model names come from the pool (models.config or
manifest under --model-base, which also gives declared accuracies) or an explicit list.
gRPC errors become executor errors here, at the boundary.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import replace
from typing import Callable, Sequence

import grpc
import numpy as np
import structlog

from modipick.executor.backends.base import (AVAILABLE, DEFAULT_SIGNATURE, LOADING, UNAVAILABLE, ModelInfo,
                                             ModelRef)
from modipick.executor.backends.catalog import (open_channel, pick_version, pool_entries, refresh_forever,
                                                remote_model_names, with_manifest)
from modipick.executor.errors import (BackendFailure, DeadlineExceeded, ExecutorError, InvalidInput,
                                      ModelNotFound, ModelUnavailable, QueueFull)

log = structlog.get_logger("modipick.executor.tfserving")

_STATES = {30: AVAILABLE, 10: LOADING, 20: LOADING}  # ModelVersionStatus.State: START, LOADING, AVAILABLE
_ERRORS: dict[grpc.StatusCode, type[ExecutorError]] = {
    grpc.StatusCode.NOT_FOUND: ModelNotFound,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidInput,
    grpc.StatusCode.FAILED_PRECONDITION: InvalidInput,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.UNAVAILABLE: ModelUnavailable,
    grpc.StatusCode.RESOURCE_EXHAUSTED: QueueFull,
}


def map_rpc_error(exc: grpc.aio.AioRpcError, what: str) -> ExecutorError:
    kind = _ERRORS.get(exc.code(), BackendFailure)
    return kind(f"TF Serving {exc.code().name} for {what}: {exc.details() or 'no details'}")


class TFServingBackend:
    name = "tfserving"

    def __init__(self, target: str, *, model_base: str | os.PathLike[str] | None = None,
                 models: Sequence[str] = (), refresh_s: float = 5.0, label_ttl_s: float = 1.0,
                 rpc_timeout_s: float = 5.0, channel: grpc.aio.Channel | None = None,
                 channel_factory: Callable[[str], grpc.aio.Channel] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.target = target
        self._base = model_base
        self._names = list(models)
        self._refresh_s = refresh_s
        self._label_ttl_s = label_ttl_s
        self._rpc_timeout_s = rpc_timeout_s
        self._channel = channel
        self._channel_factory = channel_factory
        self._clock = clock
        self._entries = pool_entries(model_base)
        self._versions: dict[str, dict[int, ModelInfo]] = {}
        self._signatures: dict[tuple[str, int], dict[str, tuple[str, str]]] = {}  # sig -> (input, output)
        self._label_cache: dict[tuple[str, str], tuple[int, float]] = {}
        self._errors: dict[str, ExecutorError] = {}  # last status failure per model (e.g. TF Serving down)
        self._refresher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

        self._names = remote_model_names("tfserving", self._names, self._base, self._entries)
        self._channel = open_channel(self._channel, self._channel_factory, self.target)
        self._predict = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._status = model_service_pb2_grpc.ModelServiceStub(self._channel)
        self._versions = {name: {} for name in self._names}
        await self.refresh()
        self._refresher = asyncio.create_task(refresh_forever(self.refresh, self._refresh_s, self.target, log))

    async def refresh(self) -> None:
        await asyncio.gather(*(self._refresh_model(name) for name in self._names))

    async def _refresh_model(self, name: str) -> None:
        from tensorflow_serving.apis import get_model_status_pb2, model_pb2

        request = get_model_status_pb2.GetModelStatusRequest(model_spec=model_pb2.ModelSpec(name=name))
        try:
            reply = await self._status.GetModelStatus(request, timeout=self._rpc_timeout_s)
        except grpc.aio.AioRpcError as exc:
            detail = f"GetModelStatus {exc.code().name}: {exc.details()}"
            self._errors[name] = map_rpc_error(exc, f"model {name!r} at {self.target}")
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                self._versions[name] = {}
            else:
                self._versions[name] = {v: replace(i, state=UNAVAILABLE, detail=detail)
                                        for v, i in self._versions.get(name, {}).items()}
            log.warning("model status unknown", model=name, target=self.target, detail=detail)
            return
        self._errors.pop(name, None)
        current = self._versions.get(name, {})
        fresh: dict[int, ModelInfo] = {}
        for status in reply.model_version_status:
            version, state = int(status.version), _STATES.get(status.state, UNAVAILABLE)
            known = current.get(version)
            if state == AVAILABLE and (known is None or not known.available):
                fresh[version] = await self._describe(name, version)
            elif known is not None and state == AVAILABLE:
                fresh[version] = known
            else:
                base = known or with_manifest(ModelInfo(name=name, version=version, state=state),
                                              self._entries.get(name))
                fresh[version] = replace(base, state=state, detail=status.status.error_message)
        self._versions[name] = fresh

    async def _describe(self, name: str, version: int) -> ModelInfo:
        """Learn a newly AVAILABLE version's signatures (GetModelMetadata)."""
        from tensorflow_serving.apis import get_model_metadata_pb2, model_pb2

        spec = model_pb2.ModelSpec(name=name)
        spec.version.value = version
        request = get_model_metadata_pb2.GetModelMetadataRequest(model_spec=spec, metadata_field=["signature_def"])
        base = with_manifest(ModelInfo(name=name, version=version, state=LOADING), self._entries.get(name))
        try:
            reply = await self._predict.GetModelMetadata(request, timeout=self._rpc_timeout_s)
            signature_map = get_model_metadata_pb2.SignatureDefMap()
            if not reply.metadata["signature_def"].Unpack(signature_map):
                raise ValueError("metadata signature_def is not a SignatureDefMap")
        except (grpc.aio.AioRpcError, ValueError, KeyError) as exc:
            detail = exc.details() if isinstance(exc, grpc.aio.AioRpcError) else str(exc)
            return replace(base, detail=f"GetModelMetadata failed: {detail}")  # stays LOADING; retried
        from modipick.executor.backends.tensor_proto import DTYPE_NAMES

        signatures: dict[str, tuple[str, str]] = {}
        for sig_name, sig in signature_map.signature_def.items():
            if len(sig.inputs) == 1 and sig.outputs:
                output = base.output_name if base.output_name in sig.outputs else sorted(sig.outputs)[0]
                signatures[sig_name] = (next(iter(sig.inputs)), output)
        self._signatures[(name, version)] = signatures
        serving = signature_map.signature_def.get(DEFAULT_SIGNATURE)
        if serving is None or DEFAULT_SIGNATURE not in signatures:
            return replace(base, state=UNAVAILABLE, detail=f"no usable {DEFAULT_SIGNATURE!r} signature")
        input_name, output_name = signatures[DEFAULT_SIGNATURE]
        tensor = serving.inputs[input_name]
        shape = (tuple(int(d.size) for d in tensor.tensor_shape.dim)
                 if not tensor.tensor_shape.unknown_rank else ())
        return replace(base, state=AVAILABLE, input_name=input_name, input_shape=shape,
                       input_dtype=DTYPE_NAMES.get(tensor.dtype, "float32"), output_name=output_name, detail="")

    async def models(self) -> list[ModelInfo]:
        await self.refresh()
        return [info for versions in self._versions.values() for _, info in sorted(versions.items())]

    async def resolve(self, ref: ModelRef, *, timeout_s: float | None = None) -> ModelInfo:
        if ref.name not in self._versions:
            raise ModelNotFound(f"unknown model {ref.name!r} (served: {', '.join(self._names) or 'none'})")
        if ref.version_label:
            version = await self._label_version(ref, timeout_s)
            ref = ModelRef(ref.name, version)
        try:
            return pick_version(ref, self._versions[ref.name])
        except (ModelNotFound, ModelUnavailable):
            await self._refresh_model(ref.name)  # a version may have become AVAILABLE since the last round
            if not self._versions[ref.name] and ref.name in self._errors:
                raise self._errors[ref.name] from None
            return pick_version(ref, self._versions[ref.name])

    async def _label_version(self, ref: ModelRef, timeout_s: float | None) -> int:
        """TF Serving resolves labels itself; GetModelMetadata answers with the version it resolved to
        (GetModelStatus ignores labels)."""
        from tensorflow_serving.apis import get_model_metadata_pb2, model_pb2

        key = (ref.name, ref.version_label)
        cached = self._label_cache.get(key)
        if cached is not None and self._clock() - cached[1] < self._label_ttl_s:
            return cached[0]
        request = get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec=model_pb2.ModelSpec(name=ref.name, version_label=ref.version_label),
            metadata_field=["signature_def"])
        try:
            reply = await self._predict.GetModelMetadata(request, timeout=_timeout(timeout_s, self._rpc_timeout_s))
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT and "label" in (exc.details() or ""):
                raise ModelNotFound(f"model {ref.name!r} has no version label {ref.version_label!r} "
                                    f"({exc.details()})") from exc
            raise map_rpc_error(exc, str(ref)) from exc
        version = int(reply.model_spec.version.value)
        if version <= 0:
            raise BackendFailure(f"TF Serving did not say which version label {ref.version_label!r} names")
        self._label_cache[key] = (version, self._clock())
        return version

    async def predict(self, model: ModelInfo, batch: np.ndarray, *, signature: str = DEFAULT_SIGNATURE,
                      timeout_s: float | None = None, version_label: str = "") -> tuple[int, np.ndarray]:
        from tensorflow_serving.apis import model_pb2, predict_pb2

        from modipick.executor.backends.tensor_proto import from_tensor_proto, to_tensor_proto

        names = self._signatures.get((model.name, model.version), {}).get(signature)
        if names is None:
            raise InvalidInput(f"model {model.name}:{model.version} has no signature {signature!r}")
        input_name, output_name = names
        spec = model_pb2.ModelSpec(name=model.name, signature_name=signature)
        if version_label:
            spec.version_label = version_label
        else:
            spec.version.value = model.version
        request = predict_pb2.PredictRequest(model_spec=spec, output_filter=[output_name])
        request.inputs[input_name].CopyFrom(to_tensor_proto(np.asarray(batch, dtype=model.input_dtype)))
        try:
            reply = await self._predict.Predict(request, timeout=_timeout(timeout_s, 30.0))
        except grpc.aio.AioRpcError as exc:
            raise map_rpc_error(exc, f"{model.name}:{model.version}") from exc
        if output_name not in reply.outputs:
            raise BackendFailure(f"TF Serving reply for {model.name}:{model.version} lacks output {output_name!r}")
        try:
            output = from_tensor_proto(reply.outputs[output_name]).astype(np.float32)
        except (TypeError, ValueError) as exc:
            raise BackendFailure(f"unreadable output of {model.name}:{model.version}: {exc}") from exc
        return int(reply.model_spec.version.value or model.version), output

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
        if self._channel is not None:
            await self._channel.close()


def _timeout(timeout_s: float | None, default: float) -> float:
    return max(0.001, timeout_s) if timeout_s is not None else default
