"""An Open Inference Protocol server (Triton, KServe, MLServer, ...) over its gRPC API
(`inference.GRPCInferenceService`, the vendored modipick.oip.v2 proto).

- ModelMetadata: a model's versions, its input (name, datatype, shape) and its outputs; the output
  used is the manifest's `output_name` when the model has it, else the model's first output.
- ModelReady: per version, AVAILABLE or LOADING (a server that does not know the model: no versions).
- ModelInfer: one input tensor as `raw_input_contents`, the one output requested, with the
  request's remaining budget as the call's gRPC deadline.

The protocol has no "list models" call, so the model names come from the pool (models.config or
manifest under --model-base, which also gives declared accuracies) or an explicit list, as with
TF Serving. Versions are numbers (Triton's are); a model whose metadata lists none (MLServer,
KServe's single-version runtimes) is served as version 1 and called without a version, letting
the server choose. Version labels and signatures other than serving_default do not exist here.
gRPC errors become executor errors at the boundary.
"""

from __future__ import annotations

import asyncio
import math
import os
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
from modipick.oip.v2 import open_inference_grpc_pb2 as oip
from modipick.oip.v2 import open_inference_grpc_pb2_grpc as oip_grpc

log = structlog.get_logger("modipick.executor.oip")

UNVERSIONED = 1  # the version a model whose metadata lists no versions is served as
# OIP datatype -> numpy dtype (little-endian, as the protocol's raw contents are)
DATATYPES = {"FP32": "<f4", "FP64": "<f8", "FP16": "<f2", "UINT8": "u1", "INT8": "i1", "INT16": "<i2",
             "INT32": "<i4", "INT64": "<i8", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8"}
INPUT_DATATYPES = {"FP32": "float32", "UINT8": "uint8"}  # what the Executor feeds (ModelInfo.input_dtype)
_WIRE_DATATYPES = {v: k for k, v in INPUT_DATATYPES.items()}
_CONTENTS = {"FP32": "fp32_contents", "FP64": "fp64_contents", "INT8": "int_contents", "INT16": "int_contents",
             "INT32": "int_contents", "INT64": "int64_contents", "UINT8": "uint_contents",
             "UINT16": "uint_contents", "UINT32": "uint_contents", "UINT64": "uint64_contents"}
_ERRORS: dict[grpc.StatusCode, type[ExecutorError]] = {
    grpc.StatusCode.NOT_FOUND: ModelNotFound,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidInput,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.UNAVAILABLE: ModelUnavailable,
    grpc.StatusCode.RESOURCE_EXHAUSTED: QueueFull,
}


def map_rpc_error(exc: grpc.aio.AioRpcError, what: str) -> ExecutorError:
    kind = _ERRORS.get(exc.code(), BackendFailure)
    return kind(f"OIP server {exc.code().name} for {what}: {exc.details() or 'no details'}")


class OipBackend:
    name = "oip"

    def __init__(self, target: str, *, model_base: str | os.PathLike[str] | None = None,
                 models: Sequence[str] = (), refresh_s: float = 5.0, rpc_timeout_s: float = 5.0,
                 channel: grpc.aio.Channel | None = None,
                 channel_factory: Callable[[str], grpc.aio.Channel] | None = None) -> None:
        self.target = target
        self._base = model_base
        self._names = list(models)
        self._refresh_s = refresh_s
        self._rpc_timeout_s = rpc_timeout_s
        self._channel = channel
        self._channel_factory = channel_factory
        self._entries = pool_entries(model_base)
        self._versions: dict[str, dict[int, ModelInfo]] = {}
        self._wire_version: dict[tuple[str, int], str] = {}  # what ModelInfer names ("" : the server's choice)
        self._errors: dict[str, ExecutorError] = {}
        self._refresher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._names = remote_model_names("oip", self._names, self._base, self._entries)
        self._channel = open_channel(self._channel, self._channel_factory, self.target)
        self._stub = oip_grpc.GRPCInferenceServiceStub(self._channel)
        self._versions = {name: {} for name in self._names}
        await self.refresh()
        self._refresher = asyncio.create_task(refresh_forever(self.refresh, self._refresh_s, self.target, log))

    async def refresh(self) -> None:
        await asyncio.gather(*(self._refresh_model(name) for name in self._names))

    async def _refresh_model(self, name: str) -> None:
        base = with_manifest(ModelInfo(name=name, version=UNVERSIONED, state=LOADING), self._entries.get(name))
        try:
            meta = await self._stub.ModelMetadata(oip.ModelMetadataRequest(name=name), timeout=self._rpc_timeout_s)
        except grpc.aio.AioRpcError as exc:
            self._errors[name] = map_rpc_error(exc, f"model {name!r} at {self.target}")
            detail = f"ModelMetadata {exc.code().name}: {exc.details()}"
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                self._versions[name] = {}
            else:
                self._versions[name] = {v: replace(i, state=UNAVAILABLE, detail=detail)
                                        for v, i in self._versions.get(name, {}).items()}
            log.warning("model status unknown", model=name, target=self.target, detail=detail)
            return
        self._errors.pop(name, None)
        described = _described(base, meta)
        wire = {int(v): v for v in meta.versions if v.isdigit()} or {UNVERSIONED: ""}
        fresh: dict[int, ModelInfo] = {}
        for version, wire_version in sorted(wire.items()):
            self._wire_version[(name, version)] = wire_version
            info = replace(described, version=version)
            if info.state == UNAVAILABLE:
                fresh[version] = info
                continue
            try:
                ready = await self._stub.ModelReady(oip.ModelReadyRequest(name=name, version=wire_version),
                                                    timeout=self._rpc_timeout_s)
                state, detail = (AVAILABLE, "") if ready.ready else (LOADING, "the server says it is not ready")
            except grpc.aio.AioRpcError as exc:
                state, detail = UNAVAILABLE, f"ModelReady {exc.code().name}: {exc.details()}"
            fresh[version] = replace(info, state=state, detail=detail)
        self._versions[name] = fresh

    async def models(self) -> list[ModelInfo]:
        await self.refresh()
        return [info for versions in self._versions.values() for _, info in sorted(versions.items())]

    async def resolve(self, ref: ModelRef, *, timeout_s: float | None = None) -> ModelInfo:
        if ref.name not in self._versions:
            raise ModelNotFound(f"unknown model {ref.name!r} (served: {', '.join(self._names) or 'none'})")
        if ref.version_label:
            raise ModelNotFound(f"model {ref.name!r}: an OIP server has no version labels "
                                f"({ref.version_label!r} asked)")
        try:
            return pick_version(ref, self._versions[ref.name])
        except (ModelNotFound, ModelUnavailable):
            await self._refresh_model(ref.name)  # it may have become ready since the last round
            if not self._versions[ref.name] and ref.name in self._errors:
                raise self._errors[ref.name] from None
            return pick_version(ref, self._versions[ref.name])

    async def predict(self, model: ModelInfo, batch: np.ndarray, *, signature: str = DEFAULT_SIGNATURE,
                      timeout_s: float | None = None, version_label: str = "") -> tuple[int, np.ndarray]:
        if signature != DEFAULT_SIGNATURE:
            raise InvalidInput(f"model {model.name}:{model.version} has no signature {signature!r} "
                               f"(an OIP model has one input and its outputs)")
        datatype = _WIRE_DATATYPES.get(model.input_dtype)
        if datatype is None:
            raise InvalidInput(f"model {model.name}:{model.version} takes {model.input_dtype}, which modipick "
                               f"does not send (it sends {', '.join(INPUT_DATATYPES)})")
        array = np.ascontiguousarray(batch, dtype=DATATYPES[datatype])
        request = oip.ModelInferRequest(
            model_name=model.name, model_version=self._wire_version.get((model.name, model.version), ""),
            outputs=[oip.ModelInferRequest.InferRequestedOutputTensor(name=model.output_name)],
            raw_input_contents=[array.tobytes()])
        request.inputs.add(name=model.input_name, datatype=datatype, shape=list(array.shape))
        try:
            reply = await self._stub.ModelInfer(request, timeout=_timeout(timeout_s, 30.0))
        except grpc.aio.AioRpcError as exc:
            raise map_rpc_error(exc, f"{model.name}:{model.version}") from exc
        try:
            output = output_array(reply, model.output_name).astype(np.float32)
        except (KeyError, TypeError, ValueError) as exc:
            raise BackendFailure(f"unreadable output of {model.name}:{model.version}: {exc}") from exc
        version = int(reply.model_version) if reply.model_version.isdigit() else model.version
        return version, output.reshape(len(array), -1)

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
        if self._channel is not None:
            await self._channel.close()


def _described(base: ModelInfo, meta: oip.ModelMetadataResponse) -> ModelInfo:
    """What the metadata says of the input and output; UNAVAILABLE (with why) if modipick cannot feed it."""
    if len(meta.inputs) != 1 or not meta.outputs:
        return replace(base, state=UNAVAILABLE, detail=f"needs one input and an output; the model has "
                       f"{len(meta.inputs)} inputs, {len(meta.outputs)} outputs")
    tensor = meta.inputs[0]
    if tensor.datatype not in INPUT_DATATYPES:
        return replace(base, state=UNAVAILABLE, detail=f"input datatype {tensor.datatype} is not one of "
                       f"{', '.join(INPUT_DATATYPES)}")
    outputs = [o.name for o in meta.outputs]
    output = base.output_name if base.output_name in outputs else outputs[0]
    return replace(base, input_name=tensor.name, input_shape=tuple(int(d) for d in tensor.shape),
                   input_dtype=INPUT_DATATYPES[tensor.datatype], output_name=output)


def output_array(reply: oip.ModelInferResponse, name: str) -> np.ndarray:
    """The named output tensor of a ModelInfer reply, from its raw or typed contents."""
    for index, tensor in enumerate(reply.outputs):
        if tensor.name == name:
            break
    else:
        raise KeyError(f"the reply has no output {name!r} (it has {', '.join(o.name for o in reply.outputs)})")
    if tensor.datatype not in DATATYPES:
        raise TypeError(f"output {name!r} is {tensor.datatype}, not a number tensor")
    shape = [int(d) for d in tensor.shape]
    if reply.raw_output_contents:
        if index >= len(reply.raw_output_contents):
            raise ValueError(f"raw_output_contents has no entry for output {index}")
        values = np.frombuffer(reply.raw_output_contents[index], dtype=DATATYPES[tensor.datatype])
    else:
        field = _CONTENTS.get(tensor.datatype)
        if field is None:
            raise TypeError(f"output {name!r} is {tensor.datatype}, which travels as raw contents only")
        values = np.asarray(getattr(tensor.contents, field), dtype=DATATYPES[tensor.datatype])
    if values.size != math.prod(shape):
        raise ValueError(f"output {name!r} holds {values.size} values for shape {shape}")
    return values.reshape(shape)


def _timeout(timeout_s: float | None, default: float) -> float:
    return max(0.001, timeout_s) if timeout_s is not None else default
