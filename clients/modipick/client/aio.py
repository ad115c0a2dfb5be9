"""asyncio client: `async with AsyncModiPickClient(target) as c: await c.infer(png, 150)`."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc

from modipick.client.errors import SlaExpired, Unavailable, from_rpc_error
from modipick.client.options import (REQUEST_ID_KEY, ClientOptions, build_infer, build_outcome, call_metadata,
                                     check_sla, new_request_id, remaining_s)
from modipick.client.result import InferResult, from_response
from modipick.client.tracing import aio_interceptors
from modipick.v1 import selector_pb2_grpc


class AsyncModiPickClient:
    """Create inside a running event loop (grpc.aio channels bind to it)."""

    def __init__(self, target: str | None = None, *, options: ClientOptions | None = None,
                 **option_overrides: Any) -> None:
        opts = options or ClientOptions()
        if target is not None:
            option_overrides["target"] = target
        if option_overrides:
            from dataclasses import replace
            opts = replace(opts, **option_overrides)
        self.options = opts
        if opts.tls is not None:
            self._channel = grpc.aio.secure_channel(opts.target, opts.tls.credentials(), opts.channel_options(),
                                                    interceptors=aio_interceptors())
        else:
            self._channel = grpc.aio.insecure_channel(opts.target, opts.channel_options(),
                                                      interceptors=aio_interceptors())
        self._stub = selector_pb2_grpc.SelectorServiceStub(self._channel)

    async def infer(self, image: Any, sla_ms: float, *, policy: str | None = None, label: int | None = None,
                    request_id: str | None = None, upload_delay_ms: float = 0.0,
                    return_delay_ms: float = 0.0) -> InferResult:
        """See ModiPickClient.infer."""
        sla = check_sla(sla_ms)
        rid = request_id or new_request_id()
        started, send_ns = time.perf_counter(), time.time_ns()  # the send stamp; the deadline counts from it
        request = build_infer(image, sla, policy=self.options.policy if policy is None else policy,
                              client_id=self.options.client_id, request_id=rid, send_time_ns=send_ns)
        if upload_delay_ms > 0:
            await asyncio.sleep(upload_delay_ms / 1000.0)
        timeout = remaining_s(self.options, sla, started)
        if timeout <= 0:
            raise SlaExpired("DEADLINE_EXCEEDED: the SLA ran out before the request was sent", request_id=rid)
        try:
            reply = await self._stub.Infer(request, timeout=timeout, metadata=call_metadata(self.options, rid))
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, rid) from None
        if return_delay_ms > 0:
            await asyncio.sleep(return_delay_ms / 1000.0)
        result = from_response(reply, request_id=rid, sla_ms=sla, e2e_ms=(time.perf_counter() - started) * 1000.0)
        if label is not None and not result.run_on_device:
            await self.report_outcome(result, label)
        return result

    async def wait_ready(self, timeout_s: float = 10.0) -> None:
        """Connect now, so the first infer's SLA is not spent on the TCP/HTTP2 handshake."""
        try:
            await asyncio.wait_for(self._channel.channel_ready(), timeout_s)
        except asyncio.TimeoutError:
            raise Unavailable(f"UNAVAILABLE: no Selector reachable at {self.options.target} "
                              f"within {timeout_s:g} s") from None

    async def report_outcome(self, result: InferResult, true_label: int | None = None) -> bool:
        if result.run_on_device or not result.model:
            return False
        try:
            await self._stub.ReportOutcome(build_outcome(result, true_label, self.options.client_id),
                                           timeout=self.options.report_timeout_s,
                                           metadata=((REQUEST_ID_KEY, result.request_id),))
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, result.request_id) from None
        return True

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> "AsyncModiPickClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
