"""What every server does around each RPC, in one grpc.aio server interceptor: bind the request id
(and the trace id, when a span is open) into structlog's context, and count the call with its gRPC
status code and time:

    modipick_grpc_server_handled_total{service,method,code}   RPCs finished (unary and client-streaming), by code
    modipick_grpc_server_handling_seconds{service,method}     time from the handler's start to its end

Health checks and reflection (`/grpc.*`) are left alone. Counts are plain dicts read at scrape
time, as the Selector's own (a prometheus_client child's lock costs more than the whole count).

When it is a server's last interceptor, `start_server` builds its wrapper into each handler as the
services register (`wrap_handler`) instead of installing it: grpc.aio then runs no interceptor
chain per call (as an interceptor it cost ~28,000 instructions a call under callgrind, its own work
included; docs/benchmarks.md). With an interceptor after it (client authentication) it stays an interceptor, so what
that one refuses is still counted.
"""

from __future__ import annotations

import asyncio
import sys
import time
from contextvars import ContextVar, Token
from typing import Any, Awaitable, Callable, Iterator

import grpc
import structlog
from prometheus_client import CollectorRegistry
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

from modipick.runtime.metadata import request_id_from
from modipick.runtime.metrics import CountingHistogram, counter_family
from modipick.runtime.tracing import tracing_enabled

# Seconds, from a sub-millisecond health-like call to a multi-second SLA.
SECONDS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_SKIPPED_PREFIXES = ("/grpc.",)
_CODE_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}

_request_id: ContextVar[str] = ContextVar("modipick_request_id", default="")
_log_request_id: ContextVar[Any] | None = None  # structlog's variable for the logs' request_id, once known


def _bind_log_request_id(rid: str) -> Token:
    """structlog.contextvars.bind_contextvars(request_id=rid)'s token (reset it with `token.var.reset`).
    After the first call the variable is set directly: structlog keeps one variable per key, and a
    call then skips its keyword dicts and name formatting."""
    global _log_request_id
    if _log_request_id is None:
        token = structlog.contextvars.bind_contextvars(request_id=rid)["request_id"]
        _log_request_id = token.var
        return token
    return _log_request_id.set(rid)


def call_request_id(request: Any, context: Any) -> str:
    """The request id of `request`: its own, else the RPC's (the one the interceptor bound, from the
    metadata or new), else the metadata's or a new one. A handler called with a message other than
    the RPC's (the OIP front door's Infer) logs under that message's id from then on."""
    bound = _request_id.get()
    rid = getattr(request, "request_id", "") or bound or request_id_from(context.invocation_metadata())
    if bound and rid != bound:  # the interceptor's reset restores what it bound
        structlog.contextvars.bind_contextvars(request_id=rid)
    return rid


