"""gRPC interceptors that resolve who calls (modipick.runtime.identity) before a handler runs.

`ClientIdentityInterceptor` (the Selector): a client is its JWT's subject or its certificate's
name; a request's `client_id` must be that subject or empty (it is then set to it), so every
handler reads the authenticated id from the request. Unauthenticated callers are refused, or,
with mode "anonymous", become one shared client (`ANONYMOUS_CLIENT_ID`) that may name no client.

`ServiceIdentityInterceptor` (the Profiler): each protected method needs one role (Executor,
Selector, admin), proven by that role's bearer token or certificate name.

`BearerTokenInterceptor` (outgoing channels): adds a service's token to every call it makes.

The wrapped handlers are built once per method; per call the cost is reading the metadata and,
for a JWT, one cache look-up after its first verification.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterable, Mapping

import grpc
from modipick.runtime.identity import (ANONYMOUS, ANONYMOUS_CLASS, ANONYMOUS_CLIENT_ID, AUTHORIZATION_KEY,
                                       Identity, JwtSettings, JwtVerifier, Refused, ServiceCredentials,
                                       bearer_token, certificate_names, denied, set_current_identity,
                                       unauthenticated)

CLIENT_AUTH_MODES = ("off", "required", "anonymous")

Resolve = Callable[[Any, grpc.aio.ServicerContext], Identity]


def _wrap(handler: grpc.RpcMethodHandler, resolve: Resolve) -> grpc.RpcMethodHandler:
    """The handler with `resolve(request or None, context)` run first: Refused aborts the call,
    else the identity is left in the context variable for the handler."""
    kwargs = dict(request_deserializer=handler.request_deserializer,
                  response_serializer=handler.response_serializer)
    if handler.request_streaming:
        inner = handler.stream_unary if not handler.response_streaming else handler.stream_stream

        async def streaming(request_iterator, context):
            try:
                identity = resolve(None, context)
            except Refused as exc:
                await context.abort(exc.code, str(exc))
            set_current_identity(identity)
            return await inner(request_iterator, context)

        if handler.response_streaming:
            return grpc.stream_stream_rpc_method_handler(streaming, **kwargs)
        return grpc.stream_unary_rpc_method_handler(streaming, **kwargs)
    if handler.response_streaming:
        raise ValueError("server-streaming methods are not wrapped")
    unary = handler.unary_unary

    async def behaviour(request, context):
        try:
            identity = resolve(request, context)
        except Refused as exc:
            await context.abort(exc.code, str(exc))
        set_current_identity(identity)
        return await unary(request, context)

    return grpc.unary_unary_rpc_method_handler(behaviour, **kwargs)


class _WrappingInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self) -> None:
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    def resolver(self, method: str) -> Resolve | None:
        raise NotImplementedError

    async def intercept_service(self, continuation: Callable[..., Awaitable[grpc.RpcMethodHandler]],
                                handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        known = self._wrapped.get(method)
        if known is not None and known[0] is handler:
            return known[1]
        resolve = self.resolver(method)
        wrapped = handler if resolve is None else _wrap(handler, resolve)
        self._wrapped[method] = (handler, wrapped)
        return wrapped


# -- clients ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClientAuthSettings:
    mode: str = "off"                    # off | required | anonymous (unauthenticated: one anonymous client)
    jwt: JwtSettings = JwtSettings()     # bearer tokens (none configured: tokens are not accepted)
    mtls: bool = False                   # a client certificate's name is the client's identity

    def __post_init__(self) -> None:
        if self.mode not in CLIENT_AUTH_MODES:
            raise ValueError(f"client auth mode must be one of {', '.join(CLIENT_AUTH_MODES)}, got {self.mode!r}")
        if self.mode != "off" and not (self.jwt.enabled or self.mtls):
            raise ValueError("client authentication needs JWT keys or client certificates (mTLS)")

    @property
    def enabled(self) -> bool:
        return self.mode != "off"


class ClientIdentityInterceptor(_WrappingInterceptor):
    def __init__(self, settings: ClientAuthSettings, methods: Iterable[str], *,
                 verifier: JwtVerifier | None = None) -> None:
        super().__init__()
        self.settings = settings
        self._methods = frozenset(methods)
        self._verifier = verifier if verifier is not None else (JwtVerifier(settings.jwt) if settings.jwt.enabled
                                                                else None)
        self.refused: dict[str, int] = {}  # by gRPC status name

    def resolver(self, method: str) -> Resolve | None:
        return self._resolve if method in self._methods else None

    def identity(self, context: grpc.aio.ServicerContext) -> Identity:
        token = bearer_token(context.invocation_metadata())
        if token:
            if self._verifier is None:
                raise unauthenticated("bearer tokens are not accepted here (authenticate with a client certificate)")
            return Identity(self._verifier.subject(token), "client", "jwt")
        if self.settings.mtls:
            names = certificate_names(context.auth_context())
            if names:
                return Identity(names[0], "client", "mtls")
        if self.settings.mode == "anonymous":
            return ANONYMOUS
        raise unauthenticated("authentication required: send 'authorization: Bearer <JWT>'"
                              + (" or a client certificate" if self.settings.mtls else ""))

    def _resolve(self, request: Any, context: grpc.aio.ServicerContext) -> Identity:
        try:
            identity = self.identity(context)
            if request is not None and hasattr(request, "client_id"):
                bind_client_id(request, identity)
        except Refused as exc:
            self.refused[exc.code.name] = self.refused.get(exc.code.name, 0) + 1
            raise
        return identity


def bind_client_id(request: Any, identity: Identity) -> None:
    """Set `request.client_id` to the caller's; Refused(PERMISSION_DENIED) when it names another client."""
    claimed = request.client_id
    if identity.anonymous:
        if claimed and claimed != ANONYMOUS_CLIENT_ID:
            raise denied("client_id: an unauthenticated caller cannot name a client (send none, or authenticate)")
        request.client_id = ANONYMOUS_CLIENT_ID
        return
    subject = identity.subject
    head, sep, _ = subject.partition("/")
    if sep and head == ANONYMOUS_CLASS:
        raise denied(f"client {subject[:64]!r}: the network class {ANONYMOUS_CLASS!r} is reserved")
    if claimed and claimed != subject:
        raise denied(f"client_id: {claimed[:64]!r} is not the authenticated client")
    request.client_id = subject


