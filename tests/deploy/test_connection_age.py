"""A modipick server with --max-connection-age-s sends GOAWAY after that age: the client's channel
leaves READY by itself, so its next call re-resolves the target and can reach a replica started
since. Without the option a connection stays up (the defect: new backend pods got no calls)."""

from __future__ import annotations

import asyncio

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from modipick.runtime.server import ServerOptions, start_server


async def state_after_a_call(options: ServerOptions, watch_s: float) -> list[grpc.ChannelConnectivity]:
    """Connect, make one call, then record the channel's states for up to `watch_s` seconds."""
    running = await start_server([], [], options)
    try:
        async with grpc.aio.insecure_channel(running.target) as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            states = [channel.get_state()]
            loop = asyncio.get_running_loop()
            deadline = loop.time() + watch_s
            while states[-1] == grpc.ChannelConnectivity.READY and loop.time() < deadline:
                try:
                    await asyncio.wait_for(channel.wait_for_state_change(states[-1]), deadline - loop.time())
                except asyncio.TimeoutError:
                    break
                states.append(channel.get_state())
            return states
    finally:
        await running.stop(0)


def test_a_connection_past_its_age_is_closed_by_the_server() -> None:
    options = ServerOptions(max_connection_age_s=0.3, max_connection_age_grace_s=0.1)
    states = asyncio.run(state_after_a_call(options, watch_s=20.0))
    assert states[0] == grpc.ChannelConnectivity.READY
    assert states[-1] != grpc.ChannelConnectivity.READY, states


def test_without_an_age_the_connection_stays_up() -> None:
    states = asyncio.run(state_after_a_call(ServerOptions(), watch_s=1.5))
    assert states == [grpc.ChannelConnectivity.READY]
