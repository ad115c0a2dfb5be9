"""Where execution observations go: the Profiler, in batches, off the reply path.

`submit()` is O(1) and never waits: it appends to a bounded buffer (full -> the observation is
dropped and counted). A background task sends what accumulated — at once when a batch is full,
else every `flush_interval_s` — as one ProfilerService.RecordObservations client stream of
batches. A failed send puts its observations back (as far as the buffer has room) and backs off.
"""

from __future__ import annotations

import asyncio
import collections
import time
from dataclasses import dataclass
from typing import Callable, Protocol

import grpc
import structlog
from google.protobuf.timestamp_pb2 import Timestamp

from modipick.v1 import common_pb2, profiler_pb2, profiler_pb2_grpc

log = structlog.get_logger("modipick.executor.reporter")


@dataclass(frozen=True, slots=True)
class ExecutionObservation:
    name: str
    version: int
    queue_ms: float
    execution_ms: float
    observed_at: float  # unix seconds
    request_id: str = ""
    failed: bool = False
    error_code: str = ""  # with `failed`: the gRPC status name the execution ended with

    def to_proto(self) -> profiler_pb2.Observation:
        stamp = Timestamp()
        stamp.FromNanoseconds(int(self.observed_at * 1e9))
        return profiler_pb2.Observation(
            model=common_pb2.ModelRef(name=self.name, version=self.version), queue_ms=self.queue_ms,
            execution_ms=self.execution_ms, observed_at=stamp, request_id=self.request_id, failed=self.failed,
            error_code=self.error_code)


class ObservationSink(Protocol):
    def submit(self, observation: ExecutionObservation) -> None:
        """Take one observation without waiting (may drop it)."""

    async def close(self) -> None: ...


class NullSink:
    """Reports nowhere (an Executor without a Profiler)."""

    def __init__(self) -> None:
        self.submitted = 0

    def submit(self, observation: ExecutionObservation) -> None:
        self.submitted += 1

    async def close(self) -> None:
        return None


@dataclass
class ReporterStats:
    submitted: int = 0
    sent: int = 0          # observations in streams the Profiler acknowledged
    accepted: int = 0      # ... of which it applied (RecordObservationsResponse.accepted)
    rejected: int = 0
    dropped: int = 0       # lost: buffer full, or still unsent at close
    failed_sends: int = 0
    buffered: int = 0


class ProfilerReporter:
    def __init__(self, channel: grpc.aio.Channel, *, batch_size: int = 256, flush_interval_s: float = 0.05,
                 max_buffer: int = 10_000, max_batches_per_send: int = 16, send_timeout_s: float = 5.0,
                 max_backoff_s: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        if batch_size < 1 or max_buffer < 1:
            raise ValueError("batch_size and max_buffer must be >= 1")
        self._stub = profiler_pb2_grpc.ProfilerServiceStub(channel)
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.max_buffer = max_buffer
        self.max_batches_per_send = max_batches_per_send
        self.send_timeout_s = send_timeout_s
        self.max_backoff_s = max_backoff_s
        self._clock = clock
        self._buffer: collections.deque[ExecutionObservation] = collections.deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._stats = ReporterStats()

    @property
    def stats(self) -> ReporterStats:
        self._stats.buffered = len(self._buffer)
        return self._stats

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="profiler-reporter")

    def submit(self, observation: ExecutionObservation) -> None:
        self._stats.submitted += 1
        if len(self._buffer) >= self.max_buffer:
            self._stats.dropped += 1
            return
        self._buffer.append(observation)
        if len(self._buffer) >= self.batch_size:
            self._wake.set()

    async def _run(self) -> None:
        backoff = 0.0
        while not self._closing:
            if backoff:
                await asyncio.sleep(backoff)
            if len(self._buffer) < self.batch_size:
                try:
                    await asyncio.wait_for(self._wake.wait(), self.flush_interval_s)
                except asyncio.TimeoutError:
                    pass
            self._wake.clear()
            if not self._buffer:
                continue
            ok = await self._send_some()
            backoff = 0.0 if ok else min(self.max_backoff_s, max(0.05, backoff * 2))

    async def _send_some(self) -> bool:
        limit = self.batch_size * self.max_batches_per_send
        taken = [self._buffer.popleft() for _ in range(min(limit, len(self._buffer)))]
        batches = [profiler_pb2.RecordObservationsRequest(
            observations=[o.to_proto() for o in taken[i:i + self.batch_size]])
            for i in range(0, len(taken), self.batch_size)]
        try:
            reply = await self._stub.RecordObservations(iter(batches), timeout=self.send_timeout_s)
        except asyncio.CancelledError:
            self._buffer.extendleft(reversed(taken))  # not lost to a cancelled send; close() counts leftovers
            raise
        except (grpc.aio.AioRpcError, asyncio.TimeoutError) as exc:
            self._stats.failed_sends += 1
            room = self.max_buffer - len(self._buffer)
            keep = taken[-room:] if room > 0 else []
            self._stats.dropped += len(taken) - len(keep)
            self._buffer.extendleft(reversed(keep))
            detail = exc.code().name if isinstance(exc, grpc.aio.AioRpcError) else "timeout"
            log.warning("observations not delivered; will retry", count=len(taken), error=detail,
                        buffered=len(self._buffer))
            return False
        self._stats.sent += len(taken)
        self._stats.accepted += reply.accepted
        self._stats.rejected += reply.rejected
        return True

    async def flush(self, timeout_s: float = 5.0) -> bool:
        """Send everything buffered now (tests, shutdown); True when the buffer emptied."""
        deadline = self._clock() + timeout_s
        while self._buffer and self._clock() < deadline:
            if not await self._send_some():
                await asyncio.sleep(0.05)
        return not self._buffer

    async def close(self, timeout_s: float = 2.0) -> None:
        self._closing = True
        self._wake.set()
        started = self._clock()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout_s)  # lets a send in flight finish
            except (asyncio.TimeoutError, asyncio.CancelledError):
                pass
        await self.flush(max(0.0, timeout_s - (self._clock() - started)))
        self._stats.dropped += len(self._buffer)
        self._buffer.clear()
