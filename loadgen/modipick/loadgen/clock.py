"""Waking up on time in asyncio.

The default epoll loop waits in whole milliseconds rounded up (and CPython's double rounding adds
another millisecond for some values, e.g. 9 ms sleeps last 10), so sleeps land 0-2 ms late.
`select()` takes microseconds: a loop on SelectSelector wakes within ~0.1-0.3 ms of its target on
an idle machine. The load generator only holds a handful of sockets, far below select()'s
FD_SETSIZE (1024). Aiming 0.1 ms early centres the kernel's wake-up latency on the target.
"""

from __future__ import annotations

import asyncio
import selectors
from typing import Awaitable, TypeVar

T = TypeVar("T")

WAKE_EARLY_S = 0.0001


def new_event_loop() -> asyncio.AbstractEventLoop:
    return asyncio.SelectorEventLoop(selectors.SelectSelector())


def run(main: Awaitable[T]) -> T:
    """asyncio.run() on a microsecond-precise loop."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(main)


async def sleep_until(loop: asyncio.AbstractEventLoop, when: float) -> None:
    """Sleep until loop.time() ~= `when` (returns at once if it has passed)."""
    delay = when - loop.time() - WAKE_EARLY_S
    if delay > 0:
        await asyncio.sleep(delay)
