"""A profile store whose failed calls are counted (the services' modipick_redis_errors_total)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from modipick.core import ModelProfile
from modipick.stores.base import AsyncProfileLegStore, Observation, ReturnLegPage, ReturnLegSample
from modipick.stores.errors import StoreError


class ErrorCountingStore(AsyncProfileLegStore):
    """Every call is awaited on `store`; a StoreError it raises is counted with `count()`, then re-raised."""

    def __init__(self, store: AsyncProfileLegStore, count: Callable[[], object]) -> None:
        self._store = store
        self._count = count

    def __repr__(self) -> str:
        return repr(self._store)

    async def load_all(self) -> list[ModelProfile]:
        try:
            return await self._store.load_all()
        except StoreError:
            self._count()
            raise

    async def register(self, profile: ModelProfile) -> bool:
        try:
            return await self._store.register(profile)
        except StoreError:
            self._count()
            raise

    async def deregister(self, name: str, version: int) -> bool:
        try:
            return await self._store.deregister(name, version)
        except StoreError:
            self._count()
            raise

    async def observe_many(self, observations: Iterable[Observation], *, alpha: float,
                           now: float | None = None) -> int:
        try:
            return await self._store.observe_many(observations, alpha=alpha, now=now)
        except StoreError:
            self._count()
            raise

    async def record_outcome(self, name: str, version: int, correct: bool) -> bool:
        try:
            return await self._store.record_outcome(name, version, correct)
        except StoreError:
            self._count()
            raise

    async def set_state(self, name: str, version: int, state: str) -> bool:
        try:
            return await self._store.set_state(name, version, state)
        except StoreError:
            self._count()
            raise

    async def reseed(self, name: str, version: int, mean_ms: float, var_ms2: float, now: float | None = None) -> bool:
        try:
            return await self._store.reseed(name, version, mean_ms, var_ms2, now)
        except StoreError:
            self._count()
            raise

    async def append_return_legs(self, samples: Sequence[ReturnLegSample], *, keep: int) -> int:
        try:
            return await self._store.append_return_legs(samples, keep=keep)
        except StoreError:
            self._count()
            raise

    async def read_return_legs(self, after: str, count: int) -> ReturnLegPage:
        try:
            return await self._store.read_return_legs(after, count)
        except StoreError:
            self._count()
            raise

    async def close(self) -> None:
        try:
            await self._store.close()
        except StoreError:
            self._count()
            raise
