"""Per-client rate limits on outcome reports: a token bucket per client id (the authenticated one
where authentication is on; all unauthenticated callers share one), on an injected clock.

A report beyond the client's rate is refused with RESOURCE_EXHAUSTED and counted. Buckets are
kept for the most recently seen `clients` (least recently seen forgotten first: a forgotten
client starts again with a full burst, which bounds what forgetting gives away to one burst).
"""

from __future__ import annotations

import collections
import math
import time
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True, slots=True)
class ReportLimits:
    rate_per_s: float = 0.0   # sustained reports per second per client (0: unlimited)
    burst: int = 100          # reports a client may send at once
    clients: int = 100_000    # buckets kept

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate_per_s) and self.rate_per_s >= 0):
            raise ValueError(f"report rate must be a number >= 0 per second, got {self.rate_per_s!r}")
        if self.burst < 1 or self.clients < 1:
            raise ValueError("report burst and the clients kept must be >= 1")

    @property
    def enabled(self) -> bool:
        return self.rate_per_s > 0


class ReportRateLimiter:
    def __init__(self, limits: ReportLimits, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._buckets: collections.OrderedDict[str, list[float]] = collections.OrderedDict()  # [tokens, at]
        self.limited = 0

    def allow(self, client_id: str) -> bool:
        """Take one token from the client's bucket; False (counted) when it is empty."""
        limits = self.limits
        if not limits.enabled:
            return True
        now = self._clock()
        bucket = self._buckets.get(client_id)
        if bucket is None:
            bucket = self._buckets[client_id] = [float(limits.burst), now]
            if len(self._buckets) > limits.clients:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(client_id)
            bucket[0] = min(float(limits.burst), bucket[0] + (now - bucket[1]) * limits.rate_per_s)
            bucket[1] = now
        if bucket[0] >= 1.0:
            bucket[0] -= 1.0
            return True
        self.limited += 1
        return False
