"""OpenTelemetry tracing across Selector -> Executor -> TF Serving, off by default.

`--tracing otlp|console|off` (MODIPICK_TRACING) is the one setting: main() calls
`configure_tracing(args.tracing, service_name=...)` once; the apps then ask for
`server_interceptors()` and `client_interceptors()`, which are empty while tracing is off, so an
untraced service runs exactly the code it runs without this module (gRPC interceptors are not free).

Context travels as W3C `traceparent` (and `tracestate`/`baggage`, per the configured propagators)
in gRPC metadata, written and read by the two small interceptors below (grpc.aio, unary calls):

- the server interceptor opens a SERVER span per RPC, child of the caller's context when the
  metadata carries one, and binds `trace_id` into the structlog context so logs and traces join;
- the client interceptor opens a CLIENT span and injects its context, but only inside a traced
  request: background calls (status refreshes, probes, observation reports) start no traces.

OpenTelemetry is imported only when tracing is turned on (`pip install 'modipick[tracing]'`).
The OTLP exporter takes its endpoint and headers from the standard OTEL_EXPORTER_OTLP_* variables,
the sampler from OTEL_TRACES_SAMPLER (default: parent-based, always on).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import inspect
import sys
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import grpc

from modipick.v1.contract import REQUEST_ID_KEY

MODES = ("off", "console", "otlp")
_SKIPPED_PREFIXES = ("/grpc.",)  # health checks and reflection: no spans
# gRPC codes that are the server's failure (OpenTelemetry semantic conventions for gRPC servers).
_SERVER_ERRORS = frozenset({grpc.StatusCode.UNKNOWN, grpc.StatusCode.DEADLINE_EXCEEDED,
                            grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.INTERNAL,
                            grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DATA_LOSS})


class TracingUnavailable(RuntimeError):
    """Tracing was asked for but OpenTelemetry is not installed."""


def _missing(mode: str) -> str | None:
    needed = ["opentelemetry.sdk"]
    if mode == "otlp":
        needed.append("opentelemetry.exporter.otlp.proto.grpc")
    for module in needed:
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            return module
    return None


def tracing_mode(text: str) -> str:
    """argparse type of --tracing: a known mode whose packages are installed."""
    mode = text.strip().lower()
    if mode not in MODES:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(MODES)}, got {text!r}")
    missing = _missing(mode) if mode != "off" else None
    if missing:
        raise argparse.ArgumentTypeError(f"{mode!r} needs {missing}: pip install 'modipick[tracing]'")
    return mode


def add_tracing_option(parser) -> None:
    parser.add_option("--tracing", default="off", type=tracing_mode,
                      help="OpenTelemetry spans: otlp (OTEL_EXPORTER_OTLP_ENDPOINT) | console | off")


@dataclass
class _Tracing:
    provider: Any
    tracer: Any
    owns_provider: bool


_active: _Tracing | None = None


def configure_tracing(mode: str = "off", *, service_name: str = "modipick", exporter: Any = None,
                      provider: Any = None) -> Any:
    """Turn tracing on for this process (mode console or otlp) or off; returns the TracerProvider or None.
    Servers and channels created afterwards pick up the interceptors.

    An `exporter` (e.g. an InMemorySpanExporter) or a `provider` the caller built turns tracing on
    whatever the mode: the exporter gets each span as it ends. The first provider configured also
    becomes OpenTelemetry's global one."""
    global _active
    if mode not in MODES:
        raise ValueError(f"tracing mode must be one of {', '.join(MODES)}, got {mode!r}")
    shutdown_tracing()
    if mode == "off" and exporter is None and provider is None:
        return None
    missing = _missing("console" if exporter is not None or provider is not None else mode)
    if missing:
        raise TracingUnavailable(f"tracing needs {missing}: pip install 'modipick[tracing]'")
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor

    owns = provider is None
    if provider is None:
        provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        if exporter is not None:
            provider.add_span_processor(SimpleSpanProcessor(exporter))
        elif mode == "console":
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        else:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        trace.set_tracer_provider(provider)
    _active = _Tracing(provider, provider.get_tracer("modipick"), owns)
    return provider


def shutdown_tracing() -> None:
    """Flush and turn tracing off (services started afterwards are untraced)."""
    global _active
    active, _active = _active, None
    if active is not None and active.owns_provider:
        active.provider.force_flush()


def tracing_enabled() -> bool:
    return _active is not None


def server_interceptors(*, root_spans: bool = True) -> list[grpc.aio.ServerInterceptor]:
    """With root_spans=False, only calls that arrive inside a trace are traced (the Executor: its
    background callers, Profiler discovery and probes, then start no traces)."""
    return [TracingServerInterceptor(_active.tracer, root_spans=root_spans)] if _active is not None else []


