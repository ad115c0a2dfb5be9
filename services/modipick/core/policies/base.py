"""The one interface every selection policy implements, and what a decision reports."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol, Sequence

from modipick.core.budget import Budget
from modipick.core.profiles import Candidate


class Reason(str, enum.Enum):
    BASE = "base"          # the stage-1 (or greedy) choice
    EXPLORED = "explored"  # drawn from the exploration set, not the base model
    FALLBACK = "fallback"  # nothing fits the budget: the fastest model, best effort
    ORACLE = "oracle"      # hindsight (simulation only)


@dataclass(frozen=True, slots=True)
class Decision:
    model: Candidate
    reason: Reason
    base: Candidate | None = None
    explored: int = 0        # size of the exploration set M_E (0 where the policy has none)
    probability: float = 1.0  # probability with which `model` was drawn
    # The policy judged the request better left to the device's own model (a live Selector answers
    # RUN_ON_DEVICE); without it a FALLBACK goes to the device only when `model` cannot fit T_U.
    on_device: bool = False

    @property
    def fits(self) -> bool:
        return self.reason is not Reason.FALLBACK


def runs_on_device(decision: Decision, budget: Budget) -> bool:
    """Whether a live server answers RUN_ON_DEVICE: the policy said so, or it fell back to a model
    that cannot fit the hard limit T_U."""
    return decision.on_device or (decision.reason is Reason.FALLBACK and decision.model.mean_ms > budget.execution_ms)


class Rng(Protocol):
    """The draws a policy may make: random.Random, or the Selector's per-request RNG that seeds
    itself at its first draw (modipick.selector.policies.RequestRandom)."""

    def random(self) -> float:
        """The next float in [0, 1)."""
        ...

    def uniform(self, a: float, b: float) -> float:
        """A float between a and b."""
        ...


class Policy(Protocol):
    name: str

    def choose(self, models: Sequence[Candidate], budget: Budget, rng: Rng) -> Decision:
        """Pick one of `models` (never empty) for a request with `budget`."""
        ...


def fastest(models: Sequence[Candidate]) -> Candidate:
    """Lowest mean; ties by higher accuracy, then name, so the choice is stable."""
    best = models[0]
    for m in models:
        if m.mean_ms < best.mean_ms or (m.mean_ms == best.mean_ms and
                                         (m.accuracy, best.name) > (best.accuracy, m.name)):
            best = m
    return best


def better(a: Candidate, b: Candidate | None) -> bool:
    """Is `a` a better pick than `b` on accuracy, ties broken by speed then name?"""
    if b is None:
        return True
    if a.accuracy != b.accuracy:
        return a.accuracy > b.accuracy
    if a.mean_ms != b.mean_ms:
        return a.mean_ms < b.mean_ms
    return a.name < b.name


def require_models(models: Sequence[Candidate]) -> None:
    if not models:
        raise ValueError("no models to choose from")
