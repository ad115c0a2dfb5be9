"""ExecuteStream's messages over a local socket, for a Selector co-located with its Executor.

A gRPC message crossing processes wakes grpc's poller thread and then the asyncio loop on each
side; a plain Unix socket is read by the loop itself. On the benchmark machines a paced round trip
takes ~0.3 ms this way against ~1 ms over grpc.aio (docs/benchmarks.md), and the Selector's
whole hop is one such round trip.

Wire format, both ways: the connection opens with MAGIC (the caller sends it, the Executor answers
with it, so either side talking to something else fails at once with a clear error); then frames,
each a 4-byte big-endian length and a serialized message: `ExecuteStreamRequest` towards the
Executor, `ExecuteStreamResponse` back, exactly as on ExecuteStream.
"""

from __future__ import annotations

import asyncio
import struct
from typing import AsyncIterator, Type, TypeVar

from google.protobuf.message import DecodeError, Message

MAGIC = b"modipick-execute-stream/1\n"
_LENGTH = struct.Struct(">I")
M = TypeVar("M", bound=Message)


class FrameError(Exception):
    """The peer broke the framing (wrong greeting, oversized or undecodable frame)."""


async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, first: bool,
                timeout_s: float = 5.0) -> None:
    """Exchange MAGIC: the caller (`first`) writes it before reading the answer."""
    if first:
        writer.write(MAGIC)
        await writer.drain()
    try:
        heard = await asyncio.wait_for(reader.readexactly(len(MAGIC)), timeout_s)
    except asyncio.IncompleteReadError as exc:
        raise FrameError(f"the peer closed the connection during the greeting (heard {exc.partial!r})") from None
    except asyncio.TimeoutError:
        raise FrameError(f"no greeting within {timeout_s:g} s") from None
    if heard != MAGIC:
        raise FrameError(f"not a modipick execute socket: the peer greeted with {heard!r}")
    if not first:
        writer.write(MAGIC)


def write_frame(writer: asyncio.StreamWriter, message: Message) -> None:
    body = message.SerializeToString()
    writer.write(_LENGTH.pack(len(body)) + body)


async def read_frames(reader: asyncio.StreamReader, kind: Type[M], max_bytes: int) -> AsyncIterator[M]:
    """Messages until the peer closes the connection cleanly between frames."""
    while True:
        try:
            header = await reader.readexactly(_LENGTH.size)
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:
                return
            raise FrameError("the connection ended inside a frame header") from None
        (length,) = _LENGTH.unpack(header)
        if length > max_bytes:
            raise FrameError(f"a frame of {length} bytes is over the {max_bytes}-byte message limit")
        try:
            body = await reader.readexactly(length)
        except asyncio.IncompleteReadError:
            raise FrameError("the connection ended inside a frame") from None
        try:
            message = kind.FromString(body)
        except DecodeError as exc:
            raise FrameError(f"undecodable {kind.DESCRIPTOR.name}: {exc}") from None
        yield message


WRITE_NOW_BYTES = 256 * 1024  # below this much unsent, a frame is handed to the socket at once


def write_now(writer: asyncio.StreamWriter, message: Message) -> bool:
    """Write `message` without waiting, unless the peer is behind on reading (then False: the
    caller queues it for its writer task, which waits for the socket to drain). Saves the hand-over
    to that task, one event-loop pass that costs ~30-70 us on an idle vCPU."""
    transport = writer.transport
    if transport.is_closing() or transport.get_write_buffer_size() > WRITE_NOW_BYTES:
        return False
    write_frame(writer, message)
    return True


class FrameWriter:
    """What a StreamSession writes answers to (the `context.write` of an ExecuteStream call)."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer

    async def write(self, message: Message) -> None:
        write_frame(self._writer, message)
        await self._writer.drain()

    def write_now(self, message: Message) -> bool:
        return write_now(self._writer, message)
