"""Paper 4.4's decomposition baselines, and the hindsight oracle (simulation only)."""

from __future__ import annotations

from typing import Sequence

from modipick.core.budget import Budget
from modipick.core.policies.base import Decision, Reason, Rng, better, fastest, require_models
from modipick.core.policies.modipick import ModiPick
from modipick.core.profiles import Candidate


class PureRandom:
    """Replaces stage 1: any model, uniformly."""

    name = "pure_random"

    def choose(self, models: Sequence[Candidate], budget: Budget, rng: Rng) -> Decision:
        require_models(models)
        return Decision(models[int(rng.random() * len(models))], Reason.EXPLORED,
                        probability=1.0 / len(models))


class _ExplorationSetPolicy:
    """Stages 1-2 of ModiPick, then a different stage 3."""

    name = "abstract"

    def __init__(self, threshold_ms: float = 20.0) -> None:
        self._modipick = ModiPick(threshold_ms=threshold_ms)

    def pick(self, members: list[Candidate], rng: Rng) -> tuple[Candidate, float]:
        raise NotImplementedError

    def choose(self, models: Sequence[Candidate], budget: Budget, rng: Rng) -> Decision:
        require_models(models)
        t_u, t_l = self._modipick.limits(budget)
        base = self._modipick.base_model(models, t_u, t_l)
        if base is None:
            return Decision(fastest(models), Reason.FALLBACK)
        members = self._modipick.exploration_set(models, base, t_u, t_l)
        chosen, p = self.pick(members, rng)
        reason = Reason.BASE if chosen == base else Reason.EXPLORED
        return Decision(chosen, reason, base=base, explored=len(members), probability=p)


class RelatedRandom(_ExplorationSetPolicy):
    """Replaces stage 3: uniform over M_E."""

    name = "related_random"

    def pick(self, members: list[Candidate], rng: Rng) -> tuple[Candidate, float]:
        return members[int(rng.random() * len(members))], 1.0 / len(members)


class RelatedAccurate(_ExplorationSetPolicy):
    """Replaces stage 3: the most accurate member of M_E."""

    name = "related_accurate"

    def pick(self, members: list[Candidate], rng: Rng) -> tuple[Candidate, float]:
        best = None
        for m in members:
            if better(m, best):
                best = m
        assert best is not None
        return best, 1.0


class Oracle:
    """Knows each request's real return leg and every model's real execution time. Picks the most
    accurate model that meets the SLA in hindsight, else the one that is really fastest. An upper
    bound for effective accuracy: it cannot be beaten on the same draws."""

    name = "oracle"

    def choose(self, models: Sequence[Candidate], budget: Budget, rng: Rng) -> Decision:
        require_models(models)
        h = budget.hindsight
        if h is None:
            raise ValueError("the oracle needs hindsight (simulation only)")
        sla, upload, back = budget.sla_ms, budget.upload_ms, h.return_ms
        best = None
        quickest, quickest_ms = None, float("inf")
        for m in models:
            t = h.exec_ms.get(m.name, m.mean_ms)
            # Same expression as Budget.real_e2e_ms, so "fits" agrees with how requests are scored.
            if upload + t + back <= sla and better(m, best):
                best = m
            if t < quickest_ms:
                quickest, quickest_ms = m, t
        if best is None:
            assert quickest is not None
            return Decision(quickest, Reason.FALLBACK)
        return Decision(best, Reason.ORACLE, base=best)
