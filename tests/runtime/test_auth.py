import asyncio

import grpc
import pytest

from modipick.runtime.auth import TokenAuthInterceptor, bearer
from modipick.runtime.server import ServerOptions, start_server
from modipick.v1 import common_pb2, profiler_pb2, profiler_pb2_grpc

REGISTER = "/modipick.v1.ProfilerService/RegisterModel"


class Profiler(profiler_pb2_grpc.ProfilerServiceServicer):
    async def RegisterModel(self, request, context):
        return profiler_pb2.RegisterModelResponse()

    async def ListProfiles(self, request, context):
        return profiler_pb2.ListProfilesResponse()


def run(token, metadata, method="register"):
    async def scenario():
        running = await start_server(
            [(profiler_pb2_grpc.add_ProfilerServiceServicer_to_server, Profiler())],
            ["modipick.v1.ProfilerService"], ServerOptions(grace_s=0.5),
            interceptors=[TokenAuthInterceptor(token, {REGISTER})])
        try:
            async with grpc.aio.insecure_channel(running.target) as channel:
                stub = profiler_pb2_grpc.ProfilerServiceStub(channel)
                if method == "register":
                    req = profiler_pb2.RegisterModelRequest(model=common_pb2.ModelRef(name="m"))
                    await stub.RegisterModel(req, metadata=metadata, timeout=5)
                else:
                    await stub.ListProfiles(profiler_pb2.ListProfilesRequest(), metadata=metadata, timeout=5)
        finally:
            await running.stop()

    asyncio.run(scenario())


def test_admin_rpc_with_the_right_token_passes():
    run("s3cret", bearer("s3cret"))


@pytest.mark.parametrize("token,metadata,code", [
    ("s3cret", (), grpc.StatusCode.UNAUTHENTICATED),
    ("s3cret", bearer("wrong"), grpc.StatusCode.PERMISSION_DENIED),
    (None, bearer("anything"), grpc.StatusCode.PERMISSION_DENIED),
])
def test_admin_rpc_refused(token, metadata, code):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        run(token, metadata)
    assert err.value.code() == code
    assert "s3cret" not in (err.value.details() or "")


def test_data_path_rpc_needs_no_token():
    run("s3cret", (), method="list")
