"""How far each client's clock is from ours, for the requests whose budget must use its send time.

A request that carries a gRPC deadline set from its SLA needs no client clock: the upload is
sla - time_remaining. When it also carries `client_send_time`, the two together measure the
client's clock offset, one sample per request:

    offset = (receive - send stamp) - (sla - left)       [ms, + = client clock behind ours]

(the headers' own one-way time is in it too: a few ms that only make the fallback below a little
conservative). A client's requests without a usable deadline then take upload = receive - send -
offset. Clients that never send a deadline get a rougher estimate from their outcome reports,
assuming the two legs are equal on average: offset = (receive - send) - (e2e - server_ms) / 2.
Deadline samples win once there are any.

Per client_id (anonymous requests are never estimated: they are not one clock), EWMA, bounded LRU.
A client's estimate is logged when first made and whenever it moves by `log_change_ms`.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass

import structlog

from modipick.runtime.identity import ANONYMOUS_CLIENT_ID

log = structlog.get_logger("modipick.selector.clocks")

SOURCES = ("deadline", "reports")


@dataclass(slots=True)
class _Offset:
    deadline_ms: float = 0.0
    deadline_n: int = 0
    reports_ms: float = 0.0
    reports_n: int = 0
    logged_ms: float = math.nan

    def value(self) -> tuple[float, str] | None:
        if self.deadline_n:
            return self.deadline_ms, "deadline"
        if self.reports_n:
            return self.reports_ms, "reports"
        return None


class ClockOffsets:
    def __init__(self, *, alpha: float = 0.1, capacity: int = 10_000, log_change_ms: float = 10.0) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"clock offset alpha must be in (0, 1], got {alpha!r}")
        if capacity < 1:
            raise ValueError(f"clock offset capacity must be >= 1, got {capacity!r}")
        self.alpha = alpha
        self.capacity = capacity
        self.log_change_ms = log_change_ms
        self._clients: collections.OrderedDict[str, _Offset] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._clients)

    def observe(self, client_id: str, offset_ms: float, source: str = "deadline") -> None:
        # the anonymous id is shared by every unauthenticated caller: no one of them may set its clock
        if not client_id or client_id == ANONYMOUS_CLIENT_ID or not math.isfinite(offset_ms):
            return
        entry = self._clients.get(client_id)
        if entry is None:
            entry = self._clients[client_id] = _Offset()
            if len(self._clients) > self.capacity:
                self._clients.popitem(last=False)
        else:
            self._clients.move_to_end(client_id)
        if source == "deadline":
            entry.deadline_n += 1
            entry.deadline_ms = offset_ms if entry.deadline_n == 1 else \
                entry.deadline_ms + self.alpha * (offset_ms - entry.deadline_ms)
        elif source == "reports":
            entry.reports_n += 1
            entry.reports_ms = offset_ms if entry.reports_n == 1 else \
                entry.reports_ms + self.alpha * (offset_ms - entry.reports_ms)
        else:
            raise ValueError(f"unknown clock offset source {source!r}; expected one of {SOURCES}")
        value, used = entry.value()  # type: ignore[misc]  # just observed: never None
        if not abs(value - entry.logged_ms) < self.log_change_ms:  # NaN (never logged) logs too
            entry.logged_ms = value
            log.info("client clock offset", client_id=client_id, clock_offset_ms=round(value, 2), source=used,
                     samples=entry.deadline_n if used == "deadline" else entry.reports_n)

    def offset(self, client_id: str) -> float | None:
        """The client's estimated offset in ms (+: its clock is behind ours), None when unknown."""
        entry = self._clients.get(client_id) if client_id else None
        found = entry.value() if entry is not None else None
        return found[0] if found else None

    def snapshot(self) -> dict[str, tuple[float, str, int]]:
        """client_id -> (offset ms, source, samples): for logs, debugging and tests."""
        out = {}
        for client_id, entry in self._clients.items():
            found = entry.value()
            if found:
                out[client_id] = (found[0], found[1], entry.deadline_n if found[1] == "deadline" else entry.reports_n)
        return out