def client_interceptors() -> list[grpc.aio.ClientInterceptor]:
    return [TracingClientInterceptor(_active.tracer)] if _active is not None else []


def annotate(**attributes: Any) -> None:
    """Set attributes on the current span, if one is recording."""
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:  # never imported: no span can be open (and nothing gets imported here)
        return

    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes({k: v for k, v in attributes.items() if v is not None})


def _rpc_attributes(method: str) -> dict[str, str]:
    service, _, name = method.lstrip("/").partition("/")
    return {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}


def _text_metadata(metadata: Any) -> dict[str, str]:
    carrier: dict[str, str] = {}
    for key, value in metadata or ():
        if not key.endswith("-bin"):
            carrier[key] = value.decode() if isinstance(value, bytes) else value
    return carrier


class TracingServerInterceptor(grpc.aio.ServerInterceptor):
    """A SERVER span around each unary RPC, continuing the caller's trace from the metadata."""

    def __init__(self, tracer: Any, *, root_spans: bool = True) -> None:
        self._tracer = tracer
        self._root_spans = root_spans

    async def intercept_service(self, continuation: Callable[..., Awaitable[grpc.RpcMethodHandler]],
                                handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if (handler is None or handler.unary_unary is None or method.startswith(_SKIPPED_PREFIXES)
                or not inspect.iscoroutinefunction(handler.unary_unary)):
            return handler
        carrier = _text_metadata(handler_call_details.invocation_metadata)
        if not self._root_spans and "traceparent" not in carrier:
            return handler
        return grpc.unary_unary_rpc_method_handler(
            self._traced(handler.unary_unary, method, carrier),
            request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer)

    def _traced(self, behavior: Callable[..., Awaitable[Any]], method: str, carrier: dict[str, str]):
        tracer = self._tracer

        async def traced(request: Any, context: grpc.aio.ServicerContext) -> Any:
            from opentelemetry import propagate, trace
            from opentelemetry.trace import SpanKind
            from structlog.contextvars import bound_contextvars

            parent = propagate.extract(carrier)
            attributes = _rpc_attributes(method)
            if REQUEST_ID_KEY in carrier:
                attributes["modipick.request_id"] = carrier[REQUEST_ID_KEY]
            with tracer.start_as_current_span(method.lstrip("/"), context=parent, kind=SpanKind.SERVER,
                                              attributes=attributes, record_exception=False,
                                              set_status_on_exception=False) as span:
                trace_id = trace.format_trace_id(span.get_span_context().trace_id)
                with bound_contextvars(trace_id=trace_id):
                    try:
                        reply = await behavior(request, context)
                    except grpc.aio.AbortError:
                        _finish(span, _code(context) or grpc.StatusCode.UNKNOWN)
                        raise
                    except asyncio.CancelledError:
                        _finish(span, grpc.StatusCode.CANCELLED)
                        raise
                    except Exception as exc:
                        span.record_exception(exc)
                        _finish(span, grpc.StatusCode.UNKNOWN)
                        raise
                    _finish(span, _code(context) or grpc.StatusCode.OK)
                    return reply

        return traced


def _code(context: Any) -> grpc.StatusCode | None:
    try:
        code = context.code()
    except Exception:  # older grpc without ServicerContext.code()
        return None
    if isinstance(code, int):
        return next((c for c in grpc.StatusCode if c.value[0] == code), None)
    return code


def _finish(span: Any, code: grpc.StatusCode) -> None:
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute("rpc.grpc.status_code", code.value[0])
    if code in _SERVER_ERRORS:
        span.set_status(Status(StatusCode.ERROR, code.name))


class TracingClientInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    """A CLIENT span around each unary call made inside a traced request, its context injected."""

    def __init__(self, tracer: Any) -> None:
        self._tracer = tracer

    async def intercept_unary_unary(self, continuation, client_call_details, request):
        from opentelemetry import propagate, trace
        from opentelemetry.trace import SpanKind, Status, StatusCode

        if not trace.get_current_span().get_span_context().is_valid:
            return await continuation(client_call_details, request)
        method = client_call_details.method
        method = method.decode() if isinstance(method, bytes) else method
        with self._tracer.start_as_current_span(method.lstrip("/"), kind=SpanKind.CLIENT,
                                                attributes=_rpc_attributes(method), record_exception=False,
                                                set_status_on_exception=False) as span:
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            metadata = grpc.aio.Metadata(*tuple(client_call_details.metadata or ()), *carrier.items())
            call = await continuation(client_call_details._replace(metadata=metadata), request)
            code = await call.code()
            span.set_attribute("rpc.grpc.status_code", code.value[0])
            if code is not grpc.StatusCode.OK:
                span.set_status(Status(StatusCode.ERROR, code.name))
            return call
