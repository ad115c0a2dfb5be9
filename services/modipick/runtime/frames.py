"""ExecuteStream's messages over a local socket, for a Selector co-located with its Executor.

A gRPC message crossing processes wakes grpc's poller thread and then the asyncio loop on each
side; a plain Unix socket is read by the loop itself. On the benchmark machines a paced round trip
takes ~0.3 ms this way against ~1 ms over grpc.aio (docs/benchmarks.md), and the Selector's
whole hop is one such round trip.

Each end is a `FrameConnection` (an asyncio Protocol): a message goes to its listener from
`data_received`, as soon as its last byte is in, with no reader task to wake in between (one
event-loop pass less per message on each side, ~30-60 us on an idle vCPU).

Wire format, both ways: the connection opens with MAGIC (the caller sends it, the Executor answers
with it, so either side talking to something else fails at once with a clear error); then frames,
each a 4-byte big-endian length and a serialized message: `ExecuteStreamRequest` towards the
Executor, `ExecuteStreamResponse` back, exactly as on ExecuteStream.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Callable, Generic, Type, TypeVar

from google.protobuf.message import DecodeError, Message

MAGIC = b"modipick-execute-stream/1\n"
_LENGTH = struct.Struct(">I")
WRITE_NOW_BYTES = 256 * 1024  # below this much unsent, a frame is handed to the socket at once
M = TypeVar("M", bound=Message)


class FrameError(Exception):
    """The peer broke the framing (wrong greeting, oversized or undecodable frame)."""


class FrameConnection(asyncio.Protocol, Generic[M]):
    """One framed connection carrying `kind` messages in. The caller (`first`) greets first; the
    other end answers the greeting once it has heard it. `listen(on_message)` delivers messages
    until the connection ends; `write` / `write_now` send the other way."""

    def __init__(self, kind: Type[M], max_bytes: int, *, first: bool) -> None:
        self._kind = kind
        self._max_bytes = max_bytes
        self._first = first
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._listener: Callable[[M], None] | None = None
        loop = asyncio.get_running_loop()
        self._greeted: asyncio.Future[None] = loop.create_future()
        self._ended: asyncio.Future[None] = loop.create_future()
        self._writable: asyncio.Future[None] | None = None  # set while the transport asks us to pause

    # -- asyncio.Protocol ---------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        if self._first:
            self._transport.write(MAGIC)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if not self._greeted.done():
            if len(self._buffer) < len(MAGIC) and MAGIC.startswith(bytes(self._buffer)):
                return
            heard = bytes(self._buffer[:len(MAGIC)])
            if heard != MAGIC:
                self._fail(FrameError(f"not a modipick execute socket: the peer greeted with {heard!r}"))
                return
            del self._buffer[:len(MAGIC)]
            if not self._first:
                self._transport.write(MAGIC)
            self._greeted.set_result(None)
        if self._listener is not None:
            self._deliver()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._greeted.done():
            _reject(self._greeted, FrameError(
                f"the peer closed the connection during the greeting (heard {bytes(self._buffer)!r})"))
        if self._buffer and (exc is None or isinstance(exc, ConnectionError)):
            exc = FrameError("the connection ended inside a frame")
        self._end(exc)
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)  # the next write fails on the closed transport

    def pause_writing(self) -> None:
        if self._writable is None or self._writable.done():
            self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    # -- use ------------------------------------------------------------------------------------------
    async def greeted(self, timeout_s: float = 5.0) -> None:
        """Once the greetings are exchanged; FrameError if the peer says something else or nothing."""
        try:
            await asyncio.wait_for(asyncio.shield(self._greeted), timeout_s)
        except asyncio.TimeoutError:
            self.close()
            raise FrameError(f"no greeting within {timeout_s:g} s") from None

    async def listen(self, on_message: Callable[[M], None]) -> None:
        """Hand every message to `on_message` (from the event loop's reading callback) until the peer
        closes cleanly between frames; raises FrameError or the connection's error otherwise."""
        self._listener = on_message
        try:
            self._deliver()
            await asyncio.shield(self._ended)
        finally:
            self._listener = None

    async def write(self, message: Message) -> None:
        """Write `message`, then wait while the peer is behind on reading."""
        if self._transport is None or self._transport.is_closing():
            raise ConnectionResetError("the execute socket is closed")
        self._send(message)
        if self._writable is not None and not self._writable.done():
            await self._writable

    def write_now(self, message: Message) -> bool:
        """Write `message` without waiting, unless the peer is behind on reading (then False: the
        caller queues it for its writer task, which waits for the socket to drain). Saves the hand-over
        to that task, one event-loop pass that costs ~30-70 us on an idle vCPU."""
        transport = self._transport
        if transport is None or transport.is_closing() or transport.get_write_buffer_size() > WRITE_NOW_BYTES:
            return False
        self._send(message)
        return True

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    # -- inside ---------------------------------------------------------------------------------------
    def _send(self, message: Message) -> None:
        body = message.SerializeToString()
        self._transport.write(_LENGTH.pack(len(body)) + body)

    def _deliver(self) -> None:
        if not self._greeted.done():
            return  # the buffer still holds (part of) the greeting
        buffer = self._buffer
        while self._listener is not None and len(buffer) >= _LENGTH.size and not self._ended.done():
            (length,) = _LENGTH.unpack_from(buffer)
            if length > self._max_bytes:
                self._fail(FrameError(f"a frame of {length} bytes is over the {self._max_bytes}-byte message limit"))
                return
            end = _LENGTH.size + length
            if len(buffer) < end:
                return
            try:
                message = self._kind.FromString(bytes(buffer[_LENGTH.size:end]))
            except DecodeError as exc:
                self._fail(FrameError(f"undecodable {self._kind.DESCRIPTOR.name}: {exc}"))
                return
            del buffer[:end]
            try:
                self._listener(message)
            except Exception as exc:  # the listener's own failure ends the connection, named
                self._fail(exc)
                return

    def _fail(self, error: Exception) -> None:
        if not self._greeted.done():
            _reject(self._greeted, error)
        self._end(error)
        self.close()

    def _end(self, error: Exception | None) -> None:
        if self._ended.done():
            return
        if error is None:
            self._ended.set_result(None)
        else:
            _reject(self._ended, error)


def _reject(future: asyncio.Future, error: Exception) -> None:
    """Fail `future` with `error`, marked retrieved: whoever would await it may be gone already."""
    future.set_exception(error)
    future.exception()
