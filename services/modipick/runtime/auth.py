"""A bearer token required on admin RPCs (model registration, policy changes).

The token comes from the environment or a file (`file:/path`), is compared in constant time and is
never logged. Methods not listed stay open (the data path is protected by mTLS where wanted).
"""

from __future__ import annotations

import hmac
from typing import Awaitable, Callable, Iterable

import grpc

AUTHORIZATION_KEY = "authorization"


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return ((AUTHORIZATION_KEY, f"Bearer {token}"),)


class TokenAuthInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, token: str | None, protected_methods: Iterable[str]) -> None:
        self._token = token.encode() if token else None
        self._protected = frozenset(protected_methods)

    async def intercept_service(self, continuation: Callable[..., Awaitable[grpc.RpcMethodHandler]],
                                handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method not in self._protected:
            return handler
        if self._token is None:
            return _deny(handler, grpc.StatusCode.PERMISSION_DENIED,
                         "admin RPCs are disabled: start the server with an admin token")
        presented = b""
        for key, value in handler_call_details.invocation_metadata or ():
            if key == AUTHORIZATION_KEY:
                text = value.decode() if isinstance(value, bytes) else value
                presented = text.removeprefix("Bearer ").encode()
        if not presented:
            return _deny(handler, grpc.StatusCode.UNAUTHENTICATED, "admin RPC needs 'authorization: Bearer <token>'")
        if not hmac.compare_digest(presented, self._token):
            return _deny(handler, grpc.StatusCode.PERMISSION_DENIED, "admin token rejected")
        return handler


def _deny(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    async def abort(request_or_iterator, context):
        await context.abort(code, message)

    kwargs = dict(request_deserializer=handler.request_deserializer,
                  response_serializer=handler.response_serializer)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(abort, **kwargs)
    return grpc.unary_unary_rpc_method_handler(abort, **kwargs)
