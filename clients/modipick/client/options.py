"""Client settings (the calls built from them: modipick.client.core)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from modipick.client.errors import InvalidRequest
from modipick.v1.contract import DEADLINE_SLACK_KEY, DEFAULT_MAX_MESSAGE_BYTES, MAX_SLA_MS, REQUEST_ID_KEY

__all__ = ["DEADLINE_SLACK_KEY", "DEFAULT_MAX_MESSAGE_BYTES", "DEFAULT_TARGET", "MAX_SLA_MS", "REQUEST_ID_KEY",
           "ClientOptions", "ClientTls", "check_sla"]

SELECTOR_SERVICE = "modipick.v1.SelectorService"
DEFAULT_TARGET = "localhost:50051"

Metadata = tuple[tuple[str, str | bytes], ...]


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
class RetryPolicy:
    """gRPC's retry policy (the channel's service config) for the Selector's methods: a call that
    ends UNAVAILABLE is tried again within its deadline. The Selector marks the UNAVAILABLE it
    answers itself as not to be retried (retry pushback), so only calls the server never processed
    (a connection refused or reset, a replica shutting down) are retried. gRPC's transparent
    retries (a call that never left the client) stay on whatever this says."""

    max_attempts: int = 3
    initial_backoff_s: float = 0.01
    max_backoff_s: float = 0.1
    backoff_multiplier: float = 2.0
    retryable_codes: tuple[str, ...] = ("UNAVAILABLE",)

    def service_config(self) -> str:
        return json.dumps({"methodConfig": [{
            "name": [{"service": SELECTOR_SERVICE}],
            "retryPolicy": {"maxAttempts": self.max_attempts, "initialBackoff": f"{self.initial_backoff_s:g}s",
                            "maxBackoff": f"{self.max_backoff_s:g}s", "backoffMultiplier": self.backoff_multiplier,
                            "retryableStatusCodes": list(self.retryable_codes)}}]})


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
    # sent with every call (e.g. ("authorization", "Bearer ...")); a call's own metadata adds to it
    metadata: Metadata = ()
    # the channel's default compression (a call may override it); None: uncompressed
    compression: grpc.Compression | None = None
    # HTTP/2 keepalive pings (None: gRPC's defaults, no pings while idle)
    keepalive_time_ms: int | None = None
    keepalive_timeout_ms: int | None = None
    keepalive_permit_without_calls: bool = False
    retry: RetryPolicy | None = field(default_factory=RetryPolicy)
    # any other gRPC channel argument, e.g. (("grpc.lb_policy_name", "round_robin"),); these win
    # over the ones the options above set
    channel_args: tuple[tuple[str, Any], ...] = ()
    # a bearer token (a JWT) where the Selector authenticates clients; it names the client, so
    # client_id may stay empty
    token: str = field(default="", repr=False)

    def channel_options(self) -> list[tuple[str, Any]]:
        opts: list[tuple[str, Any]] = [("grpc.max_send_message_length", self.max_message_bytes),
                                       ("grpc.max_receive_message_length", self.max_message_bytes),
                                       # HPACK would otherwise resend a timeout sent earlier on the
                                       # connection when the new one is up to 3 % shorter; the Selector
                                       # budgets from the deadline, so send every timeout as it is.
                                       ("grpc.http2.hpack_table_size.encoder", 0)]
        if self.retry is not None:
            opts.append(("grpc.service_config", self.retry.service_config()))
        if self.keepalive_time_ms is not None:
            opts.append(("grpc.keepalive_time_ms", int(self.keepalive_time_ms)))
        if self.keepalive_timeout_ms is not None:
            opts.append(("grpc.keepalive_timeout_ms", int(self.keepalive_timeout_ms)))
        if self.keepalive_permit_without_calls:
            opts.append(("grpc.keepalive_permit_without_calls", 1))
        if self.tls is not None and self.tls.server_name_override:
            opts.append(("grpc.ssl_target_name_override", self.tls.server_name_override))
        given = {key for key, _ in self.channel_args}
        return [o for o in opts if o[0] not in given] + list(self.channel_args)


def check_sla(sla_ms: float) -> float:
    sla = float(sla_ms)
    if not (math.isfinite(sla) and 0 < sla <= MAX_SLA_MS):
        raise InvalidRequest(f"sla_ms must be in (0, {MAX_SLA_MS:.0f}] ms, got {sla_ms!r}")
    return sla
