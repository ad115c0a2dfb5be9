"""Blocking client: `ModiPickClient(target).infer(png_bytes, sla_ms=150)`."""

from __future__ import annotations

import time
from typing import Any

import grpc

from modipick.client.errors import ModiPickError, SlaExpired, Unavailable, from_rpc_error
from modipick.client.options import (REQUEST_ID_KEY, ClientOptions, build_infer, build_outcome, call_metadata,
                                     check_sla, new_request_id, remaining_s)
from modipick.client.result import InferResult, from_response
from modipick.client.tracing import traced_channel
from modipick.v1 import selector_pb2_grpc


class ModiPickClient:
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
            self._channel = grpc.secure_channel(opts.target, opts.tls.credentials(), opts.channel_options())
        else:
            self._channel = grpc.insecure_channel(opts.target, opts.channel_options())
        self._channel = traced_channel(self._channel)  # intercepted only when the application traces
        self._stub = selector_pb2_grpc.SelectorServiceStub(self._channel)

    def infer(self, image: Any, sla_ms: float, *, policy: str | None = None, label: int | None = None,
              request_id: str | None = None, upload_delay_ms: float = 0.0,
              return_delay_ms: float = 0.0) -> InferResult:
        """Run one image through the Selector within `sla_ms`.

        `upload_delay_ms`/`return_delay_ms` emulate a slow network (demos, load generation): the
        send time is stamped, then the client sleeps the upload leg before sending, and sleeps the
        return leg after the reply; both count in `e2e_ms` and against the deadline.
        With `label`, the outcome is reported to the Selector after a served reply.
        """
        sla = check_sla(sla_ms)
        rid = request_id or new_request_id()
        started, send_ns = time.perf_counter(), time.time_ns()  # the send stamp; the deadline counts from it
        request = build_infer(image, sla, policy=self.options.policy if policy is None else policy,
                              client_id=self.options.client_id, request_id=rid, send_time_ns=send_ns)
        if upload_delay_ms > 0:
            time.sleep(upload_delay_ms / 1000.0)
        timeout = remaining_s(self.options, sla, started)
        if timeout <= 0:
            raise SlaExpired("DEADLINE_EXCEEDED: the SLA ran out before the request was sent", request_id=rid)
        try:
            reply = self._stub.Infer(request, timeout=timeout, metadata=call_metadata(self.options, rid))
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, rid) from None
        if return_delay_ms > 0:
            time.sleep(return_delay_ms / 1000.0)
        result = from_response(reply, request_id=rid, sla_ms=sla, e2e_ms=(time.perf_counter() - started) * 1000.0)
        if label is not None and not result.run_on_device:
            self.report_outcome(result, label)
        return result

    def wait_ready(self, timeout_s: float = 10.0) -> None:
        """Connect now, so the first infer's SLA is not spent on the TCP/HTTP2 handshake."""
        try:
            grpc.channel_ready_future(self._channel).result(timeout=timeout_s)
        except grpc.FutureTimeoutError:
            raise Unavailable(f"UNAVAILABLE: no Selector reachable at {self.options.target} "
                              f"within {timeout_s:g} s") from None

    def report_outcome(self, result: InferResult, true_label: int | None = None) -> bool:
        """Tell the suite what the client saw (e2e time, and the true label where known).
        Returns False for run-on-device results, which have no server model to credit."""
        if result.run_on_device or not result.model:
            return False
        try:
            self._stub.ReportOutcome(build_outcome(result, true_label, self.options.client_id),
                                     timeout=self.options.report_timeout_s,
                                     metadata=((REQUEST_ID_KEY, result.request_id),))
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, result.request_id) from None
        return True

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "ModiPickClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["ModiPickClient", "ModiPickError"]
