"""How the Selector sends one execution to one Executor replica.

Two transports with one method, `await transport(request, timeout_s, metadata)`, each failing with
a `grpc.aio.AioRpcError` the way a unary call does, so the pool's retries treat them alike:

- `UnaryExecute`: one `Execute` call per request, the remaining budget as its gRPC deadline;
- `StreamExecute` (the default): messages on one long-lived `ExecuteStream` per replica, each
  carrying its budget as `timeout_ms`. It skips a call set-up per request on both sides, about
  half of what the Selector's hop costs (docs/benchmarks.md). Answers come back in any order,
  matched by call id; the Selector's own timer ends a call that runs out and tells the Executor
  (cancel). When the stream ends, the calls waiting on it fail UNAVAILABLE (the pool retries them
  elsewhere) and the next request opens a new one. An Executor without ExecuteStream
  (UNIMPLEMENTED) gets unary calls from then on, the waiting ones included.
"""

from __future__ import annotations

import asyncio
import itertools
import ipaddress
from typing import Protocol

import grpc
import structlog

from modipick.runtime.batching import take_batch
from modipick.runtime.channels import DEFAULT_MAX_MESSAGE_BYTES
from modipick.v1 import executor_pb2, executor_pb2_grpc

log = structlog.get_logger("modipick.selector.executors")

TRANSPORTS = ("auto", "stream", "unary")
MAX_CALLS_PER_MESSAGE = 256
BATCH_BYTES = 1 << 20  # calls join a message while it stays under this (and half the message limit)
STREAM_MAX_INPUT_BYTES = 64 * 1024  # bigger requests go unary: see StreamExecute.__call__
_CODES = {code.value[0]: code for code in grpc.StatusCode}


def one_address(target: str) -> bool:
    """Whether a target can only ever reach one Executor: an IP literal or a Unix socket. A name may
    resolve to many (a headless Service, a scaled Compose service), and the channel balances unary
    calls over all of them, while one long-lived stream would pin every execution to one."""
    scheme, _, rest = target.partition(":")
    if scheme in ("unix", "unix-abstract", "ipv4", "ipv6"):
        return "," not in rest  # ipv4:a:1,b:2 lists several
    if scheme == "dns":
        return False
    host = target.rsplit(":", 1)[0] if target.count(":") == 1 or target.startswith("[") else target
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def transport_for(setting: str, target: str, *, traced: bool) -> str:
    """`auto`: the stream to one address, unary calls to a name (balanced) or when tracing
    (per-execution spans live on unary calls)."""
    if setting not in TRANSPORTS:
        raise ValueError(f"executor transport must be one of {', '.join(TRANSPORTS)}, got {setting!r}")
    if setting != "auto":
        return setting
    return "stream" if one_address(target) and not traced else "unary"


class ExecuteTransport(Protocol):
    name: str

    async def __call__(self, request: executor_pb2.ExecuteRequest, timeout_s: float,
                       metadata=None) -> executor_pb2.ExecuteResponse: ...

    async def close(self) -> None: ...


