"""How an Executor's answer becomes the Selector's: each gRPC status the Executor may end a call with
is one Failure of the pool (where the call is made), and each Failure one status of the Selector
(where it answers). The Executor here is a grpc.aio server on loopback that ends every Execute with
the status it is told to (a double of the real service: no model is needed to refuse)."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from modipick.core import Candidate
from modipick.selector.execution import ExecutionFailed, Failure
from modipick.selector.executors import ExecutorPool, PoolSettings
from modipick.selector.service import _STATUS
from modipick.v1 import common_pb2, executor_pb2_grpc

MODEL = Candidate("cnn-small", 1, 96.0, 1.0, 0.1)


class RefusingExecutor(executor_pb2_grpc.ExecutorServiceServicer):
    def __init__(self) -> None:
        self.code = grpc.StatusCode.INTERNAL
        self.calls = 0

    async def Execute(self, request, context):
        self.calls += 1
        await context.abort(self.code, f"refused with {self.code.name}")


async def failure_for(code: grpc.StatusCode) -> tuple[Failure, int]:
    executor = RefusingExecutor()
    executor.code = code
    server = grpc.aio.server()
    executor_pb2_grpc.add_ExecutorServiceServicer_to_server(executor, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    pool = ExecutorPool([f"127.0.0.1:{port}"], lambda: [MODEL], settings=PoolSettings(max_attempts=1))
    try:
        await pool.run(MODEL, common_pb2.Input(), 5.0)
    except ExecutionFailed as exc:
        assert code.name in exc.detail and exc.attempts == 1
        return exc.failure, executor.calls
    finally:
        await pool.close()
        await server.stop(0)
    raise AssertionError(f"{code.name} did not fail the run")


@pytest.mark.parametrize("code,failure,answer", [
    (grpc.StatusCode.INVALID_ARGUMENT, Failure.INVALID_INPUT, grpc.StatusCode.INVALID_ARGUMENT),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, Failure.OVERLOADED, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (grpc.StatusCode.UNAVAILABLE, Failure.UNAVAILABLE, grpc.StatusCode.UNAVAILABLE),
    (grpc.StatusCode.NOT_FOUND, Failure.MODEL_MISSING, grpc.StatusCode.UNAVAILABLE),
    (grpc.StatusCode.FAILED_PRECONDITION, Failure.MODEL_MISSING, grpc.StatusCode.UNAVAILABLE),
    (grpc.StatusCode.INTERNAL, Failure.MODEL_FAILED, grpc.StatusCode.INTERNAL),
    (grpc.StatusCode.UNKNOWN, Failure.MODEL_FAILED, grpc.StatusCode.INTERNAL),
    (grpc.StatusCode.PERMISSION_DENIED, Failure.REFUSED, grpc.StatusCode.INTERNAL),
    (grpc.StatusCode.UNAUTHENTICATED, Failure.REFUSED, grpc.StatusCode.INTERNAL),
])
def test_an_executor_status_is_one_failure_and_one_selector_status(code, failure, answer):
    got, calls = asyncio.run(failure_for(code))
    assert (got, calls) == (failure, 1)
    assert _STATUS[got] == answer


def test_every_failure_has_a_selector_status():
    assert set(_STATUS) == set(Failure)
