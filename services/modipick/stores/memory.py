"""In-memory profile store: one process (any number of threads), nothing survives a restart."""

from __future__ import annotations

import collections
import itertools
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

from modipick.core import ModelProfile
from modipick.core.profiles import ewma_update, record_outcome
from modipick.stores.base import (AsyncProfileLegStore, Observation, ReturnLegPage, ReturnLegSample, check_alpha,
                                   check_keep, check_leg_samples, check_observations, check_reseed, check_state,
                                   sorted_profiles)


class InMemoryProfileStore:
    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._profiles: dict[tuple[str, int], ModelProfile] = {}
        self._legs: collections.deque[tuple[int, ReturnLegSample]] = collections.deque()  # (sequence, sample)
        self._leg_seq = 0

    def __repr__(self) -> str:
        return f"InMemoryProfileStore(models={len(self._profiles)})"

    def load_all(self) -> list[ModelProfile]:
        with self._lock:
            return sorted_profiles(list(self._profiles.values()))

    def register(self, profile: ModelProfile) -> bool:
        check_state(profile.state)
        key = (profile.name, profile.version)
        with self._lock:
            known = self._profiles.get(key)
            if known is None:
                self._profiles[key] = profile
                return True
            self._profiles[key] = replace(known, declared_accuracy=profile.declared_accuracy, state=profile.state,
                input_size=profile.input_size or known.input_size)  # 0: not said, the known size stays
            return False

    def deregister(self, name: str, version: int) -> bool:
        with self._lock:
            return self._profiles.pop((name, int(version)), None) is not None

    def observe_many(self, observations: Iterable[Observation], *, alpha: float,
                     now: float | None = None) -> int:
        alpha = check_alpha(alpha)
        batch = check_observations(observations)
        now = self._clock() if now is None else float(now)
        accepted = 0
        with self._lock:
            for name, version, ms in batch:
                known = self._profiles.get((name, version))
                if known is not None:
                    self._profiles[(name, version)] = ewma_update(known, ms, alpha=alpha, now=now)
                    accepted += 1
        return accepted

    def record_outcome(self, name: str, version: int, correct: bool) -> bool:
        return self._update((name, int(version)), lambda p: record_outcome(p, bool(correct)))

    def set_state(self, name: str, version: int, state: str) -> bool:
        check_state(state)
        return self._update((name, int(version)), lambda p: replace(p, state=state))

    def reseed(self, name: str, version: int, mean_ms: float, var_ms2: float, now: float | None = None) -> bool:
        mean, var = check_reseed(mean_ms, var_ms2)
        at = self._clock() if now is None else float(now)
        return self._update((name, int(version)), lambda p: replace(
            p, mean_ms=mean, var_ms2=var, samples=max(p.samples, 1), updated_at=at))

    def append_return_legs(self, samples: Sequence[ReturnLegSample], *, keep: int) -> int:
        batch = check_leg_samples(samples)
        keep = check_keep(keep)
        with self._lock:
            for sample in batch:
                self._leg_seq += 1
                self._legs.append((self._leg_seq, sample))
            while len(self._legs) > keep:
                self._legs.popleft()
        return len(batch)

    def read_return_legs(self, after: str, count: int) -> ReturnLegPage:
        """Ids are "<sequence>-0", ordered like Redis stream ids."""
        try:
            last = int((after or "0").partition("-")[0])
        except ValueError:
            raise ValueError(f"not a return-leg stream id: {after!r}") from None
        with self._lock:
            legs = self._legs
            # sequences are contiguous: the first entry after `last` is at a known offset
            start = 0 if not legs else max(0, min(len(legs), last - legs[0][0] + 1))
            rows = list(itertools.islice(legs, start, start + max(1, int(count))))
        entries = [(f"{seq}-0", sample) for seq, sample in rows]
        return ReturnLegPage(entries, entries[-1][0] if entries else (after or "0"), len(entries))

    def close(self) -> None:
        pass

    def _update(self, key: tuple[str, int], change: Callable[[ModelProfile], ModelProfile]) -> bool:
        with self._lock:
            known = self._profiles.get(key)
            if known is None:
                return False
            self._profiles[key] = change(known)
            return True


class AsyncInMemoryProfileStore(AsyncProfileLegStore):
    """The in-memory store for code on an event loop: one InMemoryProfileStore (`store`, which
    blocking code in the same process may share), called directly: its calls never wait on I/O."""

    def __init__(self, store: InMemoryProfileStore | None = None, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store if store is not None else InMemoryProfileStore(clock=clock)

    def __repr__(self) -> str:
        return repr(self.store)

    async def load_all(self) -> list[ModelProfile]:
        return self.store.load_all()

    async def register(self, profile: ModelProfile) -> bool:
        return self.store.register(profile)

    async def deregister(self, name: str, version: int) -> bool:
        return self.store.deregister(name, version)

    async def observe_many(self, observations: Iterable[Observation], *, alpha: float,
                           now: float | None = None) -> int:
        return self.store.observe_many(observations, alpha=alpha, now=now)

    async def record_outcome(self, name: str, version: int, correct: bool) -> bool:
        return self.store.record_outcome(name, version, correct)

    async def set_state(self, name: str, version: int, state: str) -> bool:
        return self.store.set_state(name, version, state)

    async def reseed(self, name: str, version: int, mean_ms: float, var_ms2: float,
                     now: float | None = None) -> bool:
        return self.store.reseed(name, version, mean_ms, var_ms2, now)

    async def append_return_legs(self, samples: Sequence[ReturnLegSample], *, keep: int) -> int:
        return self.store.append_return_legs(samples, keep=keep)

    async def read_return_legs(self, after: str, count: int) -> ReturnLegPage:
        return self.store.read_return_legs(after, count)

    async def close(self) -> None:
        self.store.close()
