"""The Open Inference Protocol (KServe v2, `inference.GRPCInferenceService`) as a second front door
of the Selector, so Triton, KServe and MLServer clients call modipick unchanged.

Each configured virtual model name stands for the whole pool: ModelInfer is translated into the
Selector's InferRequest and run through `SelectorService.Infer` in-process, on the same call
context, so the gRPC deadline the client set (tritonclient's `client_timeout`) is the SLA's time
left, as on modipick's own API. The SLA itself is the request parameter `sla_ms` when given (the
upload is then measured as SLA - time left), else the time left at arrival (upload counted 0).

The reply carries the `scores` and `label` tensors and parameters naming what the Selector did:
`modipick_model`, `modipick_model_version`, `modipick_disposition`, `modipick_reason`,
`modipick_budget_ms`, `modipick_server_ms`, `modipick_request_id`.

RUN_ON_DEVICE (no model of the pool answers within the SLA): by default the call ends with
DEADLINE_EXCEEDED, which is what an OIP client without an on-device model would meet anyway, at
once instead of at its deadline, with trailing metadata `x-modipick-disposition: RUN_ON_DEVICE` and
`x-modipick-model`. A client that has a model on the device sends the parameter
`accept_run_on_device: true` and gets an OK reply without output tensors, its parameters saying
`modipick_disposition: RUN_ON_DEVICE`.
"""

from __future__ import annotations

import importlib.metadata
import time
from typing import Callable, Sequence

import grpc
import structlog
from google.protobuf.timestamp_pb2 import Timestamp

from modipick.oip.v2 import open_inference_grpc_pb2 as oip
from modipick.oip.v2 import open_inference_grpc_pb2_grpc as oip_grpc
from modipick.runtime.metadata import request_id_problem
from modipick.selector.budget import deadline_slack_ms, deadline_upload_ms
from modipick.selector.cache import ProfileCache
from modipick.selector.oip_tensors import (OUTPUTS, OipInvalid, add_outputs, read_options, requested_outputs,
                                           set_parameter, to_input)
from modipick.selector.service import SelectorService
from modipick.v1 import common_pb2, selector_pb2

log = structlog.get_logger("modipick.selector.oip")

SERVICE_NAME = "inference.GRPCInferenceService"
PLATFORM = "modipick"
EXTENSIONS = ("parameters",)
DISPOSITION_KEY = "x-modipick-disposition"
MODEL_KEY = "x-modipick-model"


