"""The Selector's local copy of the profiles, refreshed from the store in the background.

The request path only reads `snapshot` (an immutable value swapped whole), never the store, and
never builds Candidates: they are built once per refresh. Staleness is bounded by the refresh
period while the store answers; when it does not, the last-known copy keeps serving and
`degraded` says so (health can report it), until a refresh succeeds again.

Followers (`follow`) run after every refresh, on the same period: the shared return legs
(modipick.selector.leg_stream) are read there, so they are as fresh as the profiles.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

import structlog

from modipick.core import Candidate, ModelProfile
from modipick.runtime.tasks import cancel_and_wait
from modipick.stores import AsyncProfileStore, StoreError

log = structlog.get_logger("modipick.selector.cache")


@dataclass(frozen=True, slots=True)
class Snapshot:
    profiles: tuple[ModelProfile, ...] = ()
    candidates: tuple[Candidate, ...] = ()   # eligible only, ordered by (name, version)
    fastest_ms: float = math.inf             # lowest mean among candidates
    loaded_at: float = -math.inf             # monotonic seconds
    generation: int = 0
    input_sizes: tuple[int, ...] = ()        # each candidate's declared input size (0: none)
    sized: bool = False                      # the sizes differ, so a request's input restricts the candidates

    @classmethod
    def build(cls, profiles: list[ModelProfile], loaded_at: float, generation: int) -> "Snapshot":
        ordered = tuple(sorted(profiles, key=lambda p: (p.name, p.version)))
        eligible = [p for p in ordered if p.state == "eligible"]
        candidates = tuple(p.candidate() for p in eligible)
        fastest = min((c.mean_ms for c in candidates), default=math.inf)
        sizes = tuple(p.input_size for p in eligible)
        return cls(ordered, candidates, fastest, loaded_at, generation, sizes, len(set(sizes)) > 1)


class ProfileCache:
    def __init__(self, store: AsyncProfileStore, *, refresh_s: float = 0.5,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not refresh_s > 0:
            raise ValueError(f"refresh period must be > 0 s, got {refresh_s!r}")
        self._store = store
        self.refresh_s = refresh_s
        self._clock = clock
        self.snapshot = Snapshot()
        self.degraded = False
        self.last_error: str = ""
        self.failed_refreshes = 0
        self._task: asyncio.Task | None = None
        self._changed: list[Callable[[bool], None]] = []
        self._followers: list[Callable[[], Awaitable[object]]] = []

    @property
    def age_s(self) -> float:
        return self._clock() - self.snapshot.loaded_at

    def on_degraded_change(self, callback: Callable[[bool], None]) -> None:
        self._changed.append(callback)

    def follow(self, step: Callable[[], Awaitable[object]]) -> None:
        """Run `step` after every refresh (successful or not); it handles its own store errors."""
        self._followers.append(step)

    async def _refresh_and_follow(self) -> None:
        await self.refresh()
        for step in self._followers:
            await step()

    async def refresh(self) -> bool:
        """Load once; True on success. Failures keep the last-known snapshot."""
        try:
            profiles = await self._store.load_all()
        except StoreError as exc:
            self.failed_refreshes += 1
            self.last_error = str(exc)
            self._set_degraded(True, exc)
            return False
        self.snapshot = Snapshot.build(profiles, self._clock(), self.snapshot.generation + 1)
        self._set_degraded(False)
        return True

    async def start(self) -> None:
        await self._refresh_and_follow()
        self._task = asyncio.create_task(self._loop(), name="profile-cache-refresh")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_s)
            try:
                await self._refresh_and_follow()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug in decoding must not end refreshing for good
                log.exception("profile refresh failed")

    def _set_degraded(self, degraded: bool, exc: Exception | None = None) -> None:
        if degraded == self.degraded:
            return
        self.degraded = degraded
        if degraded:
            log.warning("profile store unavailable; serving last-known profiles",
                        error=str(exc), age_s=round(self.age_s, 3) if math.isfinite(self.age_s) else None)
        else:
            log.info("profile store reachable again", failed_refreshes=self.failed_refreshes)
        for callback in self._changed:
            callback(degraded)
