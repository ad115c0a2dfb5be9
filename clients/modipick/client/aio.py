"""asyncio client: `async with AsyncModiPickClient(target) as c: await c.infer(png, 150)`."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc

from modipick.client.core import (InferCall, not_reachable, open_channel, outcome_report, report_failed,
                                  resolve_options, rpc_errors)
from modipick.client.errors import ModiPickError
from modipick.client.options import ClientOptions, Metadata
from modipick.client.result import InferResult
from modipick.client.tracing import aio_interceptors
from modipick.v1 import selector_pb2, selector_pb2_grpc


class AsyncModiPickClient:
    """Create inside a running event loop (grpc.aio channels bind to it)."""

    def __init__(self, target: str | None = None, *, options: ClientOptions | None = None,
                 **option_overrides: Any) -> None:
        self.options = resolve_options(target, options, option_overrides)
        self._channel = open_channel(grpc.aio, self.options, interceptors=aio_interceptors())
        self._stub = selector_pb2_grpc.SelectorServiceStub(self._channel)

    async def infer(self, image: Any, sla_ms: float, *, policy: str | None = None, label: int | None = None,
                    request_id: str | None = None, upload_delay_ms: float = 0.0, return_delay_ms: float = 0.0,
                    metadata: Metadata | None = None, compression: grpc.Compression | None = None
                    ) -> InferResult:
        """See ModiPickClient.infer."""
        call = InferCall.stamp(self.options, image, sla_ms, policy=policy, request_id=request_id)
        if upload_delay_ms > 0:
            await asyncio.sleep(upload_delay_ms / 1000.0)
        reply = await self.send(call, metadata=metadata, compression=compression)
        if return_delay_ms > 0:
            await asyncio.sleep(return_delay_ms / 1000.0)
        result = call.result(reply)
        if result.run_on_device:
            return result
        if label is not None:
            try:
                await self.report_outcome(result, label, metadata=metadata, compression=compression)
            except ModiPickError as exc:
                return report_failed(result, exc)
        return result

    async def send(self, call: InferCall, *, metadata: Metadata | None = None,
                   compression: grpc.Compression | None = None) -> selector_pb2.InferResponse:
        """One Infer as `call` was stamped (InferCall.stamp, or InferCall.scheduled for a send time
        and deadline of the caller's own), with its metadata and deadline; the reply as it came
        (`call.result(reply)` reads it as an InferResult). No emulated legs, no outcome report.
        Raises a ModiPickError when the call fails."""
        with rpc_errors(call.request_id):
            return await self._stub.Infer(call.request, **call.call_kwargs(metadata, compression))

    async def wait_ready(self, timeout_s: float = 10.0) -> None:
        """Connect now, so the first infer's SLA is not spent on the TCP/HTTP2 handshake."""
        try:
            await asyncio.wait_for(self._channel.channel_ready(), timeout_s)
        except asyncio.TimeoutError:
            raise not_reachable(self.options, timeout_s) from None

    async def report_outcome(self, result: InferResult, true_label: int | None = None, *,
                             metadata: Metadata | None = None, compression: grpc.Compression | None = None
                             ) -> bool:
        """See ModiPickClient.report_outcome."""
        report = outcome_report(self.options, result, true_label, metadata, compression)
        if report is None:
            return False
        with rpc_errors(result.request_id):
            await self._stub.ReportOutcome(report[0], **report[1])
        return True

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> "AsyncModiPickClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
