"""Latency observations into the store, in batches, surviving store outages.

While the store answers, a batch is written at once (the RPC returns after the write). When it
does not, observations wait in a bounded in-memory buffer (oldest dropped first, counted) and a
background task replays them in order once the store is back. New observations queue behind a
non-empty buffer so the EWMA sees them in arrival order.
"""

from __future__ import annotations

import asyncio
import collections
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import structlog

from modipick.runtime.tasks import cancel_and_wait
from modipick.stores import AsyncProfileStore, StoreError

if TYPE_CHECKING:
    from modipick.profiler.drift import DriftFollower

log = structlog.get_logger("modipick.profiler.ingest")

Item = tuple[str, int, float]


@dataclass
class IngestStats:
    stored: int = 0          # applied to a profile
    unknown: int = 0         # rejected by the store: model not registered
    buffered: int = 0        # waiting for the store now
    dropped: int = 0         # lost to a full buffer
    outages: int = 0


class ObservationSink:
    def __init__(self, store: AsyncProfileStore, *, alpha: float = 0.1, capacity: int = 100_000,
                 batch_size: int = 2_000, retry_s: float = 0.5, clock: Callable[[], float] = time.time,
                 follower: "DriftFollower | None" = None) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha!r}")
        if capacity <= 0 or batch_size <= 0:
            raise ValueError("buffer capacity and batch size must be positive")
        self._store = store
        self.alpha = alpha
        # with a change detector (modipick.profiler.drift), writes re-seed profiles after a step change
        self.follower = follower
        self.capacity = capacity
        self.batch_size = batch_size
        self.retry_s = retry_s
        self._clock = clock
        self._buffer: collections.deque[Item] = collections.deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._inflight = 0  # replay batches taken out of the buffer, being written
        self.last_error = ""
        self.stats = IngestStats()

    @property
    def degraded(self) -> bool:
        return bool(self._buffer) or self._inflight > 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._replay_loop(), name="observation-replay")

    async def stop(self, flush_timeout_s: float = 2.0) -> None:
        if self.degraded:
            await self.flush(timeout_s=flush_timeout_s)
        await cancel_and_wait(self._task)
        self._task = None
        if self._buffer:
            log.warning("observations not stored at shutdown", lost=len(self._buffer))

    async def submit(self, items: list[Item]) -> int:
        """Store (or buffer) a batch; returns how many were stored now or buffered for later."""
        if not items:
            return 0
        rest = items
        if not self._buffer and not self._inflight:
            rest = await self._write(items)
            if rest:
                self.stats.outages += 1
                log.warning("buffering observations until the store answers", pending=len(rest))
        if rest:
            self._enqueue(rest)
        return len(items)

    async def flush(self, timeout_s: float = 5.0) -> bool:
        """Replay the buffer now; True when everything buffered was written (none left, none in flight)."""
        deadline = time.monotonic() + timeout_s
        while self.degraded and time.monotonic() < deadline:
            if not self._buffer:  # the background replay holds the last batch: let it finish
                await asyncio.sleep(0.005)
            elif not await self._replay_batch():
                await asyncio.sleep(min(self.retry_s, max(0.0, deadline - time.monotonic())))
        return not self.degraded

    async def _write(self, items: list[Item]) -> list[Item]:
        """Write chunk by chunk; returns what was not written because the store failed. Any store
        failure keeps the data (bounded): unavailable is transient, and refused credentials or a
        broken key are fixed by an operator, after which the buffer replays."""
        for start in range(0, len(items), self.batch_size):
            chunk = items[start:start + self.batch_size]
            try:
                accepted = await self._observe(chunk, alpha=self.alpha, now=self._clock())
            except StoreError as exc:
                if str(exc) != self.last_error:
                    log.warning("profile store write failed; keeping observations", error=str(exc),
                                kind=type(exc).__name__)
                self.last_error = str(exc)
                return items[start:]
            self.stats.stored += accepted
            self.stats.unknown += len(chunk) - accepted
        return []

    async def _observe(self, chunk: list[Item], *, alpha: float, now: float) -> int:
        if self.follower is None:
            return await self._store.observe_many(chunk, alpha=alpha, now=now)
        return await self.follower.write(self._store, chunk, alpha=alpha, now=now)

    def _enqueue(self, items: list[Item]) -> None:
        self._buffer.extend(items)
        self._trim()
        self._wake.set()

    def _trim(self) -> None:
        excess = len(self._buffer) - self.capacity
        for _ in range(max(0, excess)):
            self._buffer.popleft()
        if excess > 0:
            self.stats.dropped += excess
        self.stats.buffered = len(self._buffer)

    async def _replay_batch(self) -> bool:
        batch = [self._buffer.popleft() for _ in range(min(self.batch_size, len(self._buffer)))]
        self._inflight += 1
        try:
            rest = await self._write(batch)
        except BaseException:  # cancelled mid-write: keep the batch (the write may land twice, never zero times)
            self._buffer.extendleft(reversed(batch))
            self._trim()
            raise
        finally:
            self._inflight -= 1
        if rest:
            self._buffer.extendleft(reversed(rest))
            self._trim()
            return False
        self.stats.buffered = len(self._buffer)
        if not self._buffer:
            log.info("buffered observations replayed", dropped=self.stats.dropped)
        return True

    async def _replay_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._buffer:
                try:
                    replayed = await self._replay_batch()
                except asyncio.CancelledError:
                    raise
                except Exception:  # a bug must not end replaying for good
                    log.exception("observation replay failed")
                    replayed = False
                if not replayed:
                    await asyncio.sleep(self.retry_s)
