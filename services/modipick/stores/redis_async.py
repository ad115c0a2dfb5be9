"""The Redis profile store on redis.asyncio: the contract of RedisProfileStore (same scripts, keys and
errors), awaited on the caller's event loop instead of blocking a thread."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

from modipick.core import ModelProfile
from modipick.stores.base import (Observation, ReturnLegPage, ReturnLegSample, check_alpha, check_keep,
                                   check_leg_samples, check_observations, check_reseed, check_state,
                                   sorted_profiles)
from modipick.stores.errors import StoreFailureCounts, StoreUnavailable
from modipick.stores.redis_clients import async_client, rediscover_primary
from modipick.stores.redis_codec import (SCRIPTS, KeyLayout, append_calls, check_acks, decode_profile,
                                         leg_page, mapped_errors, observe_calls, register_args)
from modipick.stores.redis_options import RedisOptions, hash_tagged, parse_target, redact


class AsyncRedisProfileStore:
    """Build it anywhere; its connections belong to the event loop that first uses it."""

    def __init__(self, url: str, options: RedisOptions | None = None, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.options = options or RedisOptions()
        self._where = redact(url)
        self._clock = clock
        self.failures = StoreFailureCounts()
        target = parse_target(url)
        self.topology = target.kind
        ns = self.options.namespace
        self.layout = KeyLayout(hash_tagged(ns) if target.kind == "cluster" else ns)
        self._client = async_client(url, self.options)
        # Registered once; redis-py sends EVALSHA and reloads a script the server forgot (restart).
        for attribute, source in SCRIPTS.items():
            setattr(self, attribute, self._client.register_script(source))
        self.legs_key = self.layout.legs

    def __repr__(self) -> str:
        return f"AsyncRedisProfileStore({self._where!r}, namespace={self.layout.namespace!r})"

    def key(self, name: str, version: int) -> str:
        return self.layout.profile(name, version)

    def _errors(self, operation: str):
        return mapped_errors(operation, self._where, self.failures)

    async def _write(self, operation: str, script, keys: list[str], args: list[object]) -> int:
        """Run a write script; with replica_acks, WAIT until that many replicas hold it."""
        try:
            with self._errors(operation):
                result = await script(keys=keys, args=args)
                if self.options.replica_acks:
                    acked = await self._client.wait(self.options.replica_acks, self.options.replica_ack_ms)
                    check_acks(int(acked), self.options.replica_acks, operation, self._where)
        except StoreUnavailable:
            await self._rediscover()
            raise
        return int(result)

    async def _rediscover(self) -> None:
        await rediscover_primary(self._client, self.topology)

    async def ping(self) -> None:
        with self._errors("PING"):
            await self._client.ping()

    async def load_all(self) -> list[ModelProfile]:
        with self._errors("load_all"):
            rows = await self._load_all(keys=[self.layout.index])
        return sorted_profiles([decode_profile(row) for row in rows])

    async def register(self, profile: ModelProfile) -> bool:
        check_state(profile.state)
        keys = [self.key(profile.name, profile.version), self.layout.index]
        return bool(await self._write("register", self._register, keys, register_args(profile)))

    async def deregister(self, name: str, version: int) -> bool:
        keys = [self.key(name, version), self.layout.index]
        return bool(await self._write("deregister", self._deregister, keys, []))

    async def observe_many(self, observations: Iterable[Observation], *, alpha: float,
                           now: float | None = None) -> int:
        alpha = check_alpha(alpha)
        batch = check_observations(observations)
        now = self._clock() if now is None else float(now)
        accepted = 0
        for keys, args in observe_calls(self.layout, batch, alpha, now, self.options.max_batch):
            accepted += await self._write("observe_many", self._observe_many, keys, args)
        return accepted

    async def record_outcome(self, name: str, version: int, correct: bool) -> bool:
        return bool(await self._write("record_outcome", self._record_outcome, [self.key(name, version)],
                                      [int(bool(correct))]))

    async def set_state(self, name: str, version: int, state: str) -> bool:
        check_state(state)
        return bool(await self._write("set_state", self._set_state, [self.key(name, version)], [state]))

    async def reseed(self, name: str, version: int, mean_ms: float, var_ms2: float,
                     now: float | None = None) -> bool:
        mean, var = check_reseed(mean_ms, var_ms2)
        at = self._clock() if now is None else float(now)
        return bool(await self._write("reseed", self._reseed, [self.key(name, version)],
                                      [repr(mean), repr(var), repr(at)]))

    async def append_return_legs(self, samples: Sequence[ReturnLegSample], *, keep: int) -> int:
        batch = check_leg_samples(samples)
        keep = check_keep(keep)
        appended = 0
        for args in append_calls(batch, keep, self.options.max_batch):
            appended += await self._write("append_return_legs", self._append_legs, [self.legs_key], args)
        return appended

    async def read_return_legs(self, after: str, count: int) -> ReturnLegPage:
        with self._errors("read_return_legs"):
            reply = await self._client.xread({self.legs_key: after or "0"}, count=max(1, int(count)))
        return leg_page(reply, after)

    async def close(self) -> None:
        if self.topology == "cluster":
            await self._client.aclose()
        else:  # the pool was handed to the client, which then leaves it open
            await self._client.aclose(close_connection_pool=True)
