"""Degradation as its own named health service, so liveness never flaps.

The overall status ("") and the service's own name stay SERVING while a dependency is down and
the service still answers (the Selector from last-known profiles, the Profiler into its buffer):
restarting or unrouting it would only make things worse. A dependency gets a sub-service,
"<service>/<dependency>" (e.g. "modipick.v1.SelectorService/profiles"), that is NOT_SERVING
while degraded. Probes and dashboards check it; load balancers keep using the plain names.
"""

from __future__ import annotations

import asyncio
from typing import Callable

import structlog

from modipick.runtime.server import RunningServer
from modipick.runtime.tasks import cancel_and_wait

log = structlog.get_logger("modipick.health")


class DegradationHealth:
    """Polls `degraded()` and mirrors it into health service `name` (NOT_SERVING while True)."""

    def __init__(self, running: RunningServer, name: str, degraded: Callable[[], bool], *,
                 interval_s: float = 0.1) -> None:
        self._running = running
        self.name = name
        self._degraded = degraded
        self._interval_s = interval_s
        self._state: bool | None = None
        self._task: asyncio.Task | None = None
        self.transitions = 0

    async def start(self) -> None:
        await self.check()
        self._task = asyncio.create_task(self._loop(), name=f"health-{self.name}")

    async def check(self) -> None:
        degraded = bool(self._degraded())
        if degraded == self._state:
            return
        if self._state is not None:
            self.transitions += 1
            log.info("dependency health changed", service=self.name, serving=not degraded)
        self._state = degraded
        await self._running.set_serving(not degraded, self.name)

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception:  # health reporting must never take the service down
                log.exception("health check of a dependency failed", service=self.name)
