"""What ModiPickClient and AsyncModiPickClient share; they differ only in how they wait.

Here: resolving options, opening the channel (grpc or grpc.aio), the InferRequest with its send
stamp, deadline and metadata, the result, the outcome report, and gRPC errors as typed errors.
"""

from __future__ import annotations

import logging
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Iterator

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from modipick.client.errors import InvalidRequest, ModiPickError, SlaExpired, Unavailable, from_rpc_error
from modipick.client.inputs import to_input
from modipick.client.options import DEADLINE_SLACK_KEY, REQUEST_ID_KEY, ClientOptions, Metadata, check_sla
from modipick.client.result import InferResult, from_response
from modipick.v1 import common_pb2, selector_pb2
from modipick.v1.contract import client_id_header

log = logging.getLogger("modipick.client")

def resolve_options(target: str | None, options: ClientOptions | None,
                    overrides: dict[str, Any]) -> ClientOptions:
    """`options` (or the defaults) with `target` and any keyword overrides applied."""
    opts = options or ClientOptions()
    if target is not None:
        overrides["target"] = target
    return replace(opts, **overrides) if overrides else opts


def open_channel(grpc_module: Any, options: ClientOptions, **kwargs: Any) -> Any:
    """A channel to the Selector from `grpc` or `grpc.aio` (kwargs: e.g. aio interceptors)."""
    if options.tls is not None:
        return grpc_module.secure_channel(options.target, options.tls.credentials(), options.channel_options(),
                                          compression=options.compression, **kwargs)
    return grpc_module.insecure_channel(options.target, options.channel_options(),
                                        compression=options.compression, **kwargs)


def not_reachable(options: ClientOptions, timeout_s: float) -> Unavailable:
    return Unavailable(f"UNAVAILABLE: no Selector reachable at {options.target} within {timeout_s:g} s")


@contextmanager
def rpc_errors(request_id: str) -> Iterator[None]:
    """gRPC failures inside the block raise as the client's typed errors, caused by the original."""
    try:
        yield
    except grpc.RpcError as exc:
        raise from_rpc_error(exc, request_id) from exc


def new_request_id() -> str:
    return uuid.uuid4().hex


