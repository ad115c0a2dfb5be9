"""How a Selector rides out a profile store that fails or comes back empty.

Down: the ProfileCache keeps serving its last-known snapshot and says `degraded`.
Back but empty (a Redis restarted without persistence, before the Profiler re-registered the
pool): a store answering "no eligible model" right after it had some is far more likely to have
lost its data than to have had every model deregistered at once. `EmptiedStoreGuard` reports
such a load as unavailable for up to `grace_s`, so the cache keeps the last-known profiles (and
stays degraded) until the Profiler restored them; an empty store that stays empty longer is
believed.

Health: "modipick.v1.SelectorService/profiles" is NOT_SERVING while degraded; "" and
"modipick.v1.SelectorService" stay SERVING, because requests are still served (no flapping).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

import structlog

from modipick.core import ModelProfile
from modipick.runtime.health_watch import DegradationHealth
from modipick.runtime.server import RunningServer
from modipick.stores import AsyncProfileLegStore, ReturnLegPage, ReturnLegSample, StoreUnavailable
from modipick.stores.base import Observation

log = structlog.get_logger("modipick.selector.health")

PROFILES_HEALTH_SUFFIX = "/profiles"


class EmptiedStoreGuard(AsyncProfileLegStore):
    """The Selector's view of its store: load_all guarded; everything else passes through."""

    def __init__(self, store: AsyncProfileLegStore, *, grace_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self.grace_s = grace_s
        self._clock = clock
        self._had_eligible = 0
        self._empty_since: float | None = None
        self.suspicious_loads = 0

    async def load_all(self) -> list[ModelProfile]:
        profiles = await self._store.load_all()
        eligible = sum(p.state == "eligible" for p in profiles)
        if eligible:
            self._had_eligible, self._empty_since = eligible, None
            return profiles
        if self._had_eligible:
            now = self._clock()
            if self._empty_since is None:
                self._empty_since = now
                log.warning("profile store answered without eligible models; keeping last-known profiles",
                            had=self._had_eligible, registered=len(profiles), grace_s=self.grace_s)
            if now - self._empty_since < self.grace_s:
                self.suspicious_loads += 1
                raise StoreUnavailable(f"the store lists no eligible model ({len(profiles)} registered) right "
                                       f"after {self._had_eligible}: restarted empty? keeping last-known "
                                       f"profiles for up to {self.grace_s:g} s")
            log.warning("profile store still without eligible models; believing it", grace_s=self.grace_s)
            self._had_eligible = 0
        return profiles

    # -- everything else: passed through -----------------------------------------------------------
    async def register(self, profile: ModelProfile) -> bool:
        return await self._store.register(profile)

    async def deregister(self, name: str, version: int) -> bool:
        return await self._store.deregister(name, version)

    async def observe_many(self, observations: Iterable[Observation], *, alpha: float,
                           now: float | None = None) -> int:
        return await self._store.observe_many(observations, alpha=alpha, now=now)

    async def record_outcome(self, name: str, version: int, correct: bool) -> bool:
        return await self._store.record_outcome(name, version, correct)

    async def set_state(self, name: str, version: int, state: str) -> bool:
        return await self._store.set_state(name, version, state)

    async def reseed(self, name: str, version: int, mean_ms: float, var_ms2: float, now: float | None = None) -> bool:
        return await self._store.reseed(name, version, mean_ms, var_ms2, now)

    async def append_return_legs(self, samples: Sequence[ReturnLegSample], *, keep: int) -> int:
        return await self._store.append_return_legs(samples, keep=keep)

    async def read_return_legs(self, after: str, count: int) -> ReturnLegPage:
        return await self._store.read_return_legs(after, count)

    async def close(self) -> None:
        await self._store.close()

    def __repr__(self) -> str:
        return f"EmptiedStoreGuard({self._store!r})"


def profiles_health(running: RunningServer, service_name: str, cache) -> DegradationHealth:
    return DegradationHealth(running, service_name + PROFILES_HEALTH_SUFFIX, lambda: cache.degraded)