def parse_model_names(text: str) -> tuple[str, ...]:
    """`--oip-models`: comma-separated virtual model names ('' : the OIP front door is off)."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    for name in names:
        if not name.isprintable() or any(c.isspace() or c == "/" for c in name) or len(name) > 128:
            raise ValueError(f"model name {name[:40]!r}: printable, without spaces or '/', at most 128 characters")
    if len(set(names)) != len(names):
        raise ValueError(f"a model name is listed twice in {text!r}")
    return names


def _version() -> str:
    try:
        return importlib.metadata.version("modipick")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class OpenInferenceService(oip_grpc.GRPCInferenceServiceServicer):
    """`ready`: whether the pool has a model to serve with; `pool`: its models as name:version."""

    def __init__(self, selector: SelectorService, models: Sequence[str], *, ready: Callable[[], bool],
                 pool: Callable[[], Sequence[str]], wall_ns: Callable[[], int] = time.time_ns) -> None:
        if not models:
            raise ValueError("the OIP front door needs at least one virtual model name")
        self._selector = selector
        self._models = tuple(models)
        self._ready = ready
        self._pool = pool
        self._wall_ns = wall_ns
        self._version = _version()

    async def ServerLive(self, request, context):
        return oip.ServerLiveResponse(live=True)

    async def ServerReady(self, request, context):
        return oip.ServerReadyResponse(ready=self._ready())

    async def ModelReady(self, request, context):
        return oip.ModelReadyResponse(ready=request.name in self._models and not request.version and self._ready())

    async def ServerMetadata(self, request, context):
        return oip.ServerMetadataResponse(name=PLATFORM, version=self._version, extensions=EXTENSIONS)

    async def ModelMetadata(self, request, context):
        await self._check_model(request.name, request.version, context)
        tensor = oip.ModelMetadataResponse.TensorMetadata
        return oip.ModelMetadataResponse(
            name=request.name, platform=PLATFORM,
            inputs=[tensor(name="image", datatype="FP32", shape=[-1, -1, -1, -1])],
            outputs=[tensor(name="scores", datatype="FP32", shape=[1, -1]),
                     tensor(name="label", datatype="INT32", shape=[1])],
            properties={"modipick.pool": ",".join(self._pool()),
                        "modipick.inputs": "FP32 or UINT8 image tensor, or BYTES [1]: one PNG/JPEG image",
                        "modipick.parameters": "sla_ms, client_id, policy, accept_run_on_device"})

    async def ModelInfer(self, request: oip.ModelInferRequest, context: grpc.aio.ServicerContext):
        await self._check_model(request.model_name, request.model_version, context)
        try:
            problem = request_id_problem(request.id)  # it becomes the request id
            if problem:
                raise OipInvalid("id" + problem.removeprefix("request_id"))
            options = read_options(request)
            infer = selector_pb2.InferRequest(request_id=request.id, input=to_input(request),
                                              client_id=options.client_id, policy=options.policy)
            outputs = requested_outputs(request)
        except OipInvalid as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        left_s = context.time_remaining()
        if options.sla_ms is not None:
            infer.sla_ms = options.sla_ms
        elif left_s is not None:
            infer.sla_ms = left_s * 1000.0
        else:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                "no SLA: call with a deadline (tritonclient: client_timeout) or set the "
                                "request parameter sla_ms")
        if not self._deadline_counts(infer.sla_ms, left_s, context):
            # no deadline to measure the upload by: the SLA counts from now (upload 0)
            infer.client_send_time.CopyFrom(_timestamp(self._wall_ns()))
        reply = await self._selector.Infer(infer, context)  # aborts the call itself on failure
        chosen = f"{reply.model.name}:{reply.model.version}"
        disposition = selector_pb2.Disposition.Name(reply.disposition).removeprefix("DISPOSITION_")
        if reply.disposition == selector_pb2.DISPOSITION_RUN_ON_DEVICE and not options.accept_run_on_device:
            await context.abort(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"no model answers within the SLA ({infer.sla_ms:g} ms, budget {reply.timings.budget_ms:.1f} ms; "
                f"fastest {chosen}): run on the device (send parameter accept_run_on_device to get this as "
                f"an OK reply)", ((DISPOSITION_KEY, disposition), (MODEL_KEY, chosen)))
        response = oip.ModelInferResponse(model_name=request.model_name, id=request.id)
        if reply.disposition == selector_pb2.DISPOSITION_SERVED:
            add_outputs(response, reply.prediction, outputs)
        params = response.parameters
        set_parameter(params, "modipick_model", reply.model.name)
        set_parameter(params, "modipick_model_version", int(reply.model.version))
        set_parameter(params, "modipick_disposition", disposition)
        set_parameter(params, "modipick_reason",
                      common_pb2.SelectionReason.Name(reply.reason).removeprefix("SELECTION_REASON_"))
        set_parameter(params, "modipick_budget_ms", float(reply.timings.budget_ms))
        set_parameter(params, "modipick_server_ms", float(reply.timings.server_ms))
        set_parameter(params, "modipick_request_id", reply.request_id)
        return response

    def _deadline_counts(self, sla_ms: float, left_s: float | None, context) -> bool:
        """Whether the Selector's budget will measure the upload by this call's deadline."""
        try:
            slack = deadline_slack_ms(context.invocation_metadata())
        except ValueError:
            return True  # Infer refuses the bad metadata itself, naming it
        return deadline_upload_ms(sla_ms, left_s, slack, self._selector.budgeter.rules) is not None

    async def _check_model(self, name: str, version: str, context) -> None:
        if name not in self._models:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown model {name[:64]!r}; this Selector serves "
                                f"{', '.join(self._models)} (each picks from the whole pool)")
        if version:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                f"model_version: {name} is modipick's choice among the pool, per request; "
                                f"leave the version empty (the reply's parameters name the model that ran)")


def _timestamp(wall_ns: int) -> Timestamp:
    return Timestamp(seconds=wall_ns // 1_000_000_000, nanos=wall_ns % 1_000_000_000)


def registration(selector: SelectorService, models: Sequence[str], cache: ProfileCache,
                 wall_ns: Callable[[], int] = time.time_ns):
    """The front door for `start_server`, beside the Selector's own service. Not listed for
    reflection: its messages live in a descriptor pool of their own (protos/generate.py)."""
    service = OpenInferenceService(selector, models, ready=lambda: bool(cache.snapshot.candidates),
                                   pool=lambda: [c.key for c in cache.snapshot.candidates], wall_ns=wall_ns)
    return (oip_grpc.add_GRPCInferenceServiceServicer_to_server, service)


__all__ = ["OUTPUTS", "OpenInferenceService", "SERVICE_NAME", "parse_model_names", "registration"]
