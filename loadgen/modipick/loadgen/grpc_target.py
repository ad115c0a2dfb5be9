"""A `Target` calling modipick.v1 SelectorService.Infer through the client SDK's asyncio client: the
requests, their metadata and deadlines, the outcome reports and the error mapping are the SDK's;
this module only records the replies as the runner keeps them."""

from __future__ import annotations

from modipick.client import AsyncModiPickClient, ClientOptions, InferResult, ModiPickError, Unavailable
from modipick.client.core import InferCall
from modipick.loadgen.target import OK, OutgoingRequest, Reply
from modipick.v1 import selector_pb2
from modipick.v1.contract import DISPOSITION_NAMES, REASON_NAMES, RETURN_LEG_SOURCE_NAMES

# records leave the source empty when the Selector did not say
LOADGEN_RETURN_LEG_SOURCES = {**RETURN_LEG_SOURCE_NAMES, selector_pb2.RETURN_LEG_SOURCE_UNSPECIFIED: ""}

MAX_MESSAGE_BYTES = 64 * 1024 * 1024


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
        return_leg_source=LOADGEN_RETURN_LEG_SOURCES.get(response.return_leg_source, ""),
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
    """Create inside the running event loop (the SDK's grpc.aio channel binds to it). No retry
    policy by default: a load generator records every UNAVAILABLE as it met it."""

    def __init__(self, address: str, *, max_message_bytes: int = MAX_MESSAGE_BYTES,
                 options: ClientOptions | None = None) -> None:
        self.address = address
        target, spread = channel_target(address)
        self.client = AsyncModiPickClient(options=options or ClientOptions(
            target=target, max_message_bytes=max_message_bytes, retry=None, channel_args=tuple(spread)))

    async def wait_ready(self, timeout_s: float = 10.0) -> None:
        try:
            await self.client.wait_ready(timeout_s)
        except Unavailable:
            raise ConnectionError(f"no Selector answering at {self.address} within {timeout_s:g} s") from None

    async def send(self, request: OutgoingRequest) -> Reply:
        try:
            call = InferCall.scheduled(self.client.options, request.input, request.sla_ms,
                                       send_time_ns=round(request.client_send_time * 1e9),
                                       timeout_s=request.timeout_s, request_id=request.request_id,
                                       policy=request.policy, client_id=request.client_id)
            response = await self.client.send(call)
        except ModiPickError as exc:
            return Reply(status=exc.code.name, error=exc.details)
        return reply_from_response(response)

    async def report_outcome(self, request: OutgoingRequest, reply: Reply, e2e_ms: float,
                             label: int | None) -> None:
        served = InferResult(request_id=request.request_id, sla_ms=request.sla_ms, e2e_ms=e2e_ms,
                             run_on_device=False, model=reply.model, version=reply.version, label=reply.predicted,
                             outcome_ticket=reply.outcome_ticket, client_id=request.client_id)
        try:
            await self.client.report_outcome(served, label)
        except ModiPickError:
            pass  # best effort: an outcome report never fails the run

    async def close(self) -> None:
        await self.client.close()
