"""OpenTelemetry for the client SDK: a CLIENT span per call, its W3C trace context in the metadata,
so the Selector (and the Executor behind it) continue the application's trace.

Like any instrumented library, the client only uses the OpenTelemetry API and traces when the
application has configured an SDK TracerProvider before creating the client; otherwise (or
without OpenTelemetry installed) the channel gets no interceptor and costs nothing.
"""

from __future__ import annotations

import sys
from typing import Any

import grpc


def _tracer() -> Any | None:
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:  # an application that traces has imported it already; importing costs time
        return None
    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider) or type(provider).__name__ == "NoOpTracerProvider":
        return None
    return provider.get_tracer("modipick.client")


def _method(details: Any) -> str:
    method = details.method
    return (method.decode() if isinstance(method, bytes) else method).lstrip("/")


def _span(tracer: Any, method: str):
    from opentelemetry.trace import SpanKind

    service, _, name = method.partition("/")
    return tracer.start_as_current_span(method, kind=SpanKind.CLIENT, record_exception=False,
                                        set_status_on_exception=False,
                                        attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": name})


def _carrier() -> list[tuple[str, str]]:
    from opentelemetry import propagate

    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return list(carrier.items())


def _finish(span: Any, code: grpc.StatusCode) -> None:
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute("rpc.grpc.status_code", code.value[0])
    if code is not grpc.StatusCode.OK:
        span.set_status(Status(StatusCode.ERROR, code.name))


class _SyncInterceptor(grpc.UnaryUnaryClientInterceptor):
    def __init__(self, tracer: Any) -> None:
        self._tracer = tracer

    def intercept_unary_unary(self, continuation, client_call_details, request):
        with _span(self._tracer, _method(client_call_details)) as span:
            details = _SyncDetails(client_call_details.method, client_call_details.timeout,
                                   [*(client_call_details.metadata or ()), *_carrier()],
                                   client_call_details.credentials, client_call_details.wait_for_ready,
                                   client_call_details.compression)
            outcome = continuation(details, request)
            _finish(span, outcome.code() or grpc.StatusCode.OK)
            return outcome


class _SyncDetails(grpc.ClientCallDetails):
    def __init__(self, method, timeout, metadata, credentials, wait_for_ready, compression) -> None:
        self.method = method
        self.timeout = timeout
        self.metadata = metadata
        self.credentials = credentials
        self.wait_for_ready = wait_for_ready
        self.compression = compression


class _AioInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, tracer: Any) -> None:
        self._tracer = tracer

    async def intercept_unary_unary(self, continuation, client_call_details, request):
        with _span(self._tracer, _method(client_call_details)) as span:
            metadata = grpc.aio.Metadata(*tuple(client_call_details.metadata or ()), *_carrier())
            call = await continuation(client_call_details._replace(metadata=metadata), request)
            _finish(span, await call.code())
            return call


def traced_channel(channel: grpc.Channel) -> grpc.Channel:
    """The blocking channel, intercepted when the application traces."""
    tracer = _tracer()
    return grpc.intercept_channel(channel, _SyncInterceptor(tracer)) if tracer is not None else channel


def aio_interceptors() -> list[grpc.aio.ClientInterceptor] | None:
    """Interceptors for a grpc.aio channel (None when the application does not trace)."""
    tracer = _tracer()
    return [_AioInterceptor(tracer)] if tracer is not None else None
