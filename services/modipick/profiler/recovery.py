"""The Profiler's memory of the registry, for a store that comes back without it.

A Redis restarted without persistence answers again, but empty: every observation for a model
it no longer knows would be rejected, and the Selectors would have nothing to serve with.
`RecoveringStore` wraps the Profiler's store and keeps

- the last profiles it read (a snapshot, re-read by `keep_fresh` about once a second), and
- a journal of the observations it wrote since that snapshot (bounded).

It restores the registry before the first call after an outage, when a load finds none of the
models it knew, and when a batch is rejected for models it knows: each lost model is registered
again with its snapshot (learned statistics and state included), the journal is written on top,
and then the rejected batch again. So what this Profiler wrote is not lost with a restarted Redis;
only other Profilers' writes since the snapshot are (they restore their own).

Only models this Profiler knows are restored, and only when the store lost them (an outage or
rejected writes): a model another Profiler deregistered in normal operation stays deregistered.
Every store call is awaited under one lock, so snapshot and journal never miss a write in between.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

import structlog

from modipick.core import ModelProfile
from modipick.stores import (AsyncProfileLegStore, ReturnLegPage, ReturnLegSample, StoreError,
                             StoreUnavailable)
from modipick.stores.base import Observation

log = structlog.get_logger("modipick.profiler.recovery")

Key = tuple[str, int]
T = TypeVar("T")


class RecoveringStore(AsyncProfileLegStore):
    def __init__(self, store: AsyncProfileLegStore, *, journal_limit: int = 200_000) -> None:
        self._store = store
        self._known: dict[Key, ModelProfile] = {}
        self._journal: list[tuple[list[Observation], float, float | None]] = []  # (batch, alpha, now)
        self._journaled = 0
        self._journal_limit = journal_limit
        self._suspect = False  # a call failed as unavailable: check the registry before the next one
        self._lock = asyncio.Lock()
        self.restorations = 0
        self.restored_models = 0
        self.rewritten = 0  # observations written again after a restore (journal and rejected ones)

    def __repr__(self) -> str:
        return f"RecoveringStore({self._store!r})"

    @property
    def known(self) -> dict[Key, ModelProfile]:
        return dict(self._known)

    # -- the ProfileStore contract ------------------------------------------------------------------
    async def load_all(self) -> list[ModelProfile]:
        async with self._lock:
            await self._before()
            profiles = await self._call(self._store.load_all)
            present = {(p.name, p.version) for p in profiles}
            if self._known and not (present & set(self._known)):  # none we knew: the store lost its data
                await self._restore(present)
                profiles = await self._call(self._store.load_all)
            self._known = {(p.name, p.version): p for p in profiles}
            self._journal.clear()
            self._journaled = 0
            return profiles

    async def register(self, profile: ModelProfile) -> bool:
        async with self._lock:
            await self._before()
            created = await self._call(self._store.register, profile)
            old = self._known.get((profile.name, profile.version))
            self._known[(profile.name, profile.version)] = profile if old is None else replace(
                old, declared_accuracy=profile.declared_accuracy, state=profile.state,
                input_size=profile.input_size)
            return created

    async def deregister(self, name: str, version: int) -> bool:
        async with self._lock:
            await self._before()
            existed = await self._call(self._store.deregister, name, version)
            self._known.pop((name, version), None)
            return existed

    async def set_state(self, name: str, version: int, state: str) -> bool:
        async with self._lock:
            await self._before()
            known = await self._call(self._store.set_state, name, version, state)
            old = self._known.get((name, version))
            if old is not None:
                self._known[(name, version)] = replace(old, state=state)
            return known

    async def record_outcome(self, name: str, version: int, correct: bool) -> bool:
        async with self._lock:
            await self._before()
            known = await self._call(self._store.record_outcome, name, version, correct)
            if not known and (name, version) in self._known:
                await self._restore()
                known = await self._call(self._store.record_outcome, name, version, correct)
            return known

    async def reseed(self, name: str, version: int, mean_ms: float, var_ms2: float, now: float | None = None) -> bool:
        async with self._lock:
            await self._before()
            return await self._call(self._store.reseed, name, version, mean_ms, var_ms2, now)

    async def observe_many(self, observations: Iterable[Observation], *, alpha: float, now: float | None = None) -> int:
        batch = list(observations)
        async with self._lock:
            await self._before()
            accepted = await self._call(self._store.observe_many, batch, alpha=alpha, now=now)
            if accepted < len(batch) and any((n, int(v)) in self._known for n, v, _ in batch):
                restored = await self._restore()
                again = [item for item in batch if (item[0], int(item[1])) in restored]
                if again:
                    accepted += await self._call(self._store.observe_many, again, alpha=alpha, now=now)
                    self.rewritten += len(again)
            self._remember(batch, alpha, now)
            return accepted

    async def close(self) -> None:
        await self._store.close()

    # -- the return-leg stream: passed through (the registry copy does not cover it) ------------------
    async def append_return_legs(self, samples: Sequence[ReturnLegSample], *, keep: int) -> int:
        return await self._store.append_return_legs(samples, keep=keep)

    async def read_return_legs(self, after: str, count: int) -> ReturnLegPage:
        return await self._store.read_return_legs(after, count)

    # -- restoring ----------------------------------------------------------------------------------
    def _remember(self, batch: list[Observation], alpha: float, now: float | None) -> None:
        if self._journaled + len(batch) > self._journal_limit:
            return  # a snapshot is overdue; restore from it rather than grow without bound
        self._journal.append((batch, alpha, now))
        self._journaled += len(batch)

    async def _call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        try:
            return await fn(*args, **kwargs)
        except StoreUnavailable:
            self._suspect = True
            raise

    async def _before(self) -> None:
        if self._suspect:
            await self._restore()

    async def _restore(self, present: set[Key] | None = None) -> set[Key]:
        """Register every known model the store lost, then write the journal for them; returns
        their keys. Raises StoreError (still suspect) when the store is not back yet."""
        if present is None:
            present = {(p.name, p.version) for p in await self._call(self._store.load_all)}
        missing = [p for key, p in self._known.items() if key not in present]
        for profile in missing:
            await self._call(self._store.register, profile)
        lost = {(p.name, p.version) for p in missing}
        replayed = 0
        for batch, alpha, now in self._journal:
            again = [item for item in batch if (item[0], int(item[1])) in lost]
            if again:
                replayed += await self._call(self._store.observe_many, again, alpha=alpha, now=now)
        self._suspect = False
        if missing:
            self.restorations += 1
            self.restored_models += len(missing)
            self.rewritten += replayed
            log.warning("profile store lost registered models; restored them from the last-known copy",
                        models=[p.key for p in missing], journal_replayed=replayed, kept=len(present))
        return lost

    async def keep_fresh(self, interval_s: float = 1.0) -> None:
        """Re-read the registry every `interval_s`: a recent snapshot, a short journal."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.load_all()
            except StoreError:
                pass  # an outage: the buffer and the next successful call deal with it
            except Exception:
                log.exception("registry refresh failed")
