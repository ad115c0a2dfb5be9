"""Profiles that follow a step change in a model's latency within a few observations.

Every batch of observations goes through modipick.core.changes.ChangeDetector before it reaches
the store: the batch is replayed locally on the profiles as the store holds them (read once per
batch), and where the detector re-seeds a profile (`run` consecutive observations beyond
max(k sigma, rel mu, floor) on the same side), the observations up to that one are written, then
the new mean and variance (`ProfileStore.reseed`, atomic), then the rest. Without a change, one
`observe_many` per batch as before. The detector's state (runs of outliers) lives here, so one
Profiler (the one writer of profiles) must see a model's observations.

A store failure part-way may apply the written part twice when the sink retries the batch
(observations are at-least-once in any case).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Iterable

import structlog

from modipick.core import ModelProfile, ewma_update
from modipick.core.changes import ChangeDetector
from modipick.stores import AsyncProfileStore

log = structlog.get_logger("modipick.profiler.drift")

Item = tuple[str, int, float]


@dataclass(frozen=True, slots=True)
class ChangeSettings:
    run: int = 3            # consecutive outliers that re-seed a profile (0: detector off)
    k: float = 4.0          # ... beyond k standard deviations,
    rel: float = 0.25       # ... and this share of the mean,
    floor_ms: float = 1.0   # ... and this many ms
    min_samples: int = 10   # a profile still forming (fewer samples) only gets the EWMA

    def __post_init__(self) -> None:
        if self.run < 0 or self.k <= 0 or self.rel < 0 or self.floor_ms < 0 or self.min_samples < 0:
            raise ValueError(f"change detector settings out of range: {self}")

    @property
    def enabled(self) -> bool:
        return self.run > 0


class DriftFollower:
    def __init__(self, settings: ChangeSettings, *, alpha: float) -> None:
        self.settings = settings
        self.detector = ChangeDetector(alpha=alpha, k=settings.k, rel=settings.rel, floor_ms=settings.floor_ms,
                                       run=settings.run)
        self._lock = asyncio.Lock()  # one batch at a time: runs must see arrival order

    @property
    def resets(self) -> int:
        return self.detector.resets

    async def write(self, store: AsyncProfileStore, observations: Iterable[Item], *, alpha: float, now: float) -> int:
        """`store.observe_many` with re-seeds where the detector fires; returns how many were accepted."""
        if alpha != self.detector.alpha:
            raise ValueError(f"detector alpha {self.detector.alpha} differs from the sink's {alpha}")
        items = list(observations)
        async with self._lock:
            profiles: dict[tuple[str, int], ModelProfile] = {(p.name, p.version): p for p in await store.load_all()}
            accepted = written = 0
            for index, (name, version, ms) in enumerate(items):
                key = (name, int(version))
                profile = profiles.get(key)
                if profile is None:
                    continue  # unknown: observe_many rejects and counts it
                if profile.samples < self.settings.min_samples:
                    profiles[key] = ewma_update(profile, float(ms), alpha=alpha, now=now)
                    continue
                resets = self.detector.resets
                updated = profiles[key] = self.detector.update(profile, float(ms), now=now)
                if self.detector.resets == resets:
                    continue
                accepted += await store.observe_many(items[written:index + 1], alpha=alpha, now=now)
                written = index + 1
                await store.reseed(name, version, updated.mean_ms, updated.var_ms2, now)
                log.info("latency change: profile re-seeded", model=profile.key,
                         mean_ms=round(updated.mean_ms, 3), was_mean_ms=round(profile.mean_ms, 3),
                         std_ms=round(updated.std_ms, 3))
            if written < len(items):
                accepted += await store.observe_many(items[written:], alpha=alpha, now=now)
        return accepted
