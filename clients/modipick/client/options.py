"""Client settings and the request building both clients share."""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from modipick.client.errors import InvalidRequest
from modipick.client.inputs import to_input
from modipick.client.result import InferResult
from modipick.v1 import common_pb2, selector_pb2

REQUEST_ID_KEY = "x-request-id"  # same key as the services' modipick.runtime.metadata
DEADLINE_SLACK_KEY = "x-modipick-deadline-slack-ms"  # same key as modipick.selector.budget
DEFAULT_TARGET = "localhost:50051"
DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
MAX_SLA_MS = 3_600_000.0


@dataclass(frozen=True, slots=True)
class ClientTls:
    """Trust `ca_file`; present `cert_file`+`key_file` for mutual TLS."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name_override: str | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        def read(p: str | None) -> bytes | None:
            return Path(p).read_bytes() if p else None
        return grpc.ssl_channel_credentials(read(self.ca_file), read(self.key_file), read(self.cert_file))


@dataclass(frozen=True, slots=True)
class ClientOptions:
    target: str = DEFAULT_TARGET
    tls: ClientTls | None = None
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    # The gRPC deadline is the SLA minus the time spent since the send stamp (the Selector budgets
    # from it, no clock shared), plus this slack: wait that much past the SLA for the answer. The
    # slack travels in metadata so the Selector still budgets for the SLA.
    deadline_slack_ms: float = 0.0
    policy: str = ""                 # default per-request policy override ("" = the server's)
    client_id: str = ""
    report_timeout_s: float = 5.0

    def channel_options(self) -> list[tuple[str, Any]]:
        opts: list[tuple[str, Any]] = [("grpc.max_send_message_length", self.max_message_bytes),
                                       ("grpc.max_receive_message_length", self.max_message_bytes),
                                       ("grpc.enable_retries", 0),
                                       # HPACK would otherwise resend a timeout sent earlier on the
                                       # connection when the new one is up to 3 % shorter; the Selector
                                       # budgets from the deadline, so send every timeout as it is.
                                       ("grpc.http2.hpack_table_size.encoder", 0)]
        if self.tls is not None and self.tls.server_name_override:
            opts.append(("grpc.ssl_target_name_override", self.tls.server_name_override))
        return opts


def new_request_id() -> str:
    return uuid.uuid4().hex


def check_sla(sla_ms: float) -> float:
    sla = float(sla_ms)
    if not (math.isfinite(sla) and 0 < sla <= MAX_SLA_MS):
        raise InvalidRequest(f"sla_ms must be in (0, {MAX_SLA_MS:.0f}] ms, got {sla_ms!r}")
    return sla


def build_infer(image: Any, sla_ms: float, *, policy: str, client_id: str, request_id: str,
                send_time_ns: int) -> selector_pb2.InferRequest:
    try:
        inp = to_input(image)
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(f"image: {exc}", request_id=request_id) from None
    stamp = Timestamp()
    stamp.FromNanoseconds(send_time_ns)
    return selector_pb2.InferRequest(request_id=request_id, input=inp, sla_ms=sla_ms, client_send_time=stamp,
                                     policy=policy, client_id=client_id)


def remaining_s(options: ClientOptions, sla_ms: float, started: float) -> float:
    """The call's deadline: SLA + slack - time spent since `started` (perf_counter at the send stamp)."""
    return (sla_ms + options.deadline_slack_ms) / 1000.0 - (time.perf_counter() - started)


def call_metadata(options: ClientOptions, request_id: str) -> tuple[tuple[str, str], ...]:
    if options.deadline_slack_ms > 0:
        return ((REQUEST_ID_KEY, request_id), (DEADLINE_SLACK_KEY, repr(float(options.deadline_slack_ms))))
    return ((REQUEST_ID_KEY, request_id),)


def build_outcome(result: InferResult, true_label: int | None,
                  client_id: str) -> selector_pb2.ReportOutcomeRequest:
    req = selector_pb2.ReportOutcomeRequest(
        request_id=result.request_id, model=common_pb2.ModelRef(name=result.model, version=result.version),
        e2e_ms=result.e2e_ms, sla_ms=result.sla_ms, client_id=client_id,
        predicted_label=result.label if result.label is not None else -1)
    if true_label is not None:
        req.true_label = int(true_label)
    return req
