"""Which outcome labels count towards a model's measured accuracy.

Measured accuracy is correct / served over the labels counted (modipick.core.profiles). Unbounded,
one client flooding wrong labels drags it to 0 for everyone. With a bound of b percentage points
(`max_shift_pct`), a client's label counts only while the client's counted labels for that model
stay within b/100 of all labels counted for it (at least one label per client):

    k_c + 1 <= max(1, b/100 * (N + 1))

Removing (or flipping) a client's k_c labels out of N moves correct / served by at most
k_c / N <= b/100, so no client moves any model's measured accuracy by more than b points once
N >= 100/b; all unauthenticated callers are one client (modipick.runtime.identity). N starts from
the model's stored count when this Profiler first sees the model, and the per-client counts are
this Profiler's (a restart gives every client a fresh allowance of b/100 of N).

`trusted`: when set, only those clients' labels count at all. Labels not counted are counted by
reason ("capped", "untrusted") for the metrics; the report's return leg is kept either way.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass

ModelKey = tuple[str, int]


@dataclass(frozen=True)
class AccuracyBounds:
    max_shift_pct: float = 0.0                 # 0: no bound
    trusted: frozenset[str] | None = None      # None: every client's labels count
    clients_per_model: int = 100_000           # client counts kept per model (oldest first forgotten)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.max_shift_pct) and 0.0 <= self.max_shift_pct <= 100.0):
            raise ValueError(f"the accuracy bound is in percentage points [0, 100], got {self.max_shift_pct!r}")
        if self.clients_per_model < 1:
            raise ValueError("clients_per_model must be >= 1")

    @property
    def enabled(self) -> bool:
        return self.max_shift_pct > 0 or self.trusted is not None


class LabelGate:
    def __init__(self, bounds: AccuracyBounds) -> None:
        self.bounds = bounds
        self._share = bounds.max_shift_pct / 100.0
        self._totals: dict[ModelKey, int] = {}
        self._clients: dict[ModelKey, collections.OrderedDict[str, int]] = {}
        self.counts: collections.Counter[str] = collections.Counter()  # counted | capped | untrusted

    def knows(self, model: ModelKey) -> bool:
        return model in self._totals or self._share == 0

    def seed(self, model: ModelKey, served: int) -> None:
        """The model's label count as stored, before this Profiler counted any."""
        self._totals.setdefault(model, max(0, served))

    def why_not(self, model: ModelKey, client_id: str) -> str:
        """"" when the client's label for the model counts (and is counted here), else the reason."""
        trusted = self.bounds.trusted
        if trusted is not None and client_id not in trusted:
            self.counts["untrusted"] += 1
            return "untrusted"
        if self._share > 0:
            total = self._totals.get(model, 0)
            clients = self._clients.get(model)
            if clients is None:
                clients = self._clients[model] = collections.OrderedDict()
            own = clients.get(client_id, 0)
            if own + 1 > max(1.0, self._share * (total + 1)):
                self.counts["capped"] += 1
                return "capped"
            clients[client_id] = own + 1
            if len(clients) > self.bounds.clients_per_model:
                clients.popitem(last=False)
            self._totals[model] = total + 1
        self.counts["counted"] += 1
        return ""

    def forget(self, model: ModelKey) -> None:
        """The model is not registered (its count could not be recorded)."""
        self._totals.pop(model, None)
        self._clients.pop(model, None)