class ExecuteFailed(grpc.aio.AioRpcError):
    """An execution's status as a unary call would have raised it."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details)


class UnaryExecute:
    name = "unary"

    def __init__(self, stub: executor_pb2_grpc.ExecutorServiceStub) -> None:
        self._execute = stub.Execute

    async def __call__(self, request: executor_pb2.ExecuteRequest, timeout_s: float,
                       metadata=None) -> executor_pb2.ExecuteResponse:
        return await self._execute(request, timeout=timeout_s, metadata=metadata)

    async def close(self) -> None:
        pass


class _UseUnary(Exception):
    """The Executor has no ExecuteStream: send this call unary."""


class _OpenStream:
    """One ExecuteStream call: a writer task feeding it, a reader task matching answers to calls."""

    def __init__(self, stub: executor_pb2_grpc.ExecutorServiceStub, on_end, batch_bytes: int) -> None:
        self.call = stub.ExecuteStream()
        self.batch_bytes = batch_bytes
        self.waiting: dict[int, asyncio.Future] = {}
        self.outbox: asyncio.Queue[executor_pb2.ExecuteCall] = asyncio.Queue()
        self.ended = False
        self._on_end = on_end
        self._writer = asyncio.ensure_future(self._write())
        self._reader = asyncio.ensure_future(self._read())

    async def _write(self) -> None:
        """Calls queued while the previous message was being written go together (no added wait)."""
        carried = None
        while True:
            first = carried if carried is not None else await self.outbox.get()
            calls, carried = take_batch(first, self.outbox, max_items=MAX_CALLS_PER_MESSAGE,
                                        max_bytes=self.batch_bytes)
            try:
                await self.call.write(executor_pb2.ExecuteStreamRequest(calls=calls))
            except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
                return  # the stream ended: the reader sees why and fails whoever waits

    async def _read(self) -> None:
        code, details = grpc.StatusCode.UNAVAILABLE, "the Executor ended the stream"
        try:
            async for message in self.call:
                for answer in message.answers:
                    future = self.waiting.pop(answer.call_id, None)
                    if future is not None and not future.done():
                        future.set_result(answer)
            status = await self.call.code()
            if status != grpc.StatusCode.OK:
                code, details = status, await self.call.details()
        except grpc.aio.AioRpcError as exc:
            code, details = exc.code(), exc.details() or ""
        except asyncio.CancelledError:
            code, details = grpc.StatusCode.CANCELLED, "the Selector closed the stream"
            raise
        finally:
            self._end(code, details)

    def _end(self, code: grpc.StatusCode, details: str) -> None:
        self.ended = True
        self._writer.cancel()
        self._on_end(self)
        for future in self.waiting.values():  # an exception each: they are raised in different tasks
            if not future.done():
                future.set_exception(_UseUnary() if code == grpc.StatusCode.UNIMPLEMENTED else ExecuteFailed(
                    grpc.StatusCode.UNAVAILABLE, f"executor stream ended: {code.name}: {details}"))
        self.waiting.clear()

    def close(self) -> None:
        self.call.cancel()
        self._reader.cancel()
        self._writer.cancel()


class StreamExecute:
    name = "stream"

    def __init__(self, stub: executor_pb2_grpc.ExecutorServiceStub, *, target: str = "",
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        self._stub = stub
        self._target = target
        self._batch_bytes = min(BATCH_BYTES, max_message_bytes // 2)
        self._stream_max_bytes = min(STREAM_MAX_INPUT_BYTES, self._batch_bytes)
        self._unary = UnaryExecute(stub)
        self._unary_only = False
        self._stream: _OpenStream | None = None
        self._ids = itertools.count(1)

    async def __call__(self, request: executor_pb2.ExecuteRequest, timeout_s: float,
                       metadata=None) -> executor_pb2.ExecuteResponse:
        if self._unary_only or request.ByteSize() > self._stream_max_bytes:
            # A call set-up is what the stream saves, and it only matters for small inputs. A big
            # one (past HTTP/2's 64 KiB initial window) would hold every call behind it on the one
            # stream while an Executor short of CPU reads it slowly (a live test under load showed
            # it); one over the message limit must fail alone rather than end the stream for all.
            return await self._unary(request, timeout_s, metadata)
        if timeout_s <= 0:
            raise ExecuteFailed(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
        stream = self._open()
        call_id = next(self._ids)
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        stream.waiting[call_id] = future
        stream.outbox.put_nowait(executor_pb2.ExecuteCall(call_id=call_id, request=request,
                                                          timeout_ms=timeout_s * 1000.0))
        timer = loop.call_later(timeout_s, self._expire, stream, call_id)
        try:
            answer = await future
        except _UseUnary:
            self._use_unary()
            return await self._unary(request, timeout_s, metadata)  # nothing ran: the stream never opened
        finally:
            timer.cancel()
            if stream.waiting.pop(call_id, None) is not None and not stream.ended:  # given up (cancelled)
                stream.outbox.put_nowait(executor_pb2.ExecuteCall(call_id=call_id, cancel=True))
        if answer.WhichOneof("result") == "response":
            return answer.response
        error = answer.error
        raise ExecuteFailed(_CODES.get(error.code, grpc.StatusCode.UNKNOWN), error.message)

    def _open(self) -> _OpenStream:
        if self._stream is None:
            self._stream = _OpenStream(self._stub, self._forget, self._batch_bytes)
        return self._stream

    def _forget(self, stream: _OpenStream) -> None:
        if self._stream is stream:
            self._stream = None

    def _expire(self, stream: _OpenStream, call_id: int) -> None:
        future = stream.waiting.pop(call_id, None)
        if future is None or future.done():
            return
        future.set_exception(ExecuteFailed(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"))
        if not stream.ended:
            stream.outbox.put_nowait(executor_pb2.ExecuteCall(call_id=call_id, cancel=True))

    def _use_unary(self) -> None:
        if not self._unary_only:
            self._unary_only = True
            log.warning("executor has no ExecuteStream: sending unary Execute calls", target=self._target)

    async def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
