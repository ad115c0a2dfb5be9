"""With tracing on, one trace id flows client -> Selector -> Executor -> TF Serving, carried as W3C
traceparent in gRPC metadata; background calls start no traces; with tracing off, nothing is
intercepted at all."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from modipick.client import InvalidRequest, ModiPickClient

# The client SDK names its span after the method; opentelemetry-instrumentation-grpc, on the
# services, after the full gRPC path.
INFER_CALL = "modipick.v1.SelectorService/Infer"
INFER = "/modipick.v1.SelectorService/Infer"
EXECUTE = "/modipick.v1.ExecutorService/Execute"
PREDICT = "/tensorflow.serving.PredictionService/Predict"


def finished(observed_suite, trace_id: int, expected: int, timeout_s: float = 5.0) -> list:
    """The trace's spans once `expected` of them ended (server spans end just after the reply)."""
    deadline = time.monotonic() + timeout_s
    while True:
        spans = [s for s in observed_suite.spans.get_finished_spans() if s.context.trace_id == trace_id]
        if len(spans) >= expected or time.monotonic() > deadline:
            return spans
        time.sleep(0.02)


def chain(spans: list) -> list[tuple[str, SpanKind]]:
    """(name, kind) from the root down, following parent ids; asserts the spans form one path."""
    by_parent = {s.parent.span_id if s.parent else None: s for s in spans}
    assert len(by_parent) == len(spans), [(s.name, s.parent) for s in spans]
    path, parent = [], None
    while parent in by_parent or (parent is None and None in by_parent):
        span = by_parent[parent]
        path.append((span.name, span.kind))
        parent = span.context.span_id
    assert len(path) == len(spans)
    return path


def test_one_trace_from_the_client_through_the_executor_to_tf_serving(observed_suite, digits) -> None:
    images, _ = digits
    observed_suite.spans.clear()
    with ModiPickClient(observed_suite.selector.target) as client:
        client.wait_ready()
        result = client.infer(images[3], 5000.0)
    client_spans = [s for s in observed_suite.spans.get_finished_spans()
                    if s.kind is SpanKind.CLIENT and s.name == INFER_CALL]
    assert len(client_spans) == 1  # the SDK's own span: the root, as the application has none open
    trace_id = client_spans[0].context.trace_id
    spans = finished(observed_suite, trace_id, 5)
    assert chain(spans) == [(INFER_CALL, SpanKind.CLIENT), (INFER, SpanKind.SERVER), (EXECUTE, SpanKind.CLIENT),
                            (EXECUTE, SpanKind.SERVER), (PREDICT, SpanKind.CLIENT)]
    selector_span = next(s for s in spans if s.name == INFER and s.kind is SpanKind.SERVER)
    executor_span = next(s for s in spans if s.name == EXECUTE and s.kind is SpanKind.SERVER)
    # the same request on both sides, and the decision recorded on the Selector's span
    assert selector_span.attributes["modipick.request_id"] == result.request_id
    assert executor_span.attributes["modipick.request_id"] == result.request_id
    assert selector_span.attributes["modipick.model"] == f"{result.model}:{result.version}"
    assert selector_span.attributes["modipick.reason"] == result.reason
    assert selector_span.attributes["rpc.grpc.status_code"] == grpc.StatusCode.OK.value[0]
    assert all(s.status.status_code is not StatusCode.ERROR for s in spans)
    # a trace covers the request: the Executor's span lies inside the Selector's
    assert selector_span.start_time <= executor_span.start_time <= executor_span.end_time <= selector_span.end_time


def test_an_application_span_is_the_parent_of_the_whole_request(observed_suite, digits) -> None:
    images, _ = digits
    tracer = trace.get_tracer("observability-test")
    with ModiPickClient(observed_suite.selector.target) as client:
        client.wait_ready()
        with tracer.start_as_current_span("checkout") as root:
            client.infer(images[4], 5000.0)
    spans = finished(observed_suite, root.get_span_context().trace_id, 6)
    assert [name for name, _ in chain(spans)] == ["checkout", INFER_CALL, INFER, EXECUTE, EXECUTE, PREDICT]


def test_the_asyncio_client_carries_the_trace_too(observed_suite, digits) -> None:
    from modipick.client import AsyncModiPickClient

    images, _ = digits
    tracer = trace.get_tracer("observability-test")

    async def request():
        async with AsyncModiPickClient(observed_suite.selector.target) as client:
            await client.wait_ready()
            with tracer.start_as_current_span("async-app") as root:
                await client.infer(images[5], 5000.0)
            return root

    root = asyncio.run(request())
    spans = finished(observed_suite, root.get_span_context().trace_id, 6)
    assert chain(spans) == [("async-app", SpanKind.INTERNAL), (INFER_CALL, SpanKind.CLIENT), (INFER, SpanKind.SERVER),
                            (EXECUTE, SpanKind.CLIENT), (EXECUTE, SpanKind.SERVER), (PREDICT, SpanKind.CLIENT)]


def test_a_refused_request_is_traced_with_its_status(observed_suite, digits) -> None:
    images, _ = digits
    observed_suite.spans.clear()
    with ModiPickClient(observed_suite.selector.target) as client:
        with pytest.raises(InvalidRequest):
            client.infer(images[0], 5000.0, policy="no-such-policy")
    client_span = next(s for s in observed_suite.spans.get_finished_spans() if s.kind is SpanKind.CLIENT)
    spans = finished(observed_suite, client_span.context.trace_id, 2)
    assert chain(spans) == [(INFER_CALL, SpanKind.CLIENT), (INFER, SpanKind.SERVER)]  # never reached the Executor
    server = next(s for s in spans if s.kind is SpanKind.SERVER)
    assert server.attributes["rpc.grpc.status_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert server.status.status_code is StatusCode.UNSET  # the caller's mistake, not a server error
    assert client_span.status.status_code is StatusCode.ERROR


def test_background_calls_and_health_checks_start_no_traces(observed_suite) -> None:
    """Status refreshes to TF Serving, the Profiler's discovery, observation reports and health
    checks are not traced (the Executor continues traces but starts none)."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    observed_suite.spans.clear()
    with grpc.insecure_channel(observed_suite.executor.target) as channel:
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    observed_suite.loop.run(observed_suite.executor.backend.refresh())  # GetModelStatus to TF Serving
    time.sleep(0.5)  # a discovery round of the Profiler (ListModels) and a reporter flush
    assert [s.name for s in observed_suite.spans.get_finished_spans()] == []
