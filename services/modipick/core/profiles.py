"""Per-model latency/accuracy profiles and the EWMA that learns them.

`ModelProfile` is the stored record (what the Redis and in-memory stores hold). `Candidate` is
the lean, immutable view a policy decides on; building it once per profile refresh keeps the
per-request decision to a few attribute reads per model.

EWMA of mean and variance (Finch, "Incremental calculation of weighted mean and variance"):
    delta = x - mean
    mean' = mean + alpha * delta
    var'  = (1 - alpha) * (var + alpha * delta**2)
The first sample sets mean = x, var = 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import NamedTuple

MEASURED_ACCURACY_MIN_SERVED = 30  # outcome reports needed before measured accuracy replaces declared


class Candidate(NamedTuple):
    name: str
    version: int
    accuracy: float  # percent, 0..100
    mean_ms: float
    std_ms: float

    @property
    def key(self) -> str:
        return f"{self.name}:{self.version}"


@dataclass(frozen=True, slots=True)
class ModelProfile:
    name: str
    version: int = 1
    declared_accuracy: float = 0.0  # percent
    mean_ms: float = 0.0
    var_ms2: float = 0.0
    samples: int = 0
    updated_at: float = 0.0  # seconds since the epoch of the injected clock
    correct: int = 0
    served: int = 0
    state: str = "eligible"  # loading | warming | eligible | failing (see modipick.v1.ModelState)
    input_size: int = 0  # px of the square input the model takes (0: not declared, takes any input)

    def __post_init__(self) -> None:
        for label, value in (("declared_accuracy", self.declared_accuracy), ("mean_ms", self.mean_ms),
                             ("var_ms2", self.var_ms2)):
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{self.name}: {label} must be a finite number >= 0, got {value!r}")
        if self.declared_accuracy > 100:
            raise ValueError(f"{self.name}: declared_accuracy is a percentage, got {self.declared_accuracy!r}")
        for label, count in (("samples", self.samples), ("correct", self.correct), ("served", self.served)):
            if count < 0:
                raise ValueError(f"{self.name}: {label} must be >= 0, got {count!r}")
        if self.input_size < 0:
            raise ValueError(f"{self.name}: input_size must be >= 0 px, got {self.input_size!r}")
        if self.correct > self.served:
            raise ValueError(f"{self.name}: correct ({self.correct}) exceeds served ({self.served})")
        if not math.isfinite(self.updated_at):
            raise ValueError(f"{self.name}: updated_at must be finite, got {self.updated_at!r}")

    @property
    def key(self) -> str:
        return f"{self.name}:{self.version}"

    @property
    def std_ms(self) -> float:
        return math.sqrt(self.var_ms2)

    @property
    def measured_accuracy(self) -> float | None:
        return 100.0 * self.correct / self.served if self.served else None

    @property
    def accuracy(self) -> float:
        """A(m): measured once enough outcomes were reported (paper 2.3), declared before."""
        if self.served >= MEASURED_ACCURACY_MIN_SERVED:
            return 100.0 * self.correct / self.served
        return self.declared_accuracy

    def candidate(self) -> Candidate:
        return Candidate(self.name, self.version, self.accuracy, self.mean_ms, self.std_ms)

    @classmethod
    def from_stats(cls, name: str, accuracy: float, mean_ms: float, std_ms: float, *, version: int = 1,
                   samples: int = 1, updated_at: float = 0.0) -> "ModelProfile":
        return cls(name=name, version=version, declared_accuracy=accuracy, mean_ms=mean_ms,
                   var_ms2=std_ms * std_ms, samples=samples, updated_at=updated_at)


def ewma_step(mean: float, var: float, samples: int, x: float, alpha: float) -> tuple[float, float]:
    """One EWMA step on (mean, variance); the single formula every store uses (Lua mirrors it)."""
    if samples <= 0:
        return x, 0.0
    delta = x - mean
    return mean + alpha * delta, (1.0 - alpha) * (var + alpha * delta * delta)


def ewma_update(profile: ModelProfile, observed_ms: float, *, alpha: float, now: float) -> ModelProfile:
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha must be in (0, 1], got {alpha!r}")
    if not math.isfinite(observed_ms) or observed_ms < 0:
        raise ValueError(f"observation must be a finite number of ms >= 0, got {observed_ms!r}")
    mean, var = ewma_step(profile.mean_ms, profile.var_ms2, profile.samples, observed_ms, alpha)
    return replace(profile, mean_ms=mean, var_ms2=var, samples=profile.samples + 1, updated_at=now)


def record_outcome(profile: ModelProfile, correct: bool) -> ModelProfile:
    return replace(profile, correct=profile.correct + int(correct), served=profile.served + 1)
