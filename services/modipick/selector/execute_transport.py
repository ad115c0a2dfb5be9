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
from typing import Callable, Protocol

import grpc
import structlog

from modipick.runtime.batching import take_batch
from modipick.runtime.channels import DEFAULT_MAX_MESSAGE_BYTES
from modipick.runtime.frames import FrameError
from modipick.runtime.metadata import STREAM_SERVED
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


def transport_for(setting: str, target: str, *, traced: bool, socket: bool = False) -> str:
    """`auto`: the stream to one address, unary calls to a name (balanced) or when tracing
    (per-execution spans live on unary calls). With a local socket (`socket`): the socket, unless
    unary calls are asked for or tracing is on."""
    if setting not in TRANSPORTS:
        raise ValueError(f"executor transport must be one of {', '.join(TRANSPORTS)}, got {setting!r}")
    if socket and setting != "unary" and not traced:
        return "socket"
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


class StreamUnsupported(Exception):
    """The stream could not be opened at all (an Executor without ExecuteStream, no socket): nothing
    was sent, so the call goes another way."""


class GrpcConduit:
    """The messages of one ExecuteStream call."""

    def __init__(self, stub: executor_pb2_grpc.ExecutorServiceStub) -> None:
        self.call = stub.ExecuteStream()
        self._greeted = False

    async def write(self, message: executor_pb2.ExecuteStreamRequest) -> None:
        if not self._greeted:
            # The Executor's initial metadata says the stream is served. An Executor without
            # ExecuteStream refuses it UNIMPLEMENTED; a message written while that refusal arrives
            # can fail the call INTERNAL instead (3-5% of fresh connections here), which would hide
            # the refusal from `listen`. The refusal's own (empty) initial metadata can be seen
            # before its status, so the greeting is told by its key, not by the call being done.
            greeting = await self.call.initial_metadata()
            if STREAM_SERVED not in tuple(greeting or ()):
                raise StreamUnsupported("the Executor did not greet the stream")
            self._greeted = True
        await self.call.write(message)

    async def listen(self, on_message: Callable[[executor_pb2.ExecuteStreamResponse], None]) -> None:
        """Each answer to `on_message`; at the end the call's status, UNIMPLEMENTED as StreamUnsupported."""
        try:
            async for message in self.call:
                on_message(message)
            code = await self.call.code()
            if code != grpc.StatusCode.OK:
                raise ExecuteFailed(code, await self.call.details())
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                raise StreamUnsupported(exc.details()) from None
            raise

    def close(self) -> None:
        self.call.cancel()


class Conduit(Protocol):
    """One open stream of execution messages: a gRPC call, or a local socket (socket_transport)."""

    async def write(self, message: executor_pb2.ExecuteStreamRequest) -> None: ...

    async def listen(self, on_message: Callable[[executor_pb2.ExecuteStreamResponse], None]) -> None:
        """Hand each answer message to `on_message` until the stream ends (raising why, if not cleanly)."""

    def close(self) -> None: ...


class _OpenStream:
    """One open conduit: a writer task feeding it, a reader task matching answers to calls."""

    def __init__(self, conduit: Conduit, on_end, batch_bytes: int) -> None:
        self.conduit = conduit
        self.batch_bytes = batch_bytes
        self.waiting: dict[int, asyncio.Future] = {}
        self.outbox: asyncio.Queue[executor_pb2.ExecuteCall] = asyncio.Queue()
        self.ended = False
        self._on_end = on_end
        self._writing = False  # a write is in flight: later calls queue behind it
        self._write_now = getattr(conduit, "write_now", None)
        self._writer = asyncio.ensure_future(self._write())
        self._reader = asyncio.ensure_future(self._read())

    def send(self, call: executor_pb2.ExecuteCall) -> None:
        """To the writer task; straight to a conduit that can take it now when nothing waits before it."""
        if (self._write_now is None or self._writing or not self.outbox.empty()
                or not self._write_now(executor_pb2.ExecuteStreamRequest(calls=[call]))):
            self.outbox.put_nowait(call)

    async def _write(self) -> None:
        """Calls queued while the previous message was being written go together (no added wait)."""
        carried = None
        while True:
            first = carried if carried is not None else await self.outbox.get()
            calls, carried = take_batch(first, self.outbox, max_items=MAX_CALLS_PER_MESSAGE,
                                        max_bytes=self.batch_bytes)
            self._writing = True
            try:
                await self.conduit.write(executor_pb2.ExecuteStreamRequest(calls=calls))
            except (grpc.aio.AioRpcError, asyncio.InvalidStateError, OSError, StreamUnsupported, FrameError):
                return  # the stream ended: the reader sees why and fails whoever waits
            finally:
                self._writing = False

    async def _read(self) -> None:
        failure: Exception = ExecuteFailed(grpc.StatusCode.UNAVAILABLE, "the Executor ended the stream")
        try:
            await self.conduit.listen(self._dispatch)
        except (grpc.aio.AioRpcError, StreamUnsupported) as exc:
            failure = exc
        except (OSError, FrameError) as exc:
            failure = ExecuteFailed(grpc.StatusCode.UNAVAILABLE, f"{type(exc).__name__}: {exc}")
        except asyncio.CancelledError:
            failure = ExecuteFailed(grpc.StatusCode.CANCELLED, "the Selector closed the stream")
            raise
        finally:
            self._end(failure)

    def _dispatch(self, message: executor_pb2.ExecuteStreamResponse) -> None:
        for answer in message.answers:
            future = self.waiting.pop(answer.call_id, None)
            if future is not None and not future.done():
                future.set_result(answer)

    def _end(self, failure: Exception) -> None:
        self.ended = True
        self._writer.cancel()
        self._on_end(self)
        if isinstance(failure, grpc.aio.AioRpcError):
            failure = ExecuteFailed(grpc.StatusCode.UNAVAILABLE,
                                    f"executor stream ended: {failure.code().name}: {failure.details() or ''}")
        for future in self.waiting.values():  # an exception each: they are raised in different tasks
            if not future.done():
                future.set_exception(StreamUnsupported(str(failure)) if isinstance(failure, StreamUnsupported)
                                     else ExecuteFailed(failure.code(), failure.details()))
        self.waiting.clear()

    def close(self) -> None:
        self.conduit.close()
        self._reader.cancel()
        self._writer.cancel()


