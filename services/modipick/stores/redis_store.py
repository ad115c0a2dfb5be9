"""Redis profile store: every write is one Lua script call (atomic on the server), all profiles are
read by one Lua call. Any number of processes may write and read concurrently. One server, a
Sentinel-managed primary or a Cluster (modipick.stores.redis_options)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

from modipick.core import ModelProfile
from modipick.stores.base import (Observation, ReturnLegPage, ReturnLegSample, check_alpha, check_keep,
                                   check_leg_samples, check_observations, check_reseed, check_state,
                                   sorted_profiles)
from modipick.stores.errors import StoreFailureCounts
from modipick.stores.redis_async import AsyncRedisProfileStore
from modipick.stores.redis_clients import sync_client
from modipick.stores.redis_codec import (SCRIPTS, KeyLayout, append_calls, check_acks, decode_profile,
                                         leg_page, mapped_errors, observe_calls, register_args)
from modipick.stores.redis_options import RedisOptions, hash_tagged, parse_target, redact


class RedisProfileStore:
    def __init__(self, url: str, options: RedisOptions | None = None, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.options = options or RedisOptions()
        self._url = url
        self._where = redact(url)
        self._clock = clock
        self.failures = StoreFailureCounts()
        target = parse_target(url)
        self.topology = target.kind
        ns = self.options.namespace
        self.layout = KeyLayout(hash_tagged(ns) if target.kind == "cluster" else ns)
        self._client = sync_client(url, self.options)
        # Registered once; redis-py sends EVALSHA and reloads a script the server forgot (restart).
        for attribute, source in SCRIPTS.items():
            setattr(self, attribute, self._client.register_script(source))
        self.legs_key = self.layout.legs

    def __repr__(self) -> str:
        return f"RedisProfileStore({self._where!r}, namespace={self.layout.namespace!r})"

    def asyncio_twin(self) -> AsyncRedisProfileStore:
        """An AsyncRedisProfileStore on the same target with the same options and clock, for code on
        an event loop (its own connections: whoever asks closes it)."""
        return AsyncRedisProfileStore(self._url, self.options, clock=self._clock)

    def key(self, name: str, version: int) -> str:
        return self.layout.profile(name, version)

    def _errors(self, operation: str):
        return mapped_errors(operation, self._where, self.failures)

    def _write(self, operation: str, script, keys: list[str], args: list[object]) -> int:
        """Run a write script; with replica_acks, WAIT until that many replicas hold it."""
        with self._errors(operation):
            result = script(keys=keys, args=args)
            if self.options.replica_acks:
                acked = self._client.wait(self.options.replica_acks, self.options.replica_ack_ms)
                check_acks(int(acked), self.options.replica_acks, operation, self._where)
        return int(result)

    def ping(self) -> None:
        with self._errors("PING"):
            self._client.ping()

    def load_all(self) -> list[ModelProfile]:
        with self._errors("load_all"):
            rows = self._load_all(keys=[self.layout.index])
        return sorted_profiles([decode_profile(row) for row in rows])

    def register(self, profile: ModelProfile) -> bool:
        check_state(profile.state)
        keys = [self.key(profile.name, profile.version), self.layout.index]
        return bool(self._write("register", self._register, keys, register_args(profile)))

    def deregister(self, name: str, version: int) -> bool:
        return bool(self._write("deregister", self._deregister, [self.key(name, version), self.layout.index], []))

    def observe_many(self, observations: Iterable[Observation], *, alpha: float,
                     now: float | None = None) -> int:
        alpha = check_alpha(alpha)
        batch = check_observations(observations)
        now = self._clock() if now is None else float(now)
        return sum(self._write("observe_many", self._observe_many, keys, args)
                   for keys, args in observe_calls(self.layout, batch, alpha, now, self.options.max_batch))

    def record_outcome(self, name: str, version: int, correct: bool) -> bool:
        return bool(self._write("record_outcome", self._record_outcome, [self.key(name, version)],
                                [int(bool(correct))]))

    def set_state(self, name: str, version: int, state: str) -> bool:
        check_state(state)
        return bool(self._write("set_state", self._set_state, [self.key(name, version)], [state]))

    def reseed(self, name: str, version: int, mean_ms: float, var_ms2: float, now: float | None = None) -> bool:
        mean, var = check_reseed(mean_ms, var_ms2)
        at = self._clock() if now is None else float(now)
        return bool(self._write("reseed", self._reseed, [self.key(name, version)], [repr(mean), repr(var), repr(at)]))

    def append_return_legs(self, samples: Sequence[ReturnLegSample], *, keep: int) -> int:
        batch = check_leg_samples(samples)
        keep = check_keep(keep)
        return sum(self._write("append_return_legs", self._append_legs, [self.legs_key], args)
                   for args in append_calls(batch, keep, self.options.max_batch))

    def read_return_legs(self, after: str, count: int) -> ReturnLegPage:
        with self._errors("read_return_legs"):
            reply = self._client.xread({self.legs_key: after or "0"}, count=max(1, int(count)))
        return leg_page(reply, after)

    def close(self) -> None:
        self._client.close()
        pool = getattr(self._client, "connection_pool", None)
        if pool is not None:
            pool.disconnect()
