"""Blocking client: `ModiPickClient(target).infer(png_bytes, sla_ms=150)`."""

from __future__ import annotations

import time
from typing import Any

import grpc

from modipick.client.core import (InferCall, not_reachable, open_channel, outcome_report, report_failed,
                                  resolve_options, rpc_errors)
from modipick.client.errors import ModiPickError
from modipick.client.options import ClientOptions, Metadata
from modipick.client.result import InferResult
from modipick.client.tracing import traced_channel
from modipick.v1 import selector_pb2, selector_pb2_grpc


class ModiPickClient:
    def __init__(self, target: str | None = None, *, options: ClientOptions | None = None,
                 **option_overrides: Any) -> None:
        self.options = resolve_options(target, options, option_overrides)
        self._channel = traced_channel(open_channel(grpc, self.options))  # intercepted only when tracing
        self._stub = selector_pb2_grpc.SelectorServiceStub(self._channel)

    def infer(self, image: Any, sla_ms: float, *, policy: str | None = None, label: int | None = None,
              request_id: str | None = None, upload_delay_ms: float = 0.0, return_delay_ms: float = 0.0,
              metadata: Metadata | None = None, compression: grpc.Compression | None = None) -> InferResult:
        """Run one image through the Selector within `sla_ms`.

        `upload_delay_ms`/`return_delay_ms` emulate a slow network (demos, load generation): the
        send time is stamped, then the client sleeps the upload leg before sending, and sleeps the
        return leg after the reply; both count in `e2e_ms` and against the deadline.
        `metadata` is sent with this call (after the options' own); `compression` overrides the
        channel's for this call.
        With `label`, the outcome is reported to the Selector after a served reply; a report that
        fails leaves the prediction as it is (`InferResult.outcome_error` says why).
        """
        call = InferCall.stamp(self.options, image, sla_ms, policy=policy, request_id=request_id)
        if upload_delay_ms > 0:
            time.sleep(upload_delay_ms / 1000.0)
        reply = self.send(call, metadata=metadata, compression=compression)
        if return_delay_ms > 0:
            time.sleep(return_delay_ms / 1000.0)
        result = call.result(reply)
        if result.run_on_device:
            return result
        if label is not None:
            try:
                self.report_outcome(result, label, metadata=metadata, compression=compression)
            except ModiPickError as exc:
                return report_failed(result, exc)
        return result

    def send(self, call: InferCall, *, metadata: Metadata | None = None,
             compression: grpc.Compression | None = None) -> selector_pb2.InferResponse:
        """One Infer as `call` was stamped (InferCall.stamp, or InferCall.scheduled for a send time
        and deadline of the caller's own), with its metadata and deadline; the reply as it came
        (`call.result(reply)` reads it as an InferResult). No emulated legs, no outcome report.
        Raises a ModiPickError when the call fails."""
        with rpc_errors(call.request_id):
            return self._stub.Infer(call.request, **call.call_kwargs(metadata, compression))

    def wait_ready(self, timeout_s: float = 10.0) -> None:
        """Connect now, so the first infer's SLA is not spent on the TCP/HTTP2 handshake."""
        try:
            grpc.channel_ready_future(self._channel).result(timeout=timeout_s)
        except grpc.FutureTimeoutError:
            raise not_reachable(self.options, timeout_s) from None

    def report_outcome(self, result: InferResult, true_label: int | None = None, *,
                       metadata: Metadata | None = None, compression: grpc.Compression | None = None) -> bool:
        """Tell the suite what the client saw (e2e time, and the true label where known).
        Returns False for run-on-device results, which have no server model to credit; raises a
        ModiPickError when the report fails."""
        report = outcome_report(self.options, result, true_label, metadata, compression)
        if report is None:
            return False
        with rpc_errors(result.request_id):
            self._stub.ReportOutcome(report[0], **report[1])
        return True

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "ModiPickClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["ModiPickClient", "ModiPickError"]
