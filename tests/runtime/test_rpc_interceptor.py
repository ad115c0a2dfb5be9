"""RpcInterceptor on a real grpc.aio server: each RPC counted once with its status code and time,
the request id bound for the handler's logs, health checks left alone."""

from __future__ import annotations

import asyncio
import itertools

import grpc
import pytest
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry

from modipick.runtime.metadata import REQUEST_ID_KEY
from modipick.runtime.rpc_interceptor import RpcInterceptor, RpcMetrics, call_request_id
from modipick.runtime.server import ServerOptions, start_server

SERVICE = "test.Probe"


def _samples(registry: CollectorRegistry) -> dict[tuple, float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for metric in registry.collect()
            for s in metric.samples}


def _registration(seen: dict[str, object]):
    async def ok(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        seen["logged"] = structlog.contextvars.get_contextvars().get("request_id")
        seen["call_request_id"] = call_request_id(request, context)
        return request

    async def refuse(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "no")

    async def crash(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        raise RuntimeError("a bug")

    async def not_found(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        context.set_code(grpc.StatusCode.NOT_FOUND)
        return b""

    async def join(requests, context: grpc.aio.ServicerContext) -> bytes:
        return b"".join([part async for part in requests])

    handlers = {name: grpc.unary_unary_rpc_method_handler(behavior) for name, behavior in
                (("Ok", ok), ("Refuse", refuse), ("Crash", crash), ("NotFound", not_found))}
    handlers["Join"] = grpc.stream_unary_rpc_method_handler(join)

    def add(_servicer, server) -> None:
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))

    return add, None


def test_each_rpc_is_counted_with_its_code_and_time_and_its_request_id_bound() -> None:
    registry = CollectorRegistry()
    ticks = itertools.count()
    clock = lambda: next(ticks) * 0.003  # noqa: E731  every RPC reads it twice in a row: 3 ms each
    seen: dict[str, object] = {}

    async def scenario() -> None:
        running = await start_server([_registration(seen)], [SERVICE], ServerOptions(grace_s=0.5),
                                     interceptors=[RpcInterceptor(RpcMetrics(registry), clock=clock)])
        try:
            async with grpc.aio.insecure_channel(running.target) as channel:
                call = lambda name: channel.unary_unary(f"/{SERVICE}/{name}")  # noqa: E731
                assert await call("Ok")(b"x", metadata=((REQUEST_ID_KEY, "r-1"),)) == b"x"
                assert await call("Ok")(b"y") == b"y"
                for name, code in (("Refuse", grpc.StatusCode.INVALID_ARGUMENT),
                                   ("Crash", grpc.StatusCode.UNKNOWN), ("NotFound", grpc.StatusCode.NOT_FOUND)):
                    with pytest.raises(grpc.aio.AioRpcError) as failed:
                        await call(name)(b"")
                    assert failed.value.code() == code
                assert await channel.stream_unary(f"/{SERVICE}/Join")(iter((b"a", b"b"))) == b"ab"
                reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
                assert reply.status == health_pb2.HealthCheckResponse.SERVING
        finally:
            await running.stop()

    asyncio.run(scenario())
    samples = _samples(registry)
    handled = {labels: value for (name, labels), value in samples.items()
               if name == "modipick_grpc_server_handled_total"}
    assert handled == {
        (("code", "OK"), ("method", "Ok"), ("service", SERVICE)): 2,
        (("code", "INVALID_ARGUMENT"), ("method", "Refuse"), ("service", SERVICE)): 1,
        (("code", "UNKNOWN"), ("method", "Crash"), ("service", SERVICE)): 1,
        (("code", "NOT_FOUND"), ("method", "NotFound"), ("service", SERVICE)): 1,
        (("code", "OK"), ("method", "Join"), ("service", SERVICE)): 1,
    }  # and no health check
    ok = (("method", "Ok"), ("service", SERVICE))
    assert samples[("modipick_grpc_server_handling_seconds_count", ok)] == 2
    assert samples[("modipick_grpc_server_handling_seconds_sum", ok)] == pytest.approx(0.006)
    assert samples[("modipick_grpc_server_handling_seconds_bucket", (("le", "0.0025"), *ok))] == 0
    assert samples[("modipick_grpc_server_handling_seconds_bucket", (("le", "0.005"), *ok))] == 2
    # the second call carried no id: it got a new one, the same for the logs and the handler
    assert seen["logged"] == seen["call_request_id"] and len(str(seen["logged"])) == 32


def test_the_request_id_comes_from_the_metadata_and_is_unbound_afterwards() -> None:
    seen: dict[str, object] = {}

    async def scenario() -> None:
        running = await start_server([_registration(seen)], [SERVICE], ServerOptions(grace_s=0.5),
                                     interceptors=[RpcInterceptor(RpcMetrics(CollectorRegistry()))])
        try:
            async with grpc.aio.insecure_channel(running.target) as channel:
                await channel.unary_unary(f"/{SERVICE}/Ok")(b"x", metadata=((REQUEST_ID_KEY, "r-42"),))
        finally:
            await running.stop()
        assert "request_id" not in structlog.contextvars.get_contextvars()

    asyncio.run(scenario())
    assert seen == {"logged": "r-42", "call_request_id": "r-42"}