class RpcMetrics(Collector):
    """Per-RPC counts by status code and handling-time histograms, registered on `registry`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.handled: dict[tuple[str, str, str], int] = {}  # (service, method, code) -> count
        self.seconds: dict[tuple[str, str], CountingHistogram] = {}
        registry.register(self)

    def observe(self, service: str, method: str, code: str, seconds: float) -> None:
        self.method(service, method)(code, seconds)

    def method(self, service: str, method: str) -> Callable[[str, float], None]:
        """`observe` of one method, for a wrapper to keep: its label tuples are built once, not per call."""
        handled, seconds = self.handled, self.seconds
        keys: dict[str, tuple[str, str, str]] = {}  # code -> its key in `handled`
        name = (service, method)

        def observe(code: str, took_s: float) -> None:
            key = keys.get(code)
            if key is None:
                key = keys[code] = (service, method, code)
            handled[key] = handled.get(key, 0) + 1
            histogram = seconds.get(name)
            if histogram is None:  # the method's first call: scrapes list it from now on
                histogram = seconds[name] = CountingHistogram(SECONDS_BUCKETS)
            histogram.observe(took_s)

        return observe

    def collect(self) -> Iterator[Any]:
        yield counter_family("modipick_grpc_server_handled", "RPCs finished by the server, by gRPC status code",
                             ["service", "method", "code"], self.handled)
        family = HistogramMetricFamily("modipick_grpc_server_handling_seconds",
                                       "Time the server spent on each RPC (s)", labels=["service", "method"])
        for (service, method), histogram in list(self.seconds.items()):
            family.add_metric([service, method], histogram.cumulative(), histogram.sum)
        yield family

    def describe(self) -> list:
        return []


def _code_name(context: Any, default: str) -> str:
    try:
        code = context.code()
    except Exception:  # a grpc without ServicerContext.code()
        return default
    if code is None:
        return default
    if isinstance(code, int):
        return _CODE_NAMES.get(code, default)
    return code.name


def _trace_id() -> str | None:
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return None
    span = trace.get_current_span()
    context = span.get_span_context()
    if not context.is_valid:
        return None
    if span.is_recording():
        span.set_attribute("modipick.request_id", _request_id.get())
    return trace.format_trace_id(context.trace_id)


class RpcInterceptor(grpc.aio.ServerInterceptor):
    """Binds request_id (and trace_id) for the handler's logs and counts each RPC answered with one
    message (unary, client streaming) in `metrics`."""

    def __init__(self, metrics: RpcMetrics, *, clock: Callable[[], float] = time.perf_counter,
                 traced: bool | None = None) -> None:
        self._metrics = metrics
        self._clock = clock
        # whether this server's calls may run in a span: tracing on when the server is built (its
        # tracing interceptors stay, even if tracing is turned off later); without, no span is looked
        # up per call (the redis client imports OpenTelemetry anyway)
        self._traced = tracing_enabled() if traced is None else traced
        self._wrapped: dict[str, tuple[Any, grpc.RpcMethodHandler]] = {}  # method -> (behavior, its wrapper)

    async def intercept_service(self, continuation: Callable[..., Awaitable[grpc.RpcMethodHandler]],
                                handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        return self.wrap_handler(handler_call_details.method, await continuation(handler_call_details))

    def wrap_handler(self, method: str, handler: grpc.RpcMethodHandler | None) -> grpc.RpcMethodHandler | None:
        """`handler` (of the full method name `method`) with this interceptor's work around its
        behavior; built once per method and behavior."""
        if handler is None or method.startswith(_SKIPPED_PREFIXES):
            return handler
        # calls answered with one message: unary, or a client stream (the Profiler's observations)
        behavior = handler.unary_unary or handler.stream_unary
        if behavior is None:
            return handler
        known = self._wrapped.get(method)
        if known is not None and known[0] is behavior:  # the servers' handlers are made once
            return known[1]
        service, _, name = method.lstrip("/").partition("/")
        make = (grpc.unary_unary_rpc_method_handler if handler.unary_unary is not None
                else grpc.stream_unary_rpc_method_handler)
        wrapped = make(self._wrap(behavior, service, name), request_deserializer=handler.request_deserializer,
                       response_serializer=handler.response_serializer)
        self._wrapped[method] = (behavior, wrapped)
        return wrapped

    def _wrap(self, behavior: Callable[..., Awaitable[Any]], service: str, method: str):
        observe, clock = self._metrics.method(service, method), self._clock

        async def handled(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = clock()
            rid = getattr(request, "request_id", "") or request_id_from(context.invocation_metadata())
            rid_token = _request_id.set(rid)
            trace_id = _trace_id() if self._traced else None
            logged = _bind_log_request_id(rid)
            traced = structlog.contextvars.bind_contextvars(trace_id=trace_id) if trace_id else None
            code = "UNKNOWN"
            try:
                reply = await behavior(request, context)
                code = _code_name(context, "OK")
                return reply
            except grpc.aio.AbortError:
                code = _code_name(context, "UNKNOWN")
                raise
            except asyncio.CancelledError:
                code = "CANCELLED"
                raise
            finally:
                if traced is not None:
                    structlog.contextvars.reset_contextvars(**traced)
                logged.var.reset(logged)
                _request_id.reset(rid_token)
                observe(code, clock() - started)

        return handled
