"""A link's delivery opportunities, the way Mahimahi's mm-link sees a trace.

Each opportunity lets one packet of up to `packet_bytes` (1500) cross the link at that instant;
several opportunities may share an instant. The schedule repeats with `period_ms` (mm-link wraps
around at the trace's last timestamp). Opportunities not used when they pass are lost.

Opportunity g (a global index over all repetitions) happens at
    (g // n) * period_ms + times_ms[g % n].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

PACKET_BYTES = 1500


@dataclass(frozen=True, eq=False)
class DeliverySchedule:
    times_ms: np.ndarray  # float64, non-decreasing, within [0, period_ms]
    period_ms: float
    source: str = "schedule"
    packet_bytes: int = PACKET_BYTES

    def __post_init__(self) -> None:
        if len(self.times_ms) == 0:
            raise ValueError(f"{self.source}: no delivery opportunities")
        if not (math.isfinite(self.period_ms) and self.period_ms > 0):
            raise ValueError(f"{self.source}: period must be > 0 ms, got {self.period_ms!r}")

    @property
    def opportunities(self) -> int:
        return len(self.times_ms)

    @property
    def mean_rate_bps(self) -> float:
        return self.opportunities * self.packet_bytes * 8 / (self.period_ms / 1000.0)

    def time_of(self, g: int) -> float:
        cycle, j = divmod(g, len(self.times_ms))
        return cycle * self.period_ms + float(self.times_ms[j])

    def first_at_or_after(self, t_ms: float) -> int:
        """Global index of the first opportunity at or after `t_ms` (t_ms >= 0)."""
        cycle = math.floor(t_ms / self.period_ms)
        within = t_ms - cycle * self.period_ms
        j = int(np.searchsorted(self.times_ms, within, side="left"))
        return cycle * len(self.times_ms) + j

    def packets_for(self, nbytes: int) -> int:
        return max(0, -(-int(nbytes) // self.packet_bytes))

    def transfer_ms(self, nbytes: int, start_ms: float) -> float:
        """Time from `start_ms` until `nbytes` have crossed (the last packet's opportunity)."""
        k = self.packets_for(nbytes)
        if k == 0:
            return 0.0
        g = self.first_at_or_after(start_ms) + k - 1
        return self.time_of(g) - start_ms

    def transfer_ms_many(self, nbytes: int, starts_ms: np.ndarray) -> np.ndarray:
        starts = np.asarray(starts_ms, dtype=np.float64)
        k = self.packets_for(nbytes)
        if k == 0:
            return np.zeros_like(starts)
        n = len(self.times_ms)
        cycle = np.floor(starts / self.period_ms)
        within = starts - cycle * self.period_ms
        g = cycle.astype(np.int64) * n + np.searchsorted(self.times_ms, within, side="left") + (k - 1)
        c, j = np.divmod(g, n)
        return c * self.period_ms + self.times_ms[j] - starts

    def scaled(self, factor: float) -> "DeliverySchedule":
        """Stretch time by `factor` (2.0: every transfer takes twice as long, half the rate)."""
        if not (math.isfinite(factor) and factor > 0):
            raise ValueError(f"scale factor must be > 0, got {factor!r}")
        return DeliverySchedule(self.times_ms * factor, self.period_ms * factor,
                                f"{self.source} x{factor:.3g}", self.packet_bytes)
