"""Profile stores: where learned model profiles live.

    store = make_store("memory")                           # one process
    store = make_store("redis://127.0.0.1:6379/0")         # shared by every replica
    store = make_store("rediss://host:6380/0", ca_file="ca.pem", password=secret, namespace="prod")
    store = make_store("redis+sentinel://s1:26379,s2:26379/mymaster/0", replica_acks=1)
    store = make_store("redis+cluster://node1:7000,node2:7000")   # keys hash-tagged: {modipick}:...
    store = make_async_store("redis://127.0.0.1:6379/0")          # the same contract, awaited

Keyword options for Redis are RedisOptions fields (or `options=RedisOptions(...)`); for memory, `clock`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from modipick.stores.base import (STATES, AsyncProfileLegStore, AsyncProfileStore, AsyncReturnLegLog, Observation,
                                   ProfileLegStore, ProfileStore, ReturnLegLog, ReturnLegPage, ReturnLegSample)
from modipick.stores.counting import ErrorCountingStore
from modipick.stores.errors import (StoreAccessDenied, StoreConfigError, StoreDataError, StoreError,
                                    StoreFailureCounts, StoreUnavailable, StoreWriteUnconfirmed)
from modipick.stores.memory import InMemoryProfileStore
from modipick.stores.redis_async import AsyncRedisProfileStore
from modipick.stores.redis_options import ALL_SCHEMES, RedisOptions, Timeouts, redact
from modipick.stores.redis_store import RedisProfileStore

__all__ = [
    "STATES", "AsyncProfileLegStore", "AsyncProfileStore", "AsyncRedisProfileStore", "AsyncReturnLegLog",
    "ErrorCountingStore", "InMemoryProfileStore", "Observation", "ProfileLegStore", "ProfileStore", "RedisOptions",
    "RedisProfileStore",
    "ReturnLegLog", "ReturnLegPage", "ReturnLegSample",
    "StoreAccessDenied", "StoreConfigError", "StoreDataError", "StoreError", "StoreFailureCounts",
    "StoreUnavailable", "StoreWriteUnconfirmed", "Timeouts",
    "make_async_store", "make_store",
]

_REDIS_PREFIXES = tuple(f"{scheme}://" for scheme in ALL_SCHEMES)


def make_store(url_or_name: str, **opts: Any) -> ProfileStore:
    """"memory" -> InMemoryProfileStore; a redis://, rediss://, redis+sentinel:// or redis+cluster://
    URL -> RedisProfileStore."""
    target = (url_or_name or "").strip()
    if target == "memory":
        clock = opts.pop("clock", None)
        if opts:
            raise StoreConfigError(f"the memory store takes no options, got {sorted(opts)}")
        return InMemoryProfileStore(clock=clock) if clock else InMemoryProfileStore()
    if target.lower().startswith(_REDIS_PREFIXES):
        clock = opts.pop("clock", None)
        return RedisProfileStore(target, _redis_options(opts), **({"clock": clock} if clock else {}))
    raise _unknown(target)


def make_async_store(url: str, **opts: Any) -> AsyncRedisProfileStore:
    """A Redis URL (any make_store accepts) -> AsyncRedisProfileStore, for code on an event loop."""
    target = (url or "").strip()
    if not target.lower().startswith(_REDIS_PREFIXES):
        raise _unknown(target)
    clock = opts.pop("clock", None)
    return AsyncRedisProfileStore(target, _redis_options(opts), **({"clock": clock} if clock else {}))


def _redis_options(opts: dict[str, Any]) -> RedisOptions:
    options = opts.pop("options", None) or RedisOptions()
    try:
        return dataclasses.replace(options, **opts)
    except TypeError as error:
        raise StoreConfigError(f"unknown Redis store option: {error}") from None


def _unknown(target: str) -> StoreConfigError:
    return StoreConfigError(f"unknown profile store {redact(target)!r}: use 'memory' or a redis://, rediss://, "
                            f"redis+sentinel:// or redis+cluster:// URL")

