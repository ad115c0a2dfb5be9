"""Profile stores: where learned model profiles live.

    store = make_store("memory")                           # one process
    store = make_store("redis://127.0.0.1:6379/0")         # shared by every replica
    store = make_store("rediss://host:6380/0", ca_file="ca.pem", password=secret, namespace="prod")

Keyword options for Redis are RedisOptions fields (or `options=RedisOptions(...)`); for memory, `clock`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from modipick.stores.base import (STATES, Observation, ProfileStore, ReturnLegLog, ReturnLegPage,
                                   ReturnLegSample)
from modipick.stores.errors import (StoreAccessDenied, StoreConfigError, StoreDataError, StoreError,
                                    StoreUnavailable)
from modipick.stores.memory import InMemoryProfileStore
from modipick.stores.redis_options import RedisOptions, Timeouts, redact
from modipick.stores.redis_store import RedisProfileStore

__all__ = [
    "STATES", "InMemoryProfileStore", "Observation", "ProfileStore", "RedisOptions", "RedisProfileStore",
    "ReturnLegLog", "ReturnLegPage", "ReturnLegSample",
    "StoreAccessDenied", "StoreConfigError", "StoreDataError", "StoreError", "StoreUnavailable", "Timeouts",
    "make_store",
]


def make_store(url_or_name: str, **opts: Any) -> ProfileStore:
    """"memory" -> InMemoryProfileStore; redis:// or rediss:// URL -> RedisProfileStore."""
    target = (url_or_name or "").strip()
    if target == "memory":
        clock = opts.pop("clock", None)
        if opts:
            raise StoreConfigError(f"the memory store takes no options, got {sorted(opts)}")
        return InMemoryProfileStore(clock=clock) if clock else InMemoryProfileStore()
    if target.lower().startswith(("redis://", "rediss://")):
        clock = opts.pop("clock", None)
        options = opts.pop("options", None) or RedisOptions()
        try:
            options = dataclasses.replace(options, **opts)
        except TypeError as error:
            raise StoreConfigError(f"unknown Redis store option: {error}") from None
        return RedisProfileStore(target, options, **({"clock": clock} if clock else {}))
    raise StoreConfigError(f"unknown profile store {redact(target)!r}: use 'memory' or a redis:// / rediss:// URL")