# -- services --------------------------------------------------------------------------------------
class ServiceIdentityInterceptor(_WrappingInterceptor):
    """`roles`: method path -> the role it needs. Internal writes (executor, selector methods) are
    open while no Executor or Selector credential is configured; admin methods always need one.
    No token (and no certificate whose name is configured for a role) is UNAUTHENTICATED; a wrong
    or another role's credential is PERMISSION_DENIED."""

    def __init__(self, credentials: ServiceCredentials, roles: Mapping[str, str], *, mtls: bool = False) -> None:
        super().__init__()
        self.credentials = credentials
        self._roles = dict(roles)
        # certificates name roles only where names are configured; otherwise a client certificate
        # is the transport's business (mTLS), not a credential for any role
        self._mtls = mtls and any(credentials.names.values())
        self.internal_enforced = any(credentials.tokens.get(r) or credentials.names.get(r)
                                     for r in ("executor", "selector"))
        self.refused: dict[str, int] = {}  # by method name and gRPC status, "RecordObservations UNAUTHENTICATED"

    def resolver(self, method: str) -> Resolve | None:
        role = self._roles.get(method)
        if role is None or (role != "admin" and not self.internal_enforced):
            return None
        name = method.rpartition("/")[2]
        c = self.credentials
        if not (c.tokens.get(role) or c.names.get(role)):
            what = "admin RPCs are disabled: start the server with an admin token" if role == "admin" else (
                f"{name} is disabled: no {role} credential (token or certificate name) is configured")
            return self._refusing(name, denied(what))

        def resolve(request: Any, context: grpc.aio.ServicerContext) -> Identity:
            try:
                return self._check(role, name, context)
            except Refused as exc:
                key = f"{name} {exc.code.name}"
                self.refused[key] = self.refused.get(key, 0) + 1
                raise

        return resolve

    def _refusing(self, name: str, refusal: Refused) -> Resolve:
        def resolve(request: Any, context: grpc.aio.ServicerContext) -> Identity:
            key = f"{name} {refusal.code.name}"
            self.refused[key] = self.refused.get(key, 0) + 1
            raise refusal

        return resolve

    def _check(self, role: str, name: str, context: grpc.aio.ServicerContext) -> Identity:
        token = bearer_token(context.invocation_metadata())
        names = certificate_names(context.auth_context()) if self._mtls else []
        found = self.credentials.role(token, names)
        if found == role:
            return Identity(role, role, "token" if token else "mtls")
        if found is None and not token and not names:
            raise unauthenticated(f"{name} needs the {role}'s credentials: 'authorization: Bearer <token>'"
                                  + (" or its client certificate" if self._mtls else ""))
        if found is None:
            raise denied(f"{name}: {'token' if token else 'certificate'} rejected")
        raise denied(f"{name} is for the {role} only; this caller is the {found}")


# -- outgoing calls --------------------------------------------------------------------------------
class _BearerToken:
    def __init__(self, token: str) -> None:
        self._entry = (AUTHORIZATION_KEY, f"Bearer {token}")

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*tuple(details.metadata or ()), self._entry)
        return grpc.aio.ClientCallDetails(details.method, details.timeout, metadata, details.credentials,
                                          details.wait_for_ready)


# two classes: a grpc.aio channel files each interceptor under the first call kind it implements
class UnaryBearerToken(_BearerToken, grpc.aio.UnaryUnaryClientInterceptor):
    """Adds `authorization: Bearer <token>` to every unary call of the channel it is installed on."""

    async def intercept_unary_unary(self, continuation, client_call_details, request):
        return await continuation(self._details(client_call_details), request)


class StreamBearerToken(_BearerToken, grpc.aio.StreamUnaryClientInterceptor):
    """... and to every client-streaming call."""

    async def intercept_stream_unary(self, continuation, client_call_details, request_iterator):
        return await continuation(self._details(client_call_details), request_iterator)


def token_interceptors(token: str | None) -> list[grpc.aio.ClientInterceptor]:
    return [UnaryBearerToken(token), StreamBearerToken(token)] if token else []
