"""ExecutorService.ExecuteStream: many executions over one long-lived stream (the Selector's path),
on a gRPC call or a local socket (modipick.executor.local_socket).

A unary call costs a call set-up on both sides; a message on an open stream does not, which halves
what the Selector's extra hop costs (docs/benchmarks.md). Each ExecuteCall runs as its own
task through the same `execute` as a unary Execute, under a deadline of `timeout_ms` from arrival,
and its answer is written as soon as it is ready (one writer; answers that are ready together go in
one message).
A refusal is an answer too (`ExecuteError` with the status a unary call would have ended with), so
one bad message never ends the stream. While the Executor shuts down, new messages are answered
UNAVAILABLE and the stream ends once the running ones are answered.
"""

from __future__ import annotations

import asyncio
import math
from typing import AsyncIterator, Awaitable, Callable, Protocol, Union

import grpc

from modipick.executor.errors import ExecutorError
from modipick.runtime.batching import take_batch
from modipick.v1 import executor_pb2

RunOne = Callable[[executor_pb2.ExecuteRequest, float], Awaitable[executor_pb2.ExecuteResponse]]
DEFAULT_MAX_IN_FLIGHT = 1024  # per stream; the Executor's own queue bound still applies to all
_END = object()


MAX_ANSWERS_PER_MESSAGE = 256
ANSWER_BATCH_BYTES = 64 * 1024  # answers join a message while it stays under this: well inside any
                                # receive limit a caller sets (a bigger answer goes alone)


class AnswerSink(Protocol):
    """Where a session's answers go: the ExecuteStream call's context, or a local socket."""

    async def write(self, message: executor_pb2.ExecuteStreamResponse) -> None: ...


class MessageSource(Protocol):
    """A local socket's messages, handed to `on_message` as they arrive until the peer closes."""

    async def listen(self, on_message: Callable[[executor_pb2.ExecuteStreamRequest], None]) -> None: ...


# an ExecuteStream call's request iterator, or a local socket
Requests = Union[AsyncIterator[executor_pb2.ExecuteStreamRequest], MessageSource]


def refusal(call_id: int, code: grpc.StatusCode, message: str) -> executor_pb2.ExecuteAnswer:
    return executor_pb2.ExecuteAnswer(call_id=call_id,
                                      error=executor_pb2.ExecuteError(code=code.value[0], message=message))


class StreamSession:
    """One ExecuteStream call: reads messages, runs each as a task, writes the answers."""

    def __init__(self, run_one: RunOne, answers: AnswerSink, draining: asyncio.Event, *,
                 max_in_flight: int = DEFAULT_MAX_IN_FLIGHT) -> None:
        self._run_one = run_one
        self._sink = answers
        self._draining = draining
        self._max_in_flight = max_in_flight
        self._answers: asyncio.Queue = asyncio.Queue()
        self._writing = False  # a write is in flight: later answers queue behind it
        self._write_now = getattr(answers, "write_now", None)  # a local socket's: no wait, no task
        self._running: dict[int, asyncio.Task] = {}

    async def serve(self, requests: Requests) -> None:
        writer = asyncio.ensure_future(self._write())
        reader = asyncio.ensure_future(self._read(requests))
        drained = asyncio.ensure_future(self._draining.wait())
        try:
            done, _ = await asyncio.wait({writer, reader, drained}, return_when=asyncio.FIRST_COMPLETED)
            if writer in done:
                writer.result()  # a write failed: the stream is gone
            failure = reader.exception() if reader in done else None  # e.g. an undecodable message
            if reader not in done:  # shutting down: messages not read yet fail on the caller's side, who retries
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
            if failure is not None:  # no more answers: the stream is about to end with an error
                for task in self._running.values():
                    task.cancel()
            while self._running:
                await asyncio.wait(set(self._running.values()))
            # the writer finishes the write in flight and what is queued: ending the call while a
            # write is in flight can leave it hanging
            self._answers.put_nowait(_END)
            await writer
            if failure is not None:
                raise failure
        finally:
            for task in (writer, reader, drained, *self._running.values()):
                task.cancel()

    async def _read(self, requests: Requests) -> None:
        listen = getattr(requests, "listen", None)
        if listen is not None:  # a local socket hands over each message as it arrives
            await listen(self._accept_all)
            return
        async for message in requests:
            self._accept_all(message)

    def _accept_all(self, message: executor_pb2.ExecuteStreamRequest) -> None:
        for call in message.calls:
            self._accept(call)

    def _accept(self, message: executor_pb2.ExecuteCall) -> None:
        call_id = message.call_id
        if message.cancel:
            task = self._running.get(call_id)
            if task is not None:
                task.cancel()
            return
        problem = self._problem(message)
        if problem is not None:
            self._answer(refusal(call_id, *problem))
            return
        task = asyncio.ensure_future(self._one(call_id, message.request, message.timeout_ms / 1000.0))
        self._running[call_id] = task
        task.add_done_callback(lambda _t, call_id=call_id: self._running.pop(call_id, None))

    def _problem(self, message: executor_pb2.ExecuteCall) -> tuple[grpc.StatusCode, str] | None:
        if self._draining.is_set():
            return grpc.StatusCode.UNAVAILABLE, "executor is shutting down"
        if not math.isfinite(message.timeout_ms) or message.timeout_ms <= 0:
            return grpc.StatusCode.INVALID_ARGUMENT, f"timeout_ms must be > 0, got {message.timeout_ms}"
        if message.call_id in self._running:
            return grpc.StatusCode.INVALID_ARGUMENT, f"call_id {message.call_id} is already running on this stream"
        if len(self._running) >= self._max_in_flight:
            return (grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"more than {self._max_in_flight} executions in flight on one stream")
        return None

    async def _one(self, call_id: int, request: executor_pb2.ExecuteRequest, timeout_s: float) -> None:
        try:
            response = await self._run_one(request, timeout_s)
        except ExecutorError as exc:
            self._answer(refusal(call_id, exc.code, exc.message))
            return
        self._answer(executor_pb2.ExecuteAnswer(call_id=call_id, response=response))

    def _answer(self, answer: executor_pb2.ExecuteAnswer) -> None:
        """To the writer task; straight to a sink that can take it now when nothing waits before it."""
        if (self._write_now is None or not self._answers.empty() or self._writing
                or not self._write_now(executor_pb2.ExecuteStreamResponse(answers=[answer]))):
            self._answers.put_nowait(answer)

    async def _write(self) -> None:
        """Answers ready while the previous message was being written go together."""
        carried = None
        while True:
            first = carried if carried is not None else await self._answers.get()
            if first is _END:
                return
            batch, carried = take_batch(first, self._answers, max_items=MAX_ANSWERS_PER_MESSAGE,
                                        max_bytes=ANSWER_BATCH_BYTES, stop=_END)
            self._writing = True
            try:
                await self._sink.write(executor_pb2.ExecuteStreamResponse(answers=batch))
            finally:
                self._writing = False
