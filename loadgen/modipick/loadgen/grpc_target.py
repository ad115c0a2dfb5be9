"""A `Target` calling modipick.v1 SelectorService.Infer with the generated stubs."""

from __future__ import annotations

import asyncio

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from modipick.loadgen.target import OK, OutgoingRequest, Reply
from modipick.v1 import common_pb2, selector_pb2, selector_pb2_grpc
from modipick.v1.contract import DISPOSITION_NAMES, REASON_NAMES, REQUEST_ID_KEY

MAX_MESSAGE_BYTES = 64 * 1024 * 1024


def _timestamp(unix_s: float) -> Timestamp:
    ns = int(round(unix_s * 1e9))
    return Timestamp(seconds=ns // 1_000_000_000, nanos=ns % 1_000_000_000)


_LEG_SOURCE = selector_pb2.InferResponse.DESCRIPTOR.fields_by_name.get("return_leg_source")


def return_leg_source(response: selector_pb2.InferResponse) -> str:
    """client | class | prior when the Selector's InferResponse carries return_leg_source (an enum
    or a string), else "" (a Selector that does not say)."""
    if _LEG_SOURCE is None:
        return ""
    value = getattr(response, _LEG_SOURCE.name)
    if _LEG_SOURCE.enum_type is not None:
        known = _LEG_SOURCE.enum_type.values_by_number.get(value) if value else None
        return known.name.lower().rpartition("_")[2] if known is not None else ""
    return str(value)


def reply_from_response(response: selector_pb2.InferResponse) -> Reply:
    t = response.timings
    served = response.disposition == selector_pb2.DISPOSITION_SERVED
    return Reply(
        status=OK,
        disposition=DISPOSITION_NAMES.get(response.disposition, "unspecified"),
        model=response.model.name,
        version=response.model.version,
        reason=REASON_NAMES.get(response.reason, "") if response.reason else "",
        predicted=response.prediction.label if served and response.HasField("prediction") else None,
        upload_ms=t.upload_ms, budget_ms=t.budget_ms, selection_ms=t.selection_ms,
        queue_ms=t.queue_ms, execution_ms=t.execution_ms, server_ms=t.server_ms,
        outcome_ticket=response.ticket if response.HasField("ticket") else None,
        return_leg_source=return_leg_source(response),
    )


def channel_target(address: str) -> tuple[str, list[tuple[str, object]]]:
    """The gRPC target and extra channel options for `address`: one HOST:PORT as it is; several,
    comma-separated ("h:1,h:2"), one channel that spreads the calls over them round robin, as a
    per-request balancer in front of Selector replicas does (outcome reports included: they echo
    the reply's ticket, so any replica learns from them)."""
    parts = [part.strip() for part in address.split(",") if part.strip()]
    if len(parts) <= 1:
        return address, []
    return "ipv4:" + ",".join(parts), [("grpc.lb_policy_name", "round_robin")]


class GrpcSelectorTarget:
    def __init__(self, address: str, *, max_message_bytes: int = MAX_MESSAGE_BYTES,
                 channel: grpc.aio.Channel | None = None) -> None:
        self.address = address
        target, spread = channel_target(address)
        self._channel = channel or grpc.aio.insecure_channel(target, options=[
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.http2.hpack_table_size.encoder", 0),  # exact timeouts: the Selector budgets from them
            *spread,
        ])
        self._stub = selector_pb2_grpc.SelectorServiceStub(self._channel)

    async def wait_ready(self, timeout_s: float = 10.0) -> None:
        try:
            await asyncio.wait_for(self._channel.channel_ready(), timeout_s)
        except (TimeoutError, asyncio.TimeoutError):
            raise ConnectionError(f"no Selector answering at {self.address} within {timeout_s:g} s") from None

    async def send(self, request: OutgoingRequest) -> Reply:
        message = selector_pb2.InferRequest(
            request_id=request.request_id, input=request.input, sla_ms=request.sla_ms,
            client_send_time=_timestamp(request.client_send_time), policy=request.policy,
            client_id=request.client_id)
        try:
            response = await self._stub.Infer(message, timeout=request.timeout_s,
                                              metadata=((REQUEST_ID_KEY, request.request_id),))
        except grpc.aio.AioRpcError as exc:
            return Reply(status=exc.code().name, error=exc.details() or "")
        return reply_from_response(response)

    async def report_outcome(self, request: OutgoingRequest, reply: Reply, e2e_ms: float,
                             label: int | None) -> None:
        message = selector_pb2.ReportOutcomeRequest(
            request_id=request.request_id, model=common_pb2.ModelRef(name=reply.model, version=reply.version),
            e2e_ms=e2e_ms, sla_ms=request.sla_ms, client_id=request.client_id,
            predicted_label=reply.predicted if reply.predicted is not None else -1)
        if label is not None:
            message.true_label = label
        if reply.outcome_ticket is not None:  # unchanged: any Selector replica learns from the report
            message.ticket.CopyFrom(reply.outcome_ticket)
        try:
            await self._stub.ReportOutcome(message, timeout=5.0, metadata=((REQUEST_ID_KEY, request.request_id),))
        except grpc.aio.AioRpcError:
            pass  # best effort: an outcome report never fails the run

    async def close(self) -> None:
        await self._channel.close()
