"""What the blocking and the asyncio Redis stores share: the key layout, the Lua scripts' arguments,
decoding replies, and the one place redis-py errors become modipick.stores.errors."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import redis.exceptions as rex

from modipick.core import ModelProfile
from modipick.stores import lua
from modipick.stores.base import ReturnLegPage, ReturnLegSample, check_leg_samples, check_state
from modipick.stores.errors import (StoreAccessDenied, StoreDataError, StoreError, StoreFailureCounts,
                                    StoreUnavailable, StoreWriteUnconfirmed)

# attribute name on the store -> script source; each is registered once per store
SCRIPTS = {
    "_load_all": lua.LOAD_ALL, "_register": lua.REGISTER, "_deregister": lua.DEREGISTER,
    "_observe_many": lua.OBSERVE_MANY, "_record_outcome": lua.RECORD_OUTCOME, "_set_state": lua.SET_STATE,
    "_reseed": lua.RESEED, "_append_legs": lua.APPEND_RETURN_LEGS,
}


@dataclass(frozen=True, slots=True)
class KeyLayout:
    """Every key of one namespace. On a Cluster the namespace carries a hash tag ("{modipick}"), so
    all of them share one slot and each script's KEYS (and the keys LOAD_ALL reads from the
    index) are on one node."""

    namespace: str

    @property
    def index(self) -> str:
        return f"{self.namespace}:models"

    @property
    def legs(self) -> str:
        return f"{self.namespace}:return_legs"  # one stream: one order for every reader

    def profile(self, name: str, version: int) -> str:
        return f"{self.namespace}:profile:{name}:{int(version)}"


def register_args(p: ModelProfile) -> list[object]:
    return [repr(p.declared_accuracy), p.state, p.name, p.version, repr(p.mean_ms), repr(p.var_ms2),
            p.samples, repr(p.updated_at), p.correct, p.served, p.input_size]


def observe_calls(layout: KeyLayout, batch: list[tuple[str, int, float]], alpha: float, now: float,
                  max_batch: int) -> Iterator[tuple[list[str], list[object]]]:
    """(KEYS, ARGV) of OBSERVE_MANY per chunk of at most max_batch observations."""
    for start in range(0, len(batch), max_batch):
        slots: dict[tuple[str, int], int] = {}
        args: list[object] = [repr(alpha), repr(now)]
        for name, version, ms in batch[start:start + max_batch]:
            slot = slots.setdefault((name, version), len(slots) + 1)
            args += (slot, repr(ms))
        yield [layout.profile(name, version) for name, version in slots], args


def append_calls(batch: Sequence[ReturnLegSample], keep: int, max_batch: int) -> Iterator[list[object]]:
    """ARGV of APPEND_RETURN_LEGS per chunk of at most max_batch samples."""
    for start in range(0, len(batch), max_batch):
        args: list[object] = [keep]
        for s in batch[start:start + max_batch]:
            args += (s.client_id, repr(float(s.upload_ms)), repr(float(s.return_ms)),
                     "" if s.basis_ms is None else repr(float(s.basis_ms)), s.owner)
        yield args


def leg_page(reply: list, after: str) -> ReturnLegPage:
    rows = reply[0][1] if reply else []
    entries, skipped = [], 0
    for entry_id, fields in rows:
        sample = decode_leg(fields)
        if sample is None:
            skipped += 1
        else:
            entries.append((entry_id, sample))
    return ReturnLegPage(entries, rows[-1][0] if rows else (after or "0"), len(rows), skipped)


def decode_leg(fields: dict[str, str]) -> ReturnLegSample | None:
    """None for an entry that is not a return leg (written by hand, or a future format)."""
    try:
        basis = fields.get("b", "")
        (sample,) = check_leg_samples([ReturnLegSample(
            fields["c"], float(fields["u"]), float(fields["r"]), float(basis) if basis else None, fields.get("o", ""))])
    except (KeyError, ValueError):
        return None
    return sample


def decode_profile(row: list[str]) -> ModelProfile:
    fields = dict(zip(row[::2], row[1::2]))
    try:
        return ModelProfile(
            name=fields["name"], version=int(fields["version"]),
            declared_accuracy=float(fields["declared_accuracy"]), mean_ms=float(fields["mean_ms"]),
            var_ms2=float(fields["var_ms2"]), samples=int(fields["samples"]),
            updated_at=float(fields["updated_at"]), correct=int(fields["correct"]),
            served=int(fields["served"]), state=check_state(fields["state"]),
            input_size=int(fields.get("input_size", 0)))  # absent: written before sizes were declared
    except (KeyError, ValueError) as error:
        raise StoreDataError(f"unreadable profile {fields.get('name', '?')}:{fields.get('version', '?')}: "
                             f"{type(error).__name__}: {error}") from None


def check_acks(acked: int, wanted: int, operation: str, where: str) -> None:
    if acked < wanted:
        raise StoreWriteUnconfirmed(f"Redis at {where}: {operation} reached {acked} of {wanted} replicas "
                                    f"in time; a failover may lose it")


@contextmanager
def mapped_errors(operation: str, where: str, counts: StoreFailureCounts | None = None) -> Iterator[None]:
    """redis-py errors become modipick.stores.errors here, and nowhere else; each is counted."""
    try:
        yield
    except StoreError as error:
        if counts is not None:
            counts.count(error)
        raise
    except Exception as error:
        mapped = _mapped(error, operation, where)
        if mapped is None:
            raise
        if counts is not None:
            counts.count(mapped)
        raise mapped from error


def _mapped(error: Exception, operation: str, where: str) -> StoreError | None:
    if isinstance(error, (rex.AuthenticationError, rex.AuthorizationError, rex.NoPermissionError,
                          rex.AuthenticationWrongNumberOfArgsError)):
        return StoreAccessDenied(f"Redis at {where} refused {operation}: {error}")
    # a Cluster failing over or resharding answers CLUSTERDOWN / TRYAGAIN: transient, like a primary down
    if isinstance(error, (rex.ConnectionError, rex.TimeoutError, rex.ReadOnlyError, rex.ClusterDownError,
                          rex.TryAgainError, rex.MasterDownError, OSError)):
        return StoreUnavailable(f"Redis at {where} unavailable during {operation}: {error}")
    if isinstance(error, rex.ResponseError):
        if "WAIT cannot be used with replica" in str(error):  # demoted between the write and its WAIT
            return StoreWriteUnconfirmed(f"Redis at {where}: {operation} ran on a primary that is now a "
                                         f"replica; a failover may lose it")
        if str(error).startswith(("NOAUTH", "WRONGPASS")):
            return StoreAccessDenied(f"Redis at {where} refused {operation}: {error}")
        if "WRONGTYPE" in str(error):
            return StoreDataError(f"Redis at {where}: a profile key has the wrong type ({operation}): {error}")
        return StoreError(f"Redis at {where} failed {operation}: {error}")
    if isinstance(error, (rex.ClusterError, rex.RedisClusterException)):  # e.g. no node serves a slot
        return StoreUnavailable(f"Redis at {where} unavailable during {operation}: {error}")
    if isinstance(error, rex.RedisError):
        return StoreError(f"Redis at {where} failed {operation}: {error}")
    return None
