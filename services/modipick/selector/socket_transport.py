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
from typing import AsyncIterator, Callable

import structlog

from modipick.runtime.channels import DEFAULT_MAX_MESSAGE_BYTES
from modipick.runtime.frames import FrameError, greet, read_frames, write_frame, write_now
from modipick.selector.execute_transport import ExecuteTransport, StreamExecute, StreamUnsupported
from modipick.v1 import executor_pb2, executor_pb2_grpc

log = structlog.get_logger("modipick.selector.executors")


class SocketConduit:
    """One connection to the Executor's socket; connects in the background as it is created."""

    def __init__(self, path: str, max_message_bytes: int) -> None:
        self._path = path
        self._max_bytes = max_message_bytes
        self._opened = asyncio.ensure_future(self._connect())

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            reader, writer = await asyncio.open_unix_connection(self._path)
        except OSError as exc:
            raise StreamUnsupported(f"cannot connect to {self._path}: {exc.strerror or exc}") from None
        try:
            await greet(reader, writer, first=True)
        except (FrameError, OSError) as exc:
            writer.close()
            raise StreamUnsupported(f"{self._path}: {exc}") from None
        return reader, writer

    async def write(self, message: executor_pb2.ExecuteStreamRequest) -> None:
        _, writer = await self._opened
        write_frame(writer, message)
        await writer.drain()

    def write_now(self, message: executor_pb2.ExecuteStreamRequest) -> bool:
        if not self._opened.done() or self._opened.cancelled() or self._opened.exception() is not None:
            return False
        return write_now(self._opened.result()[1], message)

    async def messages(self) -> AsyncIterator[executor_pb2.ExecuteStreamResponse]:
        reader, _ = await self._opened
        async for message in read_frames(reader, executor_pb2.ExecuteStreamResponse, self._max_bytes):
            yield message

    def close(self) -> None:
        if not self._opened.done():
            self._opened.cancel()
        elif not self._opened.cancelled() and self._opened.exception() is None:
            self._opened.result()[1].close()


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
