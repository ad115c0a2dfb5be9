"""OpenTelemetry tracing across Selector -> Executor -> TF Serving, off by default.

`--tracing otlp|console|off` (MODIPICK_TRACING) is the one setting: main() calls
`configure_tracing(args.tracing, service_name=...)` once; the apps then ask for
`server_interceptors()` and `client_interceptors()`, which are empty while tracing is off, so an
untraced service runs exactly the code it runs without this module (gRPC interceptors are not free).

Context travels as W3C `traceparent` (and `tracestate`/`baggage`, per the configured propagators)
in gRPC metadata, written and read by opentelemetry-instrumentation-grpc's grpc.aio interceptors
(every RPC kind):

- the server interceptor opens a SERVER span per RPC, child of the caller's context when the
  metadata carries one; modipick.runtime.rpc_interceptor, inside it, binds `trace_id` into the
  structlog context (logs and traces join) and records the request id on the span;
- the client interceptors open a CLIENT span and inject its context, but only inside a traced
  request: background calls (status refreshes, probes, observation reports) start no traces.

OpenTelemetry is imported only when tracing is turned on (`pip install 'modipick[tracing]'`).
The OTLP exporter takes its endpoint and headers from the standard OTEL_EXPORTER_OTLP_* variables,
the sampler from OTEL_TRACES_SAMPLER (default: parent-based, always on).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from dataclasses import dataclass
from typing import Any

import grpc

MODES = ("off", "console", "otlp")
_SKIPPED_PREFIXES = ("/grpc.",)  # health checks and reflection: no spans


class TracingUnavailable(RuntimeError):
    """Tracing was asked for but OpenTelemetry is not installed."""


def _missing(mode: str) -> str | None:
    needed = ["opentelemetry.sdk", "opentelemetry.instrumentation.grpc"]
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
    """OpenTelemetry's grpc.aio server interceptor: a SERVER span per RPC, health checks and
    reflection left out. With root_spans=False, only calls that arrive inside a trace are traced
    (the Executor: its background callers, Profiler discovery and probes, then start no traces)."""
    if _active is None:
        return []
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    def traced(details: grpc.HandlerCallDetails) -> bool:
        if details.method.startswith(_SKIPPED_PREFIXES):
            return False
        return root_spans or any(key == "traceparent" for key, _ in details.invocation_metadata or ())

    return [aio_server_interceptor(tracer_provider=_active.provider, filter_=traced)]


def client_interceptors() -> list[grpc.aio.ClientInterceptor]:
    """OpenTelemetry's grpc.aio client interceptors: a CLIENT span with the context injected, but only
    inside a traced request: background calls (status refreshes, probes, reports) start no traces."""
    if _active is None:
        return []
    from opentelemetry import trace
    from opentelemetry.instrumentation.grpc import aio_client_interceptors

    def in_a_trace(_details: Any) -> bool:
        return trace.get_current_span().get_span_context().is_valid

    return aio_client_interceptors(tracer_provider=_active.provider, filter_=in_a_trace)


def annotate(**attributes: Any) -> None:
    """Set attributes on the current span, if one is recording."""
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:  # never imported: no span can be open (and nothing gets imported here)
        return

    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes({k: v for k, v in attributes.items() if v is not None})
