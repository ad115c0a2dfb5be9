"""Client settings (the calls built from them: modipick.client.core)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from modipick.client.errors import InvalidRequest
from modipick.v1.contract import DEADLINE_SLACK_KEY, DEFAULT_MAX_MESSAGE_BYTES, MAX_SLA_MS, REQUEST_ID_KEY

__all__ = ["DEADLINE_SLACK_KEY", "DEFAULT_MAX_MESSAGE_BYTES", "DEFAULT_TARGET", "MAX_SLA_MS", "REQUEST_ID_KEY",
           "ClientOptions", "ClientTls", "check_sla"]

DEFAULT_TARGET = "localhost:50051"


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


def check_sla(sla_ms: float) -> float:
    sla = float(sla_ms)
    if not (math.isfinite(sla) and 0 < sla <= MAX_SLA_MS):
        raise InvalidRequest(f"sla_ms must be in (0, {MAX_SLA_MS:.0f}] ms, got {sla_ms!r}")
    return sla
