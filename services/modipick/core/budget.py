"""The time a request has left for inference, as a value object.

Paper eq. 1: T_budget = T_sla - 2 * T_input. The return leg is an *estimate*: by default the
paper's assumption that it equals the upload leg, but callers may pass their own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping

if TYPE_CHECKING:
    from modipick.core.returnleg import ReturnLegEstimate


@dataclass(frozen=True, slots=True)
class Hindsight:
    """What only a simulator knows: the real return leg and every model's real execution time."""

    return_ms: float
    exec_ms: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.return_ms) and self.return_ms >= 0):
            raise ValueError(f"real return time must be >= 0 ms, got {self.return_ms!r}")


_INF = math.inf


@dataclass(frozen=True, slots=True)
class Budget:
    sla_ms: float
    upload_ms: float = 0.0
    return_estimate_ms: float | None = None  # None: the paper's assumption, equal to upload
    hindsight: Hindsight | None = None
    return_leg: "ReturnLegEstimate | None" = None  # a learned distribution (risk_aware); None: use return_ms
    # The spread of server time spent outside the model (a live Selector's serving overhead, whose
    # mean is counted in upload_ms): risk_aware adds it to every model's own.
    overhead_std_ms: float = 0.0

    def __post_init__(self) -> None:
        # `0 <= x < inf` is `isfinite(x) and x >= 0` (NaN fails every comparison), in fewer steps:
        # a Selector builds a Budget per request
        if not 0.0 < self.sla_ms < _INF:
            raise ValueError(f"SLA must be a positive number of ms, got {self.sla_ms!r}")
        if not 0.0 <= self.upload_ms < _INF:
            raise ValueError(f"upload time must be >= 0 ms, got {self.upload_ms!r}")
        if not 0.0 <= self.overhead_std_ms < _INF:
            raise ValueError(f"overhead spread must be >= 0 ms, got {self.overhead_std_ms!r}")
        r = self.return_estimate_ms
        if r is not None and not 0.0 <= r < _INF:
            raise ValueError(f"return estimate must be >= 0 ms, got {r!r}")

    @property
    def return_ms(self) -> float:
        return self.upload_ms if self.return_estimate_ms is None else self.return_estimate_ms

    @property
    def execution_ms(self) -> float:
        """T_U: the hard limit for server-side time (may be negative: nothing can fit)."""
        r = self.return_estimate_ms  # inlined `return_ms`: this runs once per decision
        return self.sla_ms - self.upload_ms - (self.upload_ms if r is None else r)

    def real_e2e_ms(self, exec_ms: float) -> float:
        """Hindsight end-to-end time of a request whose model ran `exec_ms`: upload + exec + real
        return. Simulators score SLA attainment with this, and the oracle decides with it, so both
        round the same way and the oracle's bound holds exactly."""
        if self.hindsight is None:
            raise ValueError("real end-to-end time needs hindsight (simulation only)")
        return self.upload_ms + exec_ms + self.hindsight.return_ms
