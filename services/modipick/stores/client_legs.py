"""Per-client return-leg state in Redis: one key per client, with a TTL, read by the replica that
decides for the client and written by the replicas that learn its reports.

Key: `<ns>:{client:<id>}:leg`, a string holding the client's state (modipick.core.returnleg_state)
followed by the legs reported since it was written, <= 1 KB of Redis memory in all. The braces are
a Redis Cluster hash tag: every key of one client sits in one slot, so each script, which touches
one key, runs on one node. Idle clients expire (`ttl_s`, renewed by every write).

A report appends its leg (one script call, no read of the state: a replica needs to hold nothing
of the client to learn its report); a replica that holds what is stored sends the new state with
it, which replaces the value in the same call. Once `fold_legs` legs are pending, the script
answers with the stored value, and that replica folds them into a new state: a compare-and-swap
on the state's generation (bytes [2, 6), GENERATION_OFFSET) that keeps the legs appended since it
read. Two replicas folding at once: one wins, the other's legs are in the winner's or still
pending, so none is lost. A client's first report finds no state and creates it (`swap` from
none).

A network class's reported legs (modipick.core.class_legs) are shared in one list per class,
`<ns>:{class:<name>}:legs`, the newest `keep` of them, with the same TTL: replicas append a batch
with one script call and read the list whole (see modipick.selector.client_legs for when).
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import redis.asyncio as aioredis

from modipick.core.returnleg_state import (GENERATION_BYTES, GENERATION_OFFSET, PENDING_LEG_BYTES, POINTS_OFFSET,
                                           SKETCH_POINTS, VERSION, generation_of, pending_legs, state_bytes)
from modipick.stores.errors import StoreFailureCounts, StoreUnavailable
from modipick.stores.redis_clients import async_client, rediscover_primary
from modipick.stores.redis_codec import mapped_errors
from modipick.stores.redis_options import RedisOptions, Timeouts, parse_target, redact

DEFAULT_TTL_S = 6 * 3600.0
DEFAULT_FOLD_LEGS = 4  # legs pending after a state before the replica whose write got there folds them
# A stored value at most this long takes <= 1 KB of Redis memory with its key and expiry (jemalloc's
# 896-byte class; measured with MEMORY USAGE). Legs a value may carry after its state: past them a
# report folds before it appends, whatever happens to the folds.
MAX_VALUE_BYTES = 864
MAX_PENDING_LEGS = (MAX_VALUE_BYTES - state_bytes(SKETCH_POINTS)) // PENDING_LEG_BYTES
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


# KEYS: the client's key. ARGV: the leg; optionally the generation and pending legs of the value
# the writer holds, and the state it made of that value and the leg. Formatted with the TTL in ms,
# the pending legs that ask for a fold and the pending legs at most. The answer is one integer
# where it can be (cheaper for redis-py to parse than an array): WRITTEN_REPLACED + 256 x the new
# generation when that state replaced the value (the writer held what is stored); else
# WRITTEN_APPENDED + 4 x the legs pending now + 256 x the state's generation, or, when those are
# `fold_at` or more, the stored value after a byte saying whether the leg was appended (not with
# `max_pending` legs); WRITTEN_NOTHING when no state of this version is stored.
WRITTEN_NOTHING, WRITTEN_APPENDED, WRITTEN_REPLACED = 0, 1, 2


def write_leg_script(ttl_ms: int, fold_at: int, max_pending: int) -> str:
    return f"""
local function generation(s)
  local a, b, c, d = string.byte(s, {GENERATION_OFFSET + 1}, {GENERATION_OFFSET + GENERATION_BYTES})
  return a + 256 * b + 65536 * c + 16777216 * d
end
local value = redis.call('GET', KEYS[1])
if not value or #value < {state_bytes(0)} or string.byte(value, 1) ~= {VERSION} then return {WRITTEN_NOTHING} end
local points = string.byte(value, {POINTS_OFFSET + 1}) + 256 * string.byte(value, {POINTS_OFFSET + 2})
local pending = math.floor((#value - {state_bytes(0)} - {state_bytes(1) - state_bytes(0)} * points) / {PENDING_LEG_BYTES})
if ARGV[4] and generation(value) == tonumber(ARGV[2]) and pending == tonumber(ARGV[3]) then
  redis.call('SET', KEYS[1], ARGV[4], 'PX', {ttl_ms})
  return {WRITTEN_REPLACED} + 256 * generation(ARGV[4])
end
if pending >= {max_pending} then return '\\0' .. value end
-- SET of the whole value, not APPEND: Redis gives an appended string twice the room it needs
value = value .. ARGV[1]
redis.call('SET', KEYS[1], value, 'PX', {ttl_ms})
pending = pending + 1
if pending >= {fold_at} then return '\\1' .. value end
return {WRITTEN_APPENDED} + 4 * pending + 256 * generation(value)
"""

# KEYS: the client's key. ARGV: the generation bytes of the value read, its length, the new state,
# the TTL in ms. Returns 1 + the legs appended since the read (kept after the new state) when the
# new state replaced what was read, 0 when another state was written in between.
FOLD_LEGS = f"""
local cur = redis.call('GET', KEYS[1])
local rest = ''
if cur then
  if string.sub(cur, {GENERATION_OFFSET + 1}, {GENERATION_OFFSET + GENERATION_BYTES}) ~= ARGV[1] then return 0 end
  rest = string.sub(cur, tonumber(ARGV[2]) + 1)
end
redis.call('SET', KEYS[1], ARGV[3] .. rest, 'PX', ARGV[4])
return 1 + #rest / {PENDING_LEG_BYTES}
"""

# KEYS: the class's list. ARGV: how many to keep, the TTL in ms, then the legs to append.
PUSH_CLASS_LEGS = """
redis.call('RPUSH', KEYS[1], unpack(ARGV, 3))
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[1]), -1)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""
MAX_PUSH = 1000  # legs per script call (Lua's unpack has a stack limit)


