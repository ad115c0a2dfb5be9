"""A user-space TCP link emulator (what Mahimahi's mm-link does, without kernel help).

It listens on loopback and forwards every connection to an upstream server. Bytes in each
direction wait in that direction's queue (shared by all connections, like one link) and are
released only at the trace's delivery opportunities - up to 1500 bytes per opportunity - then
delayed by the one-way propagation delay. Opportunities that pass while the queue is empty are
lost, as in mm-link; the trace repeats with its period.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Callable

import structlog

from modipick.loadgen.clock import WAKE_EARLY_S, sleep_until
from modipick.loadgen.traces.schedule import DeliverySchedule

log = structlog.get_logger(__name__)

Sink = Callable[[bytes | None], None]  # None = end of stream
READ_BYTES = 64 * 1024


class _DelayLine:
    """Hands data to sinks `delay_s` after release, in release order."""

    def __init__(self, loop: asyncio.AbstractEventLoop, delay_s: float) -> None:
        self._loop = loop
        self._delay_s = delay_s
        self._items: collections.deque[tuple[float, Sink, bytes | None]] = collections.deque()
        self._wake = asyncio.Event()

    def put(self, sink: Sink, data: bytes | None) -> None:
        if self._delay_s <= 0:
            sink(data)
            return
        self._items.append((self._loop.time() + self._delay_s, sink, data))
        self._wake.set()

    async def run(self) -> None:
        while True:
            while not self._items:
                self._wake.clear()
                await self._wake.wait()
            due, sink, data = self._items[0]
            await sleep_until(self._loop, due)
            while self._items and self._items[0][0] <= self._loop.time() + WAKE_EARLY_S:
                _, sink, data = self._items.popleft()
                sink(data)


class LinkDirection:
    """One direction of the link: a byte queue drained by the delivery schedule."""

    def __init__(self, schedule: DeliverySchedule, *, origin: float, delay_ms: float = 0.0,
                 max_queue_bytes: int = 8 * 1024 * 1024, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.schedule = schedule
        self._loop = loop or asyncio.get_running_loop()
        self._origin = origin  # loop time at which the trace's time 0 happens
        self._queue: collections.deque[tuple[Sink, bytes | None]] = collections.deque()
        self.queued_bytes = 0
        self.delivered_bytes = 0
        self._max_queue = max_queue_bytes
        self._next = 0  # global index of the next usable opportunity
        self._data = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._delay = _DelayLine(self._loop, delay_ms / 1000.0)

    def _trace_ms(self) -> float:
        return (self._loop.time() - self._origin) * 1000.0

    def enqueue(self, sink: Sink, data: bytes | None) -> None:
        if not self._queue:  # opportunities that passed while idle are lost
            self._next = max(self._next, self.schedule.first_at_or_after(max(0.0, self._trace_ms())))
        self._queue.append((sink, data))
        if data:
            self.queued_bytes += len(data)
            if self.queued_bytes >= self._max_queue:
                self._room.clear()
        self._data.set()

    async def wait_for_room(self) -> None:
        await self._room.wait()

    async def run(self) -> None:
        delay_task = asyncio.ensure_future(self._delay.run())
        try:
            while True:
                while not self._queue:
                    self._data.clear()
                    await self._data.wait()
                await sleep_until(self._loop, self._origin + self.schedule.time_of(self._next) / 1000.0)
                now_ms = self._trace_ms() + WAKE_EARLY_S * 1000.0
                budget = 0
                while self.schedule.time_of(self._next) <= now_ms:
                    budget += self.schedule.packet_bytes
                    self._next += 1
                self._release(budget)
        finally:
            delay_task.cancel()

    def _release(self, budget: int) -> None:
        while self._queue:
            sink, data = self._queue[0]
            if data is None:
                self._queue.popleft()
                self._delay.put(sink, None)
                continue
            if budget <= 0:
                break
            if len(data) <= budget:
                self._queue.popleft()
                chunk = data
            else:
                chunk, rest = data[:budget], data[budget:]
                self._queue[0] = (sink, rest)
            budget -= len(chunk)
            self.queued_bytes -= len(chunk)
            self.delivered_bytes += len(chunk)
            self._delay.put(sink, chunk)
        if self.queued_bytes < self._max_queue:
            self._room.set()


def _writer_sink(writer: asyncio.StreamWriter) -> Sink:
    def sink(data: bytes | None) -> None:
        if writer.is_closing():
            return
        if data is None:
            writer.close()
        else:
            writer.write(data)
    return sink


class LinkEmulator:
    """`await start()` returns the local port; connect there instead of to `upstream`."""

    def __init__(self, up: DeliverySchedule, down: DeliverySchedule, upstream: tuple[str, int], *,
                 one_way_delay_ms: float = 0.0, offset_ms: float = 0.0,
                 max_queue_bytes: int = 8 * 1024 * 1024) -> None:
        self._schedules = (up, down)
        self._upstream = upstream
        self._delay_ms = one_way_delay_ms
        self._offset_ms = offset_ms
        self._max_queue = max_queue_bytes
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task] = set()
        self.up: LinkDirection | None = None
        self.down: LinkDirection | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        loop = asyncio.get_running_loop()
        origin = loop.time() - self._offset_ms / 1000.0
        self.up = LinkDirection(self._schedules[0], origin=origin, delay_ms=self._delay_ms,
                                max_queue_bytes=self._max_queue, loop=loop)
        self.down = LinkDirection(self._schedules[1], origin=origin, delay_ms=self._delay_ms,
                                  max_queue_bytes=self._max_queue, loop=loop)
        for direction in (self.up, self.down):
            self._spawn(direction.run())
        self._server = await asyncio.start_server(self._accept, host, port)
        return self._server.sockets[0].getsockname()[1]

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._upstream)
        except OSError as exc:
            log.warning("link_upstream_unreachable", upstream=f"{self._upstream[0]}:{self._upstream[1]}",
                        error=str(exc))
            client_writer.close()
            return
        assert self.up is not None and self.down is not None
        self._spawn(_pump(client_reader, self.up, _writer_sink(upstream_writer)))
        self._spawn(_pump(upstream_reader, self.down, _writer_sink(client_writer)))

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()


async def _pump(reader: asyncio.StreamReader, direction: LinkDirection, sink: Sink) -> None:
    try:
        while True:
            data = await reader.read(READ_BYTES)
            if not data:
                break
            direction.enqueue(sink, data)
            await direction.wait_for_room()
    except (ConnectionError, OSError):
        pass
    finally:
        direction.enqueue(sink, None)
