"""Latency predictions that count the work already queued on the Executors.

A profile's mean is what a model took on average (queueing included, paper T(m)); it cannot know
that the Executor is busy right now. `QueueAwareProfiles` is the profile cache as the Selector's
policy sees it: when the replica the next request goes to (ExecutorPool) expects queueing, every
eligible model's mean is shifted by that wait, so a loaded Executor steers selection toward
faster models (or to run-on-device when even the fastest cannot make it) instead of missing the
SLA with an accurate model. Idle, it is the cache itself: nothing is copied per request.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

from modipick.selector.cache import ProfileCache, Snapshot


class QueueAwareProfiles:
    """Reads like a ProfileCache (`snapshot` and the rest), with queueing added to the candidates."""

    def __init__(self, cache: ProfileCache, expected_queue_ms: Callable[[], float], *,
                 min_shift_ms: float = 0.05) -> None:
        self._cache = cache
        self._expected_queue_ms = expected_queue_ms
        self._min_shift_ms = min_shift_ms
        self.shifted = 0  # decisions made on shifted profiles

    @property
    def snapshot(self) -> Snapshot:
        snap = self._cache.snapshot
        wait = self._expected_queue_ms() if snap.candidates else 0.0
        if not wait > self._min_shift_ms:
            return snap
        self.shifted += 1
        return replace(snap, candidates=tuple(c._replace(mean_ms=c.mean_ms + wait) for c in snap.candidates),
                       fastest_ms=snap.fastest_ms + wait)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cache, name)