class Written(NamedTuple):
    stored: bool          # False: no state of this version is stored, or `max_pending` legs are
    generation: int       # the stored state's generation (0: none)
    pending: int          # legs pending after the state
    value: bytes | None   # the stored value, to fold (`fold_at` legs pending or more)
    replaced: bool        # the writer's state replaced the value (it held what was stored)


class Held(NamedTuple):
    """What a writer holds of a client: the generation and pending legs of the stored value it
    read (or wrote), and the state it made of that and the new leg."""
    generation: int
    pending: int
    state: bytes


class ClientLegStore(Protocol):
    async def load(self, client_id: str) -> bytes | None: ...

    async def swap(self, client_id: str, expected: bytes | None, state: bytes) -> tuple[bool, bytes | None]:
        """(True, None): stored. (False, current): someone wrote first; `current` is what is stored now."""
        ...

    async def write_leg(self, client_id: str, leg: bytes, held: Held | None = None) -> Written:
        """`held.state` in place of the client's stored value if that is still what `held` says; else
        `leg` appended to it (unless none is stored, or MAX_PENDING_LEGS are: then fold first)."""
        ...

    async def fold(self, client_id: str, read: bytes, state: bytes) -> int | None:
        """Replace the value `read` with `state`, keeping the legs appended after it (how many: the
        answer), unless another state was written in between (None)."""
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
                 ttl_s: float = DEFAULT_TTL_S, fold_legs: int = DEFAULT_FOLD_LEGS, topology: str = "server",
                 where: str = "redis") -> None:
        if not ttl_s > 0:
            raise ValueError(f"ttl_s must be > 0, got {ttl_s!r}")
        if not 1 <= fold_legs <= MAX_PENDING_LEGS:
            raise ValueError(f"fold_legs must be in [1, {MAX_PENDING_LEGS}], got {fold_legs!r}")
        self._client = client
        self.topology = topology
        self._where = where
        self.failures = StoreFailureCounts()
        # braces out: a hash-tagged namespace ("{modipick}") would put every client in one slot
        self.namespace = namespace.replace("{", "").replace("}", "")
        self.ttl_ms = int(ttl_s * 1000)
        self._swap = client.register_script(SWAP_STATE)  # EVALSHA; reloaded if the server forgot it
        self._write_leg = client.register_script(write_leg_script(self.ttl_ms, fold_legs, MAX_PENDING_LEGS))
        self._fold = client.register_script(FOLD_LEGS)
        self._push_class_legs = client.register_script(PUSH_CLASS_LEGS)

    @classmethod
    def from_url(cls, url: str, options: RedisOptions | None = None, *, ttl_s: float = DEFAULT_TTL_S,
                 fold_legs: int = DEFAULT_FOLD_LEGS) -> "RedisClientLegStore":
        """The client comes from the profile store's factory (credentials, TLS, timeouts, retries
        of `options`), in bytes mode: the state is binary."""
        options = options if options is not None else RedisOptions(timeouts=DEFAULT_TIMEOUTS)
        client = async_client(url, options, decode_responses=False)
        return cls(client, namespace=options.namespace, ttl_s=ttl_s, fold_legs=fold_legs,
                   topology=parse_target(url).kind, where=redact(url))

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

    async def write_leg(self, client_id: str, leg: bytes, held: Held | None = None) -> Written:
        args = [leg]
        if held is not None:
            args.extend(held)
        try:
            with mapped_errors("write of a client's return leg", self._where, self.failures):
                answer = await self._write_leg(keys=[self.key(client_id)], args=args)
        except StoreUnavailable:
            await self._rediscover()
            raise
        if type(answer) is int:
            outcome = answer & 3
            return Written(outcome != WRITTEN_NOTHING, answer >> 8, (answer >> 2) & 63, None,
                           outcome == WRITTEN_REPLACED)
        value = answer[1:]
        return Written(answer[0] == 1, generation_of(value), pending_legs(value), value, False)

    async def fold(self, client_id: str, read: bytes, state: bytes) -> int | None:
        try:
            with mapped_errors("fold of a client's return legs", self._where, self.failures):
                answer = await self._fold(keys=[self.key(client_id)],
                                          args=[generation_bytes(read), len(read), state, self.ttl_ms])
        except StoreUnavailable:
            await self._rediscover()
            raise
        return answer - 1 if answer else None

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
