import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from modipick.runtime.server import ServerOptions, start_server


def test_health_reflection_and_graceful_stop():
    async def scenario():
        running = await start_server([], ["modipick.v1.SelectorService"], ServerOptions(grace_s=1))
        async with grpc.aio.insecure_channel(running.target) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            reply = await health.Check(health_pb2.HealthCheckRequest(service=""))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            refl = reflection_pb2_grpc.ServerReflectionStub(channel)
            names = []
            async for resp in refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])):
                names = [s.name for s in resp.list_services_response.service]
            assert "grpc.health.v1.Health" in names
            await running.set_serving(False)
            reply = await health.Check(health_pb2.HealthCheckRequest(service="modipick.v1.SelectorService"))
            assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
        await running.stop()

    asyncio.run(scenario())


def test_unknown_service_health_is_not_found():
    async def scenario():
        running = await start_server([], ["x.Y"], ServerOptions(grace_s=0.5))
        async with grpc.aio.insecure_channel(running.target) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service="nope"))
            assert err.value.code() == grpc.StatusCode.NOT_FOUND
        await running.stop()

    asyncio.run(scenario())
