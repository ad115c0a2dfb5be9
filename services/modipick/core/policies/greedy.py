"""Paper 3.2: static greedy (decided at development time against T_sla) and dynamic greedy
(decided per request against T_budget = T_sla - 2 * T_input)."""

from __future__ import annotations

from typing import Sequence

from modipick.core.budget import Budget
from modipick.core.policies.base import Decision, Reason, Rng, better, fastest, require_models
from modipick.core.profiles import Candidate


def _most_accurate_within(models: Sequence[Candidate], limit_ms: float) -> Decision:
    require_models(models)
    best = None
    for m in models:
        if m.mean_ms <= limit_ms and better(m, best):
            best = m
    if best is None:
        return Decision(fastest(models), Reason.FALLBACK)
    return Decision(best, Reason.BASE, base=best)


class StaticGreedy:
    name = "static_greedy"

    def choose(self, models: Sequence[Candidate], budget: Budget, rng: Rng) -> Decision:
        return _most_accurate_within(models, budget.sla_ms)


class DynamicGreedy:
    name = "dynamic_greedy"

    def choose(self, models: Sequence[Candidate], budget: Budget, rng: Rng) -> Decision:
        return _most_accurate_within(models, budget.execution_ms)
