"""Profile stores: where learned model profiles live.

    store = make_store("memory")                           # one process
    store = make_store("redis://127.0.0.1:6379/0")         # shared by every replica
    store = make_store("rediss://host:6380/0", ca_file="ca.pem", password=secret, namespace="prod")
    store = make_store("redis+sentinel://s1:26379,s2:26379/mymaster/0", replica_acks=1)
    store = make_store("redis+cluster://node1:7000,node2:7000")   # keys hash-tagged: {modipick}:...
    store = make_async_store("redis://127.0.0.1:6379/0")          # the same contract, awaited
    store, opened = awaited(make_store("memory"))                  # a blocking store's awaited form

Keyword options for Redis are RedisOptions fields (or `options=RedisOptions(...)`); for memory, `clock`.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

from modipick.stores.base import (STATES, AsyncProfileLegStore, AsyncProfileStore, AsyncReturnLegLog, Observation,
                                   ProfileLegStore, ProfileStore, ReturnLegLog, ReturnLegPage, ReturnLegSample)
from modipick.stores.counting import ErrorCountingStore
from modipick.stores.errors import (StoreAccessDenied, StoreConfigError, StoreDataError, StoreError,
                                    StoreFailureCounts, StoreUnavailable, StoreWriteUnconfirmed)
from modipick.stores.memory import AsyncInMemoryProfileStore, InMemoryProfileStore
from modipick.stores.redis_async import AsyncRedisProfileStore
from modipick.stores.redis_options import ALL_SCHEMES, RedisOptions, Timeouts, redact
from modipick.stores.redis_store import RedisProfileStore

__all__ = [
    "STATES", "AsyncInMemoryProfileStore", "AsyncProfileLegStore", "AsyncProfileStore", "AsyncRedisProfileStore", "AsyncReturnLegLog",
    "ErrorCountingStore", "InMemoryProfileStore", "Observation", "ProfileLegStore", "ProfileStore", "RedisOptions",
    "RedisProfileStore",
    "ReturnLegLog", "ReturnLegPage", "ReturnLegSample",
    "StoreAccessDenied", "StoreConfigError", "StoreDataError", "StoreError", "StoreFailureCounts",
    "StoreUnavailable", "StoreWriteUnconfirmed", "Timeouts",
    "awaited", "make_async_store", "make_store",
]

_REDIS_PREFIXES = tuple(f"{scheme}://" for scheme in ALL_SCHEMES)


def make_store(url_or_name: str, **opts: Any) -> ProfileStore:
    """"memory" -> InMemoryProfileStore; a redis://, rediss://, redis+sentinel:// or redis+cluster://
    URL -> RedisProfileStore."""
    target = (url_or_name or "").strip()
    if target == "memory":
        return _memory(opts)
    if target.lower().startswith(_REDIS_PREFIXES):
        clock = opts.pop("clock", None)
        return RedisProfileStore(target, _redis_options(opts), **({"clock": clock} if clock else {}))
    raise _unknown(target)


def make_async_store(url_or_name: str, **opts: Any) -> AsyncProfileLegStore:
    """make_store's stores for code on an event loop: "memory" -> AsyncInMemoryProfileStore, a Redis
    URL -> AsyncRedisProfileStore (redis.asyncio: no call blocks the loop or hops to a thread)."""
    target = (url_or_name or "").strip()
    if target == "memory":
        return AsyncInMemoryProfileStore(_memory(opts))
    if not target.lower().startswith(_REDIS_PREFIXES):
        raise _unknown(target)
    clock = opts.pop("clock", None)
    return AsyncRedisProfileStore(target, _redis_options(opts), **({"clock": clock} if clock else {}))


def awaited(store: ProfileLegStore | AsyncProfileLegStore) -> tuple[AsyncProfileLegStore, bool]:
    """The awaited form of a store a caller built, and whether it opened connections of its own
    (then whoever asked closes it; the caller's store stays the caller's): an awaited store as it
    is, the in-memory store called directly (the same profiles), a blocking Redis store's target
    on redis.asyncio."""
    if isinstance(store, InMemoryProfileStore):
        return AsyncInMemoryProfileStore(store), False
    if isinstance(store, RedisProfileStore):
        return store.asyncio_twin(), True
    if not inspect.iscoroutinefunction(getattr(store, "load_all", None)):
        raise StoreConfigError(f"{store!r} is neither an awaited profile store nor one of modipick.stores'")
    return store, False  # type: ignore[return-value]


def _memory(opts: dict[str, Any]) -> InMemoryProfileStore:
    clock = opts.pop("clock", None)
    if opts:
        raise StoreConfigError(f"the memory store takes no options, got {sorted(opts)}")
    return InMemoryProfileStore(clock=clock) if clock else InMemoryProfileStore()


def _redis_options(opts: dict[str, Any]) -> RedisOptions:
    options = opts.pop("options", None) or RedisOptions()
    try:
        return dataclasses.replace(options, **opts)
    except TypeError as error:
        raise StoreConfigError(f"unknown Redis store option: {error}") from None


def _unknown(target: str) -> StoreConfigError:
    return StoreConfigError(f"unknown profile store {redact(target)!r}: use 'memory' or a redis://, rediss://, "
                            f"redis+sentinel:// or redis+cluster:// URL")

