"""Redis profile store: every write is one Lua script call (atomic on the server), all profiles are
read by one Lua call. Any number of processes may write and read concurrently."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager

import redis
import redis.exceptions as rex

from modipick.core import ModelProfile
from modipick.stores import lua
from modipick.stores.base import (Observation, ReturnLegPage, ReturnLegSample, check_alpha, check_keep,
                                   check_leg_samples, check_observations, check_reseed, check_state,
                                   sorted_profiles)
from modipick.stores.errors import (StoreAccessDenied, StoreDataError, StoreError, StoreUnavailable)
from modipick.stores.redis_options import RedisOptions, connection_pool, redact


@contextmanager
def mapped_errors(operation: str, where: str) -> Iterator[None]:
    """redis-py errors become modipick.stores.errors here, and nowhere else."""
    try:
        yield
    except (rex.AuthenticationError, rex.AuthorizationError, rex.NoPermissionError,
            rex.AuthenticationWrongNumberOfArgsError) as error:
        raise StoreAccessDenied(f"Redis at {where} refused {operation}: {error}") from error
    except (rex.ConnectionError, rex.TimeoutError, rex.ReadOnlyError, OSError) as error:
        raise StoreUnavailable(f"Redis at {where} unavailable during {operation}: {error}") from error
    except rex.ResponseError as error:
        if str(error).startswith(("NOAUTH", "WRONGPASS")):
            raise StoreAccessDenied(f"Redis at {where} refused {operation}: {error}") from error
        if "WRONGTYPE" in str(error):
            raise StoreDataError(f"Redis at {where}: a profile key has the wrong type ({operation}): {error}") from error
        raise StoreError(f"Redis at {where} failed {operation}: {error}") from error
    except rex.RedisError as error:
        raise StoreError(f"Redis at {where} failed {operation}: {error}") from error


class RedisProfileStore:
    def __init__(self, url: str, options: RedisOptions | None = None, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.options = options or RedisOptions()
        self._where = redact(url)
        self._clock = clock
        self._client = redis.Redis(connection_pool=connection_pool(url, self.options))
        ns = self.options.namespace
        self._index = f"{ns}:models"
        self._prefix = f"{ns}:profile:"
        # Registered once; redis-py sends EVALSHA and reloads a script the server forgot (restart).
        script = self._client.register_script
        self._load_all = script(lua.LOAD_ALL)
        self._register = script(lua.REGISTER)
        self._deregister = script(lua.DEREGISTER)
        self._observe_many = script(lua.OBSERVE_MANY)
        self._record_outcome = script(lua.RECORD_OUTCOME)
        self._set_state = script(lua.SET_STATE)
        self._reseed = script(lua.RESEED)
        self._append_legs = script(lua.APPEND_RETURN_LEGS)
        self.legs_key = f"{ns}:return_legs"  # one stream: one order for every reader

    def __repr__(self) -> str:
        return f"RedisProfileStore({self._where!r}, namespace={self.options.namespace!r})"

    def key(self, name: str, version: int) -> str:
        return f"{self._prefix}{name}:{int(version)}"

    def ping(self) -> None:
        with mapped_errors("PING", self._where):
            self._client.ping()

    def load_all(self) -> list[ModelProfile]:
        with mapped_errors("load_all", self._where):
            rows = self._load_all(keys=[self._index])
        return sorted_profiles([_decode(row) for row in rows])

    def register(self, profile: ModelProfile) -> bool:
        check_state(profile.state)
        p = profile
        args = [repr(p.declared_accuracy), p.state, p.name, p.version, repr(p.mean_ms), repr(p.var_ms2),
                p.samples, repr(p.updated_at), p.correct, p.served]
        with mapped_errors("register", self._where):
            return bool(self._register(keys=[self.key(p.name, p.version), self._index], args=args))

    def deregister(self, name: str, version: int) -> bool:
        with mapped_errors("deregister", self._where):
            return bool(self._deregister(keys=[self.key(name, version), self._index]))

    def observe_many(self, observations: Iterable[Observation], *, alpha: float,
                     now: float | None = None) -> int:
        alpha = check_alpha(alpha)
        batch = check_observations(observations)
        now = self._clock() if now is None else float(now)
        step = self.options.max_batch
        return sum(self._observe_chunk(batch[start:start + step], alpha, now)
                   for start in range(0, len(batch), step))

    def _observe_chunk(self, batch: list[tuple[str, int, float]], alpha: float, now: float) -> int:
        slots: dict[tuple[str, int], int] = {}
        args: list[object] = [repr(alpha), repr(now)]
        for name, version, ms in batch:
            slot = slots.setdefault((name, version), len(slots) + 1)
            args += (slot, repr(ms))
        keys = [self.key(name, version) for name, version in slots]
        with mapped_errors("observe_many", self._where):
            return int(self._observe_many(keys=keys, args=args))

    def record_outcome(self, name: str, version: int, correct: bool) -> bool:
        with mapped_errors("record_outcome", self._where):
            return bool(self._record_outcome(keys=[self.key(name, version)], args=[int(bool(correct))]))

    def set_state(self, name: str, version: int, state: str) -> bool:
        check_state(state)
        with mapped_errors("set_state", self._where):
            return bool(self._set_state(keys=[self.key(name, version)], args=[state]))

    def reseed(self, name: str, version: int, mean_ms: float, var_ms2: float, now: float | None = None) -> bool:
        mean, var = check_reseed(mean_ms, var_ms2)
        at = self._clock() if now is None else float(now)
        with mapped_errors("reseed", self._where):
            return bool(self._reseed(keys=[self.key(name, version)], args=[repr(mean), repr(var), repr(at)]))

    def append_return_legs(self, samples: Sequence[ReturnLegSample], *, keep: int) -> int:
        batch = check_leg_samples(samples)
        keep = check_keep(keep)
        step = self.options.max_batch
        appended = 0
        for start in range(0, len(batch), step):
            args: list[object] = [keep]
            for s in batch[start:start + step]:
                args += (s.client_id, repr(float(s.upload_ms)), repr(float(s.return_ms)),
                         "" if s.basis_ms is None else repr(float(s.basis_ms)), s.owner)
            with mapped_errors("append_return_legs", self._where):
                appended += int(self._append_legs(keys=[self.legs_key], args=args))
        return appended

    def read_return_legs(self, after: str, count: int) -> ReturnLegPage:
        with mapped_errors("read_return_legs", self._where):
            reply = self._client.xread({self.legs_key: after or "0"}, count=max(1, int(count)))
        rows = reply[0][1] if reply else []
        entries, skipped = [], 0
        for entry_id, fields in rows:
            sample = _decode_leg(fields)
            if sample is None:
                skipped += 1
            else:
                entries.append((entry_id, sample))
        return ReturnLegPage(entries, rows[-1][0] if rows else (after or "0"), len(rows), skipped)

    def close(self) -> None:
        self._client.close()
        self._client.connection_pool.disconnect()


def _decode_leg(fields: dict[str, str]) -> ReturnLegSample | None:
    """None for an entry that is not a return leg (written by hand, or a future format)."""
    try:
        basis = fields.get("b", "")
        (sample,) = check_leg_samples([ReturnLegSample(
            fields["c"], float(fields["u"]), float(fields["r"]), float(basis) if basis else None, fields.get("o", ""))])
    except (KeyError, ValueError):
        return None
    return sample


def _decode(row: list[str]) -> ModelProfile:
    fields = dict(zip(row[::2], row[1::2]))
    try:
        return ModelProfile(
            name=fields["name"], version=int(fields["version"]),
            declared_accuracy=float(fields["declared_accuracy"]), mean_ms=float(fields["mean_ms"]),
            var_ms2=float(fields["var_ms2"]), samples=int(fields["samples"]),
            updated_at=float(fields["updated_at"]), correct=int(fields["correct"]),
            served=int(fields["served"]), state=check_state(fields["state"]))
    except (KeyError, ValueError) as error:
        raise StoreDataError(f"unreadable profile {fields.get('name', '?')}:{fields.get('version', '?')}: "
                             f"{type(error).__name__}: {error}") from None