def build_infer(image: Any, sla_ms: float, *, policy: str, client_id: str, request_id: str,
                send_time_ns: int) -> selector_pb2.InferRequest:
    try:
        inp = to_input(image)
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(f"image: {exc}", request_id=request_id) from None
    stamp = Timestamp(seconds=send_time_ns // 1_000_000_000, nanos=send_time_ns % 1_000_000_000)
    return selector_pb2.InferRequest(request_id=request_id, input=inp, sla_ms=sla_ms, client_send_time=stamp,
                                     policy=policy, client_id=client_id)


def call_metadata(options: ClientOptions, request_id: str, extra: Metadata | None = None,
                  *, slack: bool = True, client_id: str = "") -> Metadata:
    """The options' metadata, then the call's own, then the request id (the client id for the
    balancer, and the deadline slack)."""
    ours: Metadata = ((REQUEST_ID_KEY, request_id), *client_id_header(client_id))
    if slack and options.deadline_slack_ms > 0:
        ours += ((DEADLINE_SLACK_KEY, repr(float(options.deadline_slack_ms))),)
    if options.token:
        ours += (("authorization", f"Bearer {options.token}"),)
    return (*options.metadata, *(extra or ()), *ours)


def call_kwargs(options: ClientOptions, request_id: str, timeout: float | None, metadata: Metadata | None,
                compression: grpc.Compression | None, *, slack: bool = True, client_id: str = "") -> dict[str, Any]:
    """timeout (None: no deadline), metadata and (other than the channel's) compression for one call."""
    kwargs: dict[str, Any] = {"timeout": timeout, "metadata": call_metadata(options, request_id, metadata, slack=slack,
                                                                            client_id=client_id)}
    if compression is not None:
        kwargs["compression"] = compression
    return kwargs


@dataclass(slots=True)  # not frozen: built on every call, and a frozen dataclass costs µs to build
class InferCall:
    """One Infer from its send stamp to its result; the client sleeps the emulated legs around it."""

    options: ClientOptions
    request: selector_pb2.InferRequest
    request_id: str
    sla_ms: float
    started: float            # perf_counter at the send stamp; e2e_ms counts from it
    deadline: float | None    # perf_counter when the call's deadline passes (None: no deadline)

    @classmethod
    def stamp(cls, options: ClientOptions, image: Any, sla_ms: float, *, policy: str | None,
              request_id: str | None) -> "InferCall":
        """Stamped now; the deadline is the SLA (plus the options' slack) from now."""
        sla = check_sla(sla_ms)
        rid = request_id or new_request_id()
        started, send_ns = time.perf_counter(), time.time_ns()
        request = build_infer(image, sla, policy=options.policy if policy is None else policy,
                              client_id=options.client_id, request_id=rid, send_time_ns=send_ns)
        return cls(options, request, rid, sla, started, started + (sla + options.deadline_slack_ms) / 1000.0)

    @classmethod
    def scheduled(cls, options: ClientOptions, image: Any, sla_ms: float, *, send_time_ns: int,
                  timeout_s: float | None, request_id: str, policy: str | None = None,
                  client_id: str | None = None) -> "InferCall":
        """Stamped with a send time the caller chose (an open-loop load generator stamps each
        request's intended send time, its upload leg already spent), the deadline `timeout_s` from
        now (None: no deadline), and the request's own client id (default: the options')."""
        sla = check_sla(sla_ms)
        now = time.perf_counter()
        request = build_infer(image, sla, policy=options.policy if policy is None else policy,
                              client_id=options.client_id if client_id is None else client_id,
                              request_id=request_id, send_time_ns=send_time_ns)
        started = now - max(0, time.time_ns() - send_time_ns) / 1e9
        return cls(options, request, request_id, sla, started, None if timeout_s is None else now + timeout_s)

    def call_kwargs(self, metadata: Metadata | None = None,
                    compression: grpc.Compression | None = None) -> dict[str, Any]:
        """timeout, metadata (and compression) for the Infer RPC; SlaExpired when the deadline
        passed before sending."""
        timeout = None
        if self.deadline is not None:
            timeout = self.deadline - time.perf_counter()
            if timeout <= 0:
                raise SlaExpired("DEADLINE_EXCEEDED: the SLA ran out before the request was sent",
                                 request_id=self.request_id)
        return call_kwargs(self.options, self.request_id, timeout, metadata, compression,
                           client_id=self.request.client_id)

    def result(self, reply: selector_pb2.InferResponse) -> InferResult:
        return from_response(reply, request_id=self.request_id, sla_ms=self.sla_ms,
                             e2e_ms=(time.perf_counter() - self.started) * 1000.0,
                             client_id=self.request.client_id)


def build_outcome(result: InferResult, true_label: int | None,
                  client_id: str) -> selector_pb2.ReportOutcomeRequest:
    req = selector_pb2.ReportOutcomeRequest(
        request_id=result.request_id, model=common_pb2.ModelRef(name=result.model, version=result.version),
        e2e_ms=result.e2e_ms, sla_ms=result.sla_ms, client_id=client_id,
        predicted_label=result.label if result.label is not None else -1)
    if true_label is not None:
        req.true_label = int(true_label)
    if result.outcome_ticket is not None:  # echoed unchanged: whichever replica gets the report learns from it
        req.ticket.CopyFrom(result.outcome_ticket)
    return req


def outcome_report(options: ClientOptions, result: InferResult, true_label: int | None,
                   metadata: Metadata | None = None, compression: grpc.Compression | None = None
                   ) -> tuple[selector_pb2.ReportOutcomeRequest, dict[str, Any]] | None:
    """The ReportOutcome request and its call kwargs; None for run-on-device results, which have
    no server model to credit."""
    if result.run_on_device or not result.model:
        return None
    report = build_outcome(result, true_label, result.client_id or options.client_id)
    return report, call_kwargs(options, result.request_id, options.report_timeout_s, metadata, compression,
                               slack=False, client_id=report.client_id)


def report_failed(result: InferResult, error: ModiPickError) -> InferResult:
    """The served result, kept, with why its outcome report failed."""
    log.warning("outcome report failed; the prediction stands: %s (request %s)", error, result.request_id)
    return replace(result, outcome_error=str(error))
