"""Which asyncio event loop a service runs on (`--event-loop`, MODIPICK_EVENT_LOOP).

`auto` (the default) takes uvloop where it is installed (a dependency on Linux and macOS) and the
standard loop elsewhere. uvloop's loop passes and socket reads cost less: on the benchmark machines
a paced Unix-socket round trip took 0.25 ms against 0.38, and one Selector's throughput rose ~7 %
(docs/benchmarks.md, Selector throughput). gRPC's asyncio stack runs on any asyncio loop.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any, Callable, Coroutine

LOOPS = ("auto", "asyncio", "uvloop")


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The loop `name` asks for (None: asyncio's default); `uvloop` without uvloop installed is an error."""
    if name not in LOOPS:
        raise ValueError(f"event loop must be one of {', '.join(LOOPS)}, got {name!r}")
    if name == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if name == "uvloop":
            raise ValueError("uvloop is not installed (pip install uvloop), or use --event-loop asyncio") from None
        return None
    return uvloop.new_event_loop


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


def run_on(name: str, main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """asyncio.run(main()) on the loop `name` asks for."""
    with asyncio.Runner(loop_factory=loop_factory(name)) as runner:
        return runner.run(main())


def event_loop_option(text: str) -> str:
    """argparse type for --event-loop: one of LOOPS, and uvloop only where it is installed."""
    name = text.strip().lower()
    try:
        loop_factory(name)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return name
