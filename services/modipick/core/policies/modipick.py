"""Paper 3.3: ModiPick's three stages.

T_U = the request's execution budget, T_L = T_U - T_threshold.

1. Base model (eq. 2): the most accurate m with mu+sigma < T_U and mu-sigma < T_L. When none
   qualifies, the fastest model by mean is returned at once (reason FALLBACK, no exploration).
2. Exploration set M_E: models whose mu lies in [T_L - h, T_L + h], h = |mu(base) - T_L| + sigma(base),
   and whose mu+sigma < T_U. The base model always belongs (it satisfies both), so M_E is never empty.
3. Utility (eq. 3) U(m) = A(m) * (T_U - (mu+sigma)) / |T_L - mu|, drawn with Pr(m) = U(m) / sum U (eq. 4).
   |T_L - mu| = 0 would make U infinite: the distance is floored at `min_distance_ms` (default 1 us),
   so a model sitting exactly on T_L gets a very large but finite weight and probabilities still sum to 1.
   Where every utility is 0 (every member has A = 0) the draw is uniform over M_E.

Ties in stage 1 go to the faster model, then by name (see `better`).
"""

from __future__ import annotations

import random
from typing import Sequence

from modipick.core.budget import Budget
from modipick.core.policies.base import Decision, Reason, better, fastest, require_models
from modipick.core.profiles import Candidate


class ModiPick:
    name = "modipick"

    def __init__(self, threshold_ms: float = 20.0, min_distance_ms: float = 1e-3) -> None:
        if not threshold_ms >= 0:
            raise ValueError(f"threshold_ms must be >= 0, got {threshold_ms!r}")
        if not min_distance_ms > 0:
            raise ValueError(f"min_distance_ms must be > 0, got {min_distance_ms!r}")
        self.threshold_ms = float(threshold_ms)
        self.min_distance_ms = float(min_distance_ms)

    # Stages 1 and 2 are shared with the decomposition baselines (paper 4.4).
    def base_model(self, models: Sequence[Candidate], t_u: float, t_l: float) -> Candidate | None:
        base = None
        for m in models:
            if m.mean_ms + m.std_ms < t_u and m.mean_ms - m.std_ms < t_l and better(m, base):
                base = m
        return base

    def exploration_set(self, models: Sequence[Candidate], base: Candidate, t_u: float,
                        t_l: float) -> list[Candidate]:
        half = abs(base.mean_ms - t_l) + base.std_ms
        lo, hi = t_l - half, t_l + half
        return [m for m in models if lo <= m.mean_ms <= hi and m.mean_ms + m.std_ms < t_u]

    def probabilities(self, members: Sequence[Candidate], t_u: float, t_l: float) -> list[float]:
        floor = self.min_distance_ms
        utilities = [m.accuracy * (t_u - m.mean_ms - m.std_ms) / max(abs(t_l - m.mean_ms), floor)
                     for m in members]
        total = sum(utilities)
        if total <= 0:
            return [1.0 / len(members)] * len(members)
        return [u / total for u in utilities]

    def limits(self, budget: Budget) -> tuple[float, float]:
        t_u = budget.execution_ms
        return t_u, t_u - self.threshold_ms

    def choose(self, models: Sequence[Candidate], budget: Budget, rng: random.Random) -> Decision:
        require_models(models)
        t_u, t_l = self.limits(budget)
        base = self.base_model(models, t_u, t_l)
        if base is None:
            return Decision(fastest(models), Reason.FALLBACK)
        members = self.exploration_set(models, base, t_u, t_l)
        if len(members) == 1:
            return Decision(base, Reason.BASE, base=base, explored=1)
        probs = self.probabilities(members, t_u, t_l)
        x = rng.random()
        chosen, p = members[-1], probs[-1]
        acc = 0.0
        for m, pm in zip(members, probs):
            acc += pm
            if x < acc:
                chosen, p = m, pm
                break
        reason = Reason.BASE if chosen == base else Reason.EXPLORED
        return Decision(chosen, reason, base=base, explored=len(members), probability=p)
