"""Per-client return-leg state in Redis: one key per client, with a TTL, read by the replica that
decides for the client and swapped by the replica that learns its report.

Key: `<ns>:{client:<id>}:leg`, a string holding the client's state (modipick.core.returnleg_state,
<= 1 KB). The braces are a Redis Cluster hash tag: every key of one client sits in one slot, so
the swap script, which touches one key, runs on one node. Idle clients expire (`ttl_s`, renewed by
every write).

A write is a compare-and-swap on the state's generation (bytes [2, 6) of the state, see
GENERATION_OFFSET): the writer read the state (or holds it from the decision), learned one or more
legs into it, and swaps it in only if nobody wrote in between; else the script answers with the
state now stored, and the writer learns its legs into that and tries again. Two replicas learning
one client's reports at once lose nothing, and a write costs one command when it does not race.

A network class's reported legs (modipick.core.class_legs) are shared in one list per class,
`<ns>:{class:<name>}:legs`, the newest `keep` of them, with the same TTL: replicas append a batch
with one script call and read the list whole (see modipick.selector.client_legs for when).
"""

from __future__ import annotations

from typing import Protocol

import redis.asyncio as aioredis

from modipick.core.returnleg_state import GENERATION_BYTES, GENERATION_OFFSET
from modipick.stores.errors import StoreFailureCounts, StoreUnavailable
from modipick.stores.redis_clients import async_client, rediscover_primary
from modipick.stores.redis_codec import mapped_errors
from modipick.stores.redis_options import RedisOptions, Timeouts, parse_target, redact

DEFAULT_TTL_S = 6 * 3600.0
DEFAULT_TIMEOUTS = Timeouts(1.0, 1.0)  # a decision waits for its read: shorter than the profile store's

# KEYS: the client's state. ARGV: the generation bytes expected ('' : no state yet), the new state,
# the TTL in ms. Returns 1 when swapped, else the state stored now (false: none).
SWAP_STATE = f"""
local cur = redis.call('GET', KEYS[1])
local seen = ''
if cur then seen = string.sub(cur, {GENERATION_OFFSET + 1}, {GENERATION_OFFSET + GENERATION_BYTES}) end
if seen ~= ARGV[1] then return cur end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""


# KEYS: the class's list. ARGV: how many to keep, the TTL in ms, then the legs to append.
PUSH_CLASS_LEGS = """
redis.call('RPUSH', KEYS[1], unpack(ARGV, 3))
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[1]), -1)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""
MAX_PUSH = 1000  # legs per script call (Lua's unpack has a stack limit)


class ClientLegStore(Protocol):
    async def load(self, client_id: str) -> bytes | None: ...

    async def swap(self, client_id: str, expected: bytes | None, state: bytes) -> tuple[bool, bytes | None]:
        """(True, None): stored. (False, current): someone wrote first; `current` is what is stored now."""
        ...

    async def push_class_legs(self, class_name: str, legs: list[bytes], keep: int) -> None:
        """Append `legs` to the class's shared list, keeping its newest `keep`."""
        ...

    async def class_legs(self, class_name: str) -> list[bytes]:
        """The class's shared list, oldest first (empty when there is none)."""
        ...


def generation_bytes(state: bytes | None) -> bytes:
    return b"" if state is None else state[GENERATION_OFFSET:GENERATION_OFFSET + GENERATION_BYTES]


class RedisClientLegStore:
    """Build it with `from_url` (any Redis URL the profile store takes: one server, Sentinel,
    Cluster) or around a bytes-mode redis.asyncio client. Errors are the store's
    (modipick.stores.errors), counted in `failures`; behind Sentinel a failed command makes the
    client ask for the primary again (as AsyncRedisProfileStore does)."""

    def __init__(self, client: aioredis.Redis | aioredis.RedisCluster, *, namespace: str = "modipick",
                 ttl_s: float = DEFAULT_TTL_S, topology: str = "server", where: str = "redis") -> None:
        if not ttl_s > 0:
            raise ValueError(f"ttl_s must be > 0, got {ttl_s!r}")
        self._client = client
        self.topology = topology
        self._where = where
        self.failures = StoreFailureCounts()
        # braces out: a hash-tagged namespace ("{modipick}") would put every client in one slot
        self.namespace = namespace.replace("{", "").replace("}", "")
        self.ttl_ms = int(ttl_s * 1000)
        self._swap = client.register_script(SWAP_STATE)  # EVALSHA; reloaded if the server forgot it
        self._push_class_legs = client.register_script(PUSH_CLASS_LEGS)

    @classmethod
    def from_url(cls, url: str, options: RedisOptions | None = None, *,
                 ttl_s: float = DEFAULT_TTL_S) -> "RedisClientLegStore":
        """The client comes from the profile store's factory (credentials, TLS, timeouts, retries
        of `options`), in bytes mode: the state is binary."""
        options = options if options is not None else RedisOptions(timeouts=DEFAULT_TIMEOUTS)
        client = async_client(url, options, decode_responses=False)
        return cls(client, namespace=options.namespace, ttl_s=ttl_s, topology=parse_target(url).kind,
                   where=redact(url))

    def key(self, client_id: str) -> str:
        return f"{self.namespace}:{{client:{client_id}}}:leg"

    async def load(self, client_id: str) -> bytes | None:
        try:
            with mapped_errors("GET of a client's return legs", self._where, self.failures):
                return await self._client.get(self.key(client_id))
        except StoreUnavailable:
            await self._rediscover()
            raise

    async def swap(self, client_id: str, expected: bytes | None, state: bytes) -> tuple[bool, bytes | None]:
        try:
            with mapped_errors("swap of a client's return legs", self._where, self.failures):
                answer = await self._swap(keys=[self.key(client_id)],
                                          args=[generation_bytes(expected), state, self.ttl_ms])
        except StoreUnavailable:
            await self._rediscover()
            raise
        if answer == 1:
            return True, None
        return False, answer or None

    def class_key(self, class_name: str) -> str:
        return f"{self.namespace}:{{class:{class_name}}}:legs"

    async def push_class_legs(self, class_name: str, legs: list[bytes], keep: int) -> None:
        if not legs:
            return
        try:
            with mapped_errors("push of a class's return legs", self._where, self.failures):
                for start in range(0, len(legs), MAX_PUSH):
                    await self._push_class_legs(keys=[self.class_key(class_name)],
                                                args=[keep, self.ttl_ms, *legs[start:start + MAX_PUSH]])
        except StoreUnavailable:
            await self._rediscover()
            raise

    async def class_legs(self, class_name: str) -> list[bytes]:
        try:
            with mapped_errors("read of a class's return legs", self._where, self.failures):
                return await self._client.lrange(self.class_key(class_name), 0, -1)
        except StoreUnavailable:
            await self._rediscover()
            raise

    async def _rediscover(self) -> None:
        await rediscover_primary(self._client, self.topology)

    async def close(self) -> None:
        await self._client.aclose()
