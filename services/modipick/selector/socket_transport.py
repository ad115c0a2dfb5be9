"""Executions over the co-located Executor's local socket (`--executor-socket PATH`, the
Executor's `--execute-socket`): the stream transport's messages without the gRPC hop
(modipick.runtime.frames says why and how).

The socket carries what fits the stream; inputs too big for it still go as unary gRPC calls, and
the replica's gRPC channel still serves the pool's health polls. When the socket cannot be opened
(the Executor is not up yet, or serves no socket), calls take the gRPC stream instead and the socket
is tried again after `retry_s`; calls in flight when a connection breaks fail UNAVAILABLE, and the
pool retries them, as with the stream.
"""

from __future__ import annotations

import asyncio
import time
from typing import Callable

import structlog

from modipick.runtime.channels import DEFAULT_MAX_MESSAGE_BYTES
from modipick.runtime.frames import FrameConnection, FrameError
from modipick.selector.execute_transport import ExecuteTransport, StreamExecute, StreamUnsupported
from modipick.v1 import executor_pb2, executor_pb2_grpc

log = structlog.get_logger("modipick.selector.executors")


class SocketConduit:
    """One connection to the Executor's socket; connects in the background as it is created."""

    def __init__(self, path: str, max_message_bytes: int) -> None:
        self._path = path
        self._max_bytes = max_message_bytes
        self._opened = asyncio.ensure_future(self._connect())

    async def _connect(self) -> FrameConnection:
        loop = asyncio.get_running_loop()
        try:
            _, connection = await loop.create_unix_connection(
                lambda: FrameConnection(executor_pb2.ExecuteStreamResponse, self._max_bytes, first=True), self._path)
        except OSError as exc:
            raise StreamUnsupported(f"cannot connect to {self._path}: {exc.strerror or exc}") from None
        try:
            await connection.greeted()
        except FrameError as exc:
            connection.close()
            raise StreamUnsupported(f"{self._path}: {exc}") from None
        return connection

    async def write(self, message: executor_pb2.ExecuteStreamRequest) -> None:
        await (await self._opened).write(message)

    def write_now(self, message: executor_pb2.ExecuteStreamRequest) -> bool:
        if not self._opened.done() or self._opened.cancelled() or self._opened.exception() is not None:
            return False
        return self._opened.result().write_now(message)

    async def listen(self, on_message: Callable[[executor_pb2.ExecuteStreamResponse], None]) -> None:
        await (await self._opened).listen(on_message)

    def close(self) -> None:
        if not self._opened.done():
            self._opened.cancel()
        elif not self._opened.cancelled() and self._opened.exception() is None:
            self._opened.result().close()


class SocketExecute(StreamExecute):
    name = "socket"

    def __init__(self, stub: executor_pb2_grpc.ExecutorServiceStub, path: str, *, target: str = "",
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, retry_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(stub, target=target, max_message_bytes=max_message_bytes)
        self.path = path
        self._via_grpc = StreamExecute(stub, target=target, max_message_bytes=max_message_bytes)
        self._retry_s = retry_s
        self._clock = clock
        self._down_until = 0.0

    def _conduit(self) -> SocketConduit:
        return SocketConduit(self.path, self._max_message_bytes)

    def _detour(self) -> ExecuteTransport | None:
        return self._via_grpc if self._clock() < self._down_until else None

    def _fall_back(self, reason: str) -> ExecuteTransport:
        (log.debug if self._down_until else log.warning)(
            "executor socket unavailable: using the gRPC stream for now", path=self.path,
            target=self._target, reason=reason, retry_in_s=self._retry_s)
        self._down_until = self._clock() + self._retry_s
        return self._via_grpc

    async def close(self) -> None:
        await super().close()
        await self._via_grpc.close()
