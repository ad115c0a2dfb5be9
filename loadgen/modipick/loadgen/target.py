"""What the load generator drives: anything that sends one request and returns what came back.

`GrpcSelectorTarget` (modipick.loadgen.grpc_target) talks to a Selector through the client SDK's
asyncio client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from modipick.v1 import common_pb2, selector_pb2

OK = "OK"


@dataclass(frozen=True, slots=True)
class OutgoingRequest:
    request_id: str
    input: common_pb2.Input
    sla_ms: float
    client_send_time: float      # unix seconds: the request's intended send time
    timeout_s: float | None      # gRPC deadline from now; None = no deadline
    policy: str = ""             # "" = the Selector's configured policy
    client_id: str = ""


@dataclass(slots=True)
class Reply:
    status: str = OK             # "OK" or a grpc.StatusCode name
    error: str = ""
    disposition: str = ""        # served | run_on_device
    model: str = ""
    version: int = 0
    reason: str = ""             # base | explored | fallback
    predicted: int | None = None
    upload_ms: float | None = None      # the server's view (receive - client send time)
    budget_ms: float | None = None
    selection_ms: float | None = None
    queue_ms: float | None = None
    execution_ms: float | None = None
    server_ms: float | None = None
    outcome_ticket: selector_pb2.OutcomeTicket | None = None  # echoed in the outcome report
    return_leg_source: str = ""         # client | class | prior, when the Selector says ("" otherwise)

    @property
    def ok(self) -> bool:
        return self.status == OK


class Target(Protocol):
    async def send(self, request: OutgoingRequest) -> Reply:
        """Send one request; never raises for RPC failures (they become Reply.status)."""
        ...

    async def report_outcome(self, request: OutgoingRequest, reply: Reply, e2e_ms: float,
                             label: int | None) -> None:
        """Tell the server what the client saw (end-to-end time, true label); best effort."""
        ...

    async def close(self) -> None: ...
