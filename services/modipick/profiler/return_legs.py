"""Return legs into the store's stream, in batches, off the RecordOutcome path.

RecordOutcome hands each Selector-derived reply leg to `ReturnLegSink.submit` (no store call on
the RPC); a background task appends what waits in one batch (one Lua call: XADD ... MAXLEN ~ keep
per sample) every `linger_s`, or at once when `batch_size` are waiting. While the store does not
answer, samples wait in a bounded buffer (oldest dropped first, counted) and the next flush tries
again: every Selector replica reads the stream, so a lost sample only slows their learning.
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass

import structlog

from modipick.runtime.tasks import cancel_and_wait
from modipick.stores import AsyncReturnLegLog, ReturnLegSample, StoreError

log = structlog.get_logger("modipick.profiler.return_legs")

DEFAULT_KEEP = 100_000  # stream entries kept (~100 B each in Redis); a new replica replays them


@dataclass
class ReturnLegStats:
    appended: int = 0
    dropped: int = 0         # lost to a full buffer
    failed_writes: int = 0   # store calls that failed (their samples stayed buffered)


class ReturnLegSink:
    def __init__(self, store: AsyncReturnLegLog, *, keep: int = DEFAULT_KEEP, capacity: int = 10_000,
                 batch_size: int = 500, linger_s: float = 0.02, retry_s: float = 0.5) -> None:
        if keep < 1 or capacity < 1 or batch_size < 1 or not linger_s > 0 or not retry_s > 0:
            raise ValueError("return-leg sink: keep, capacity and batch_size must be >= 1, linger and retry > 0")
        self._store = store
        self.keep = keep
        self.capacity = capacity
        self.batch_size = batch_size
        self.linger_s = linger_s
        self.retry_s = retry_s
        self._buffer: collections.deque[ReturnLegSample] = collections.deque()
        self._full = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task | None = None
        self.last_error = ""
        self.stats = ReturnLegStats()

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def submit(self, sample: ReturnLegSample) -> None:
        self._buffer.append(sample)
        if len(self._buffer) > self.capacity:
            self._buffer.popleft()
            self.stats.dropped += 1
        self._idle.clear()
        if len(self._buffer) >= self.batch_size:
            self._full.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="return-leg-sink")

    async def flush(self, timeout_s: float = 2.0) -> bool:
        """Wait (bounded) until everything submitted was appended; True if it was."""
        self._full.set()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except asyncio.TimeoutError:
            return False
        return True

    async def stop(self, flush_timeout_s: float = 2.0) -> None:
        if self._buffer and self._task is not None:
            await self.flush(flush_timeout_s)
        await cancel_and_wait(self._task)
        self._task = None
        if self._buffer:
            log.warning("return legs not stored at shutdown", lost=len(self._buffer))

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._full.wait(), self.linger_s)
            except asyncio.TimeoutError:
                pass
            self._full.clear()
            try:
                written = await self._write_some()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not end writing for good
                log.exception("return-leg write failed")
                written = False
            if not written:
                await asyncio.sleep(self.retry_s)

    async def _write_some(self) -> bool:
        """Append everything buffered, batch by batch; False when the store failed."""
        while self._buffer:
            batch = [self._buffer.popleft() for _ in range(min(self.batch_size, len(self._buffer)))]
            try:
                appended = await self._store.append_return_legs(batch, keep=self.keep)
            except StoreError as exc:
                self._requeue(batch)
                self.stats.failed_writes += 1
                if str(exc) != self.last_error:
                    log.warning("return-leg stream write failed; keeping samples", error=str(exc),
                                pending=len(self._buffer))
                self.last_error = str(exc)
                return False
            except BaseException:  # cancelled mid-write: keep the batch (it may land twice, never zero times)
                self._requeue(batch)
                raise
            self.stats.appended += appended
            if self.last_error:
                log.info("return-leg stream writable again", dropped=self.stats.dropped)
                self.last_error = ""
        self._idle.set()
        return True

    def _requeue(self, batch: list[ReturnLegSample]) -> None:
        self._buffer.extendleft(reversed(batch))
        while len(self._buffer) > self.capacity:
            self._buffer.popleft()
            self.stats.dropped += 1
