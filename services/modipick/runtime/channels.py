"""Outgoing gRPC channels with the project's TLS and message-size settings."""

from __future__ import annotations

from typing import Sequence

import grpc

from modipick.runtime.tls import TlsConfig
from modipick.v1.contract import DEFAULT_MAX_MESSAGE_BYTES

__all__ = ["DEFAULT_MAX_MESSAGE_BYTES", "aio_channel", "channel_options"]


def channel_options(max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                    extra: list[tuple[str, object]] | None = None) -> list[tuple[str, object]]:
    return [("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.enable_retries", 0),
            # dns:/// targets resolve to every replica (headless Services): spread calls over all.
            ("grpc.lb_policy_name", "round_robin"),
            *(extra or [])]


def aio_channel(target: str, *, tls: TlsConfig | None = None,
                max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                extra_options: list[tuple[str, object]] | None = None,
                interceptors: Sequence[grpc.aio.ClientInterceptor] = ()) -> grpc.aio.Channel:
    options = channel_options(max_message_bytes, extra_options)
    if tls is not None and tls.enabled:
        return grpc.aio.secure_channel(target, tls.channel_credentials(), options + tls.channel_options(),
                                       interceptors=list(interceptors) or None)
    return grpc.aio.insecure_channel(target, options, interceptors=list(interceptors) or None)
