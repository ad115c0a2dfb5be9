"""FrameConnection on a real Unix socket: the greeting, frames split anywhere or packed together,
messages held until someone listens, and every way the framing breaks, named."""

from __future__ import annotations

import asyncio
import functools
import struct

import pytest

from modipick.runtime.frames import MAGIC, FrameConnection, FrameError
from modipick.v1 import executor_pb2


def run(test):
    """A coroutine test run on a fresh loop (its fixtures pass through)."""
    @functools.wraps(test)
    def sync(*args, **kwargs):
        return asyncio.run(test(*args, **kwargs))

    return sync


def _frame(message) -> bytes:
    body = message.SerializeToString()
    return struct.pack(">I", len(body)) + body


def _call(call_id: int) -> executor_pb2.ExecuteStreamRequest:
    return executor_pb2.ExecuteStreamRequest(calls=[executor_pb2.ExecuteCall(call_id=call_id, timeout_ms=5.0)])


async def _served(tmp_path, max_bytes: int = 1 << 20):
    """An Executor-side FrameConnection behind a socket, and a raw client connected to it."""
    loop = asyncio.get_running_loop()
    accepted: asyncio.Future[FrameConnection] = loop.create_future()

    def factory() -> FrameConnection:
        connection = FrameConnection(executor_pb2.ExecuteStreamRequest, max_bytes, first=False)
        accepted.set_result(connection)
        return connection

    path = str(tmp_path / "frames.sock")
    server = await loop.create_unix_server(factory, path)
    reader, writer = await asyncio.open_unix_connection(path)
    return server, await accepted, reader, writer


@run
async def test_frames_split_anywhere_or_packed_arrive_whole_and_in_order(tmp_path) -> None:
    server, connection, reader, writer = await _served(tmp_path)
    got: list[int] = []
    listening = asyncio.ensure_future(connection.listen(lambda m: got.append(m.calls[0].call_id)))
    data = MAGIC + b"".join(_frame(_call(i)) for i in range(1, 6))
    for i in range(0, len(data), 3):  # three bytes at a time: greeting and lengths split too
        writer.write(data[i:i + 3])
        await writer.drain()
        await asyncio.sleep(0)
    assert await reader.readexactly(len(MAGIC)) == MAGIC  # the Executor answers the greeting
    writer.write(_frame(_call(6)) + _frame(_call(7)))  # two in one write
    await writer.drain()
    writer.close()
    await asyncio.wait_for(listening, 5)  # a clean close between frames ends listening quietly
    assert got == [1, 2, 3, 4, 5, 6, 7]
    server.close()


@run
async def test_messages_before_anyone_listens_are_kept(tmp_path) -> None:
    server, connection, _, writer = await _served(tmp_path)
    writer.write(MAGIC + _frame(_call(41)) + _frame(_call(42)))
    await connection.greeted()
    await asyncio.sleep(0.05)
    got: list[int] = []
    listening = asyncio.ensure_future(connection.listen(lambda m: got.append(m.calls[0].call_id)))
    await asyncio.sleep(0.05)
    assert got == [41, 42]
    writer.close()
    await asyncio.wait_for(listening, 5)
    server.close()


@pytest.mark.parametrize("tail,message", [
    (struct.pack(">I", 1 << 30), "a frame of 1073741824 bytes is over the 1048576-byte message limit"),
    (struct.pack(">I", 3) + b"\xff\xff\xff", "undecodable ExecuteStreamRequest"),
    (struct.pack(">I", 100) + b"\x08", "the connection ended inside a frame"),
])
@run
async def test_broken_framing_ends_listening_with_the_reason(tmp_path, tail: bytes, message: str) -> None:
    server, connection, _, writer = await _served(tmp_path)
    listening = asyncio.ensure_future(connection.listen(lambda m: None))
    writer.write(MAGIC + _frame(_call(1)) + tail)
    await writer.drain()
    writer.close()
    with pytest.raises(FrameError, match=message):
        await asyncio.wait_for(listening, 5)
    server.close()


@run
async def test_a_listener_that_fails_ends_the_connection_with_its_error(tmp_path) -> None:
    server, connection, reader, writer = await _served(tmp_path)

    def refuse(message) -> None:
        raise RuntimeError(f"cannot take call {message.calls[0].call_id}")

    listening = asyncio.ensure_future(connection.listen(refuse))
    writer.write(MAGIC + _frame(_call(9)))
    with pytest.raises(RuntimeError, match="cannot take call 9"):
        await asyncio.wait_for(listening, 5)
    await reader.readexactly(len(MAGIC))
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed on the peer
    server.close()


@pytest.mark.parametrize("sent,heard", [(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "b'PRI * HTTP/2.0"),
                                        (MAGIC[:10], "during the greeting")])
@run
async def test_a_wrong_or_cut_greeting_is_refused_by_what_was_heard(tmp_path, sent: bytes, heard: str) -> None:
    server, connection, _, writer = await _served(tmp_path)
    writer.write(sent)
    await writer.drain()
    if len(sent) < len(MAGIC) and MAGIC.startswith(sent):
        writer.close()
    with pytest.raises(FrameError, match=heard.replace("*", r"\*")):
        await connection.greeted()
    server.close()


@run
async def test_no_greeting_times_out(tmp_path) -> None:
    server, connection, _, writer = await _served(tmp_path)
    with pytest.raises(FrameError, match="no greeting within 0.1 s"):
        await connection.greeted(timeout_s=0.1)
    writer.close()
    server.close()