class StreamExecute:
    name = "stream"

    def __init__(self, stub: executor_pb2_grpc.ExecutorServiceStub, *, target: str = "",
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        self._stub = stub
        self._target = target
        self._max_message_bytes = max_message_bytes
        self._batch_bytes = min(BATCH_BYTES, max_message_bytes // 2)
        self._stream_max_bytes = min(STREAM_MAX_INPUT_BYTES, self._batch_bytes)
        self._unary = UnaryExecute(stub)
        self._unary_only = False
        self._stream: _OpenStream | None = None
        self._ids = itertools.count(1)

    async def __call__(self, request: executor_pb2.ExecuteRequest, timeout_s: float,
                       metadata=None) -> executor_pb2.ExecuteResponse:
        if request.ByteSize() > self._stream_max_bytes:
            # A call set-up is what the stream saves, and it only matters for small inputs. A big
            # one (past HTTP/2's 64 KiB initial window) would hold every call behind it on the one
            # stream while an Executor short of CPU reads it slowly (a live test under load showed
            # it); one over the message limit must fail alone rather than end the stream for all.
            return await self._unary(request, timeout_s, metadata)
        detour = self._detour()
        if detour is not None:
            return await detour(request, timeout_s, metadata)
        if timeout_s <= 0:
            raise ExecuteFailed(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
        stream = self._open()
        call_id = next(self._ids)
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        stream.waiting[call_id] = future
        stream.send(executor_pb2.ExecuteCall(call_id=call_id, request=request,
                                                          timeout_ms=timeout_s * 1000.0))
        timer = loop.call_later(timeout_s, self._expire, stream, call_id)
        try:
            answer = await future
        except StreamUnsupported as exc:
            # nothing ran: the stream never opened
            return await self._fall_back(str(exc))(request, timeout_s, metadata)
        finally:
            timer.cancel()
            if stream.waiting.pop(call_id, None) is not None and not stream.ended:  # given up (cancelled)
                stream.send(executor_pb2.ExecuteCall(call_id=call_id, cancel=True))
        if answer.WhichOneof("result") == "response":
            return answer.response
        error = answer.error
        raise ExecuteFailed(_CODES.get(error.code, grpc.StatusCode.UNKNOWN), error.message)

    def _conduit(self) -> Conduit:
        return GrpcConduit(self._stub)

    def _detour(self) -> ExecuteTransport | None:
        """Another way to send calls for now (the stream cannot be used), or None."""
        return self._unary if self._unary_only else None

    def _fall_back(self, reason: str) -> ExecuteTransport:
        """The stream could not open: the way to send this call (and, per `_detour`, later ones)."""
        if not self._unary_only:
            self._unary_only = True
            log.warning("executor has no ExecuteStream: sending unary Execute calls", target=self._target)
        return self._unary

    def _open(self) -> _OpenStream:
        if self._stream is None:
            self._stream = _OpenStream(self._conduit(), self._forget, self._batch_bytes)
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
            stream.send(executor_pb2.ExecuteCall(call_id=call_id, cancel=True))

    async def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
