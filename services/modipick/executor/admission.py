"""Bounded concurrency with a bounded FIFO queue in front of it.

At most `max_concurrency` executions run at once; up to `max_queue` more wait in arrival order;
past that a request is shed at once (QueueFull -> RESOURCE_EXHAUSTED) instead of waiting for a
deadline it will miss. A waiter gives up at its own deadline (DeadlineExceeded).
"""

from __future__ import annotations

import asyncio
import collections

from modipick.executor.errors import DeadlineExceeded, QueueFull


class Admission:
    def __init__(self, max_concurrency: int, max_queue: int) -> None:
        if max_concurrency < 1 or max_queue < 0:
            raise ValueError(f"need max_concurrency >= 1 and max_queue >= 0, got {max_concurrency}, {max_queue}")
        self.max_concurrency = max_concurrency
        self.max_queue = max_queue
        self._free = max_concurrency
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self.shed = 0  # requests refused because the queue was full

    @property
    def waiting(self) -> int:
        return sum(1 for f in self._waiters if not f.done())

    @property
    def running(self) -> int:
        return self.max_concurrency - self._free

    @property
    def depth(self) -> int:
        """Requests admitted and not finished (running + waiting): the work ahead of a new one."""
        return self.running + self.waiting

    async def acquire(self, timeout_s: float) -> None:
        if self._free > 0 and not self.waiting:
            self._free -= 1
            return
        if self.waiting >= self.max_queue:
            self.shed += 1
            raise QueueFull(f"executor is saturated: {self.running} running and {self.waiting} waiting "
                            f"(--max-concurrency {self.max_concurrency}, --max-queue {self.max_queue})")
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter, max(0.0, timeout_s))
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the slot arrived as we gave up: pass it on
            else:
                waiter.cancel()
            self._prune()
            if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
                raise DeadlineExceeded(f"deadline passed after {timeout_s * 1000:.0f} ms waiting for an "
                                       f"execution slot ({self.running} running, {self.waiting} waiting)") from None
            raise

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # hand the slot over directly: FIFO, no barging
                return
        self._free += 1

    def _prune(self) -> None:
        while self._waiters and self._waiters[0].done():
            self._waiters.popleft()
