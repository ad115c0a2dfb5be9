"""`risk_aware`: modipick's default policy, beyond the paper (issue 7).

Per request it knows the time left after the upload, L = T_sla - T_input (from the gRPC deadline
where the client's clock is not trusted), and a distribution for the return leg R (learned online,
`modipick.core.returnleg`). For each model m with execution time E_m ~ N(mu, sigma) it computes

    P_m = P(E_m + R <= L)      (3-point Gauss-Hermite over E_m, empirical CDF of R)

and chooses the most accurate model whose miss probability 1 - P_m is at most `miss_target`;
ties and the case where no model meets the target go to the best expected effective accuracy
A(m) * P_m. No exploration on user requests: uncertain and cold models are kept measured by the
Profiler's probes and warm-ups, off the request path. A model with few samples is treated as
slower and more variable (`cold_samples`), so it is not trusted before it was measured.
"""

from __future__ import annotations

import math
import random
from typing import Sequence

from modipick.core.budget import Budget
from modipick.core.policies.base import Decision, Reason, fastest, require_models
from modipick.core.profiles import Candidate
from modipick.core.returnleg import ReturnLegEstimate

# Gauss-Hermite (probabilists') 3-point rule: nodes 0, +-sqrt(3); weights 2/3, 1/6, 1/6.
_NODES = (0.0, math.sqrt(3.0), -math.sqrt(3.0))
_WEIGHTS = (2.0 / 3.0, 1.0 / 6.0, 1.0 / 6.0)


class RiskAware:
    name = "risk_aware"

    def __init__(self, miss_target: float = 0.05, objective: str = "constrained") -> None:
        if not 0.0 <= miss_target < 1.0:
            raise ValueError(f"miss_target must be in [0, 1), got {miss_target!r}")
        if objective not in ("constrained", "expected"):
            raise ValueError(f"objective must be 'constrained' or 'expected', got {objective!r}")
        self.miss_target = miss_target
        self.objective = objective

    def meet_probability(self, m: Candidate, left_ms: float, ret: ReturnLegEstimate) -> float:
        if m.std_ms <= 0:
            return ret.cdf(left_ms - m.mean_ms)
        p = 0.0
        for node, weight in zip(_NODES, _WEIGHTS):
            p += weight * ret.cdf(left_ms - m.mean_ms - m.std_ms * node)
        return p

    def choose(self, models: Sequence[Candidate], budget: Budget, rng: random.Random) -> Decision:
        require_models(models)
        left = budget.sla_ms - budget.upload_ms
        ret = budget.return_leg or ReturnLegEstimate.exact(budget.return_ms)
        need = 1.0 - self.miss_target
        best_c = best_e = None
        best_c_key = best_e_key = None
        for m in models:
            p = self.meet_probability(m, left, ret)
            expected = m.accuracy * p
            e_key = (expected, -m.mean_ms)
            if best_e_key is None or e_key > best_e_key:
                best_e, best_e_key = m, e_key
            if self.objective == "constrained" and p >= need:
                c_key = (m.accuracy, p, -m.mean_ms)
                if best_c_key is None or c_key > best_c_key:
                    best_c, best_c_key = m, c_key
        assert best_e is not None and best_e_key is not None
        if best_c is not None:
            return Decision(best_c, Reason.BASE, base=best_c)
        if best_e_key[0] <= 0.0:
            return Decision(fastest(models), Reason.FALLBACK)
        return Decision(best_e, Reason.BASE, base=best_e)
