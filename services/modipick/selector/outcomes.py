"""ReportOutcome is answered at once; the report travels on to the Profiler's RecordOutcome from
a bounded queue in the background (full queue or a failed send: dropped and counted)."""

from __future__ import annotations

import asyncio

import grpc
import structlog

from modipick.runtime.metadata import with_request_id
from modipick.v1 import profiler_pb2, profiler_pb2_grpc

log = structlog.get_logger("modipick.selector.outcomes")


class OutcomeForwarder:
    def __init__(self, stub: profiler_pb2_grpc.ProfilerServiceStub | None, *, capacity: int = 10_000,
                 timeout_s: float = 2.0) -> None:
        self._stub = stub
        self._queue: asyncio.Queue[profiler_pb2.RecordOutcomeRequest] = asyncio.Queue(maxsize=capacity)
        self._timeout_s = timeout_s
        self._task: asyncio.Task | None = None
        self.forwarded = 0
        self.dropped = 0

    def submit(self, report: profiler_pb2.RecordOutcomeRequest) -> bool:
        if self._stub is None:
            self.dropped += 1
            return False
        try:
            self._queue.put_nowait(report)
        except asyncio.QueueFull:
            self.dropped += 1
            return False
        return True

    def start(self) -> None:
        if self._stub is not None and self._task is None:
            self._task = asyncio.create_task(self._run(), name="outcome-forwarder")

    async def drain(self, timeout_s: float = 2.0) -> None:
        """Wait (bounded) until queued reports went out: shutdown and tests."""
        if self._task is None:
            return
        try:
            await asyncio.wait_for(self._queue.join(), timeout_s)
        except asyncio.TimeoutError:
            pass

    async def stop(self, timeout_s: float = 2.0) -> None:
        await self.drain(timeout_s)
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _run(self) -> None:
        assert self._stub is not None
        while True:
            report = await self._queue.get()
            try:
                await self._stub.RecordOutcome(report, timeout=self._timeout_s,
                                               metadata=with_request_id(report.request_id))
                self.forwarded += 1
            except grpc.aio.AioRpcError as exc:
                self.dropped += 1
                log.warning("outcome not forwarded", request_id=report.request_id,
                            code=exc.code().name, details=exc.details())
            finally:
                self._queue.task_done()
