"""`risk_aware`: the policy beyond the paper; see docs/policy.md.

Per request it knows the time left after the upload, L = T_sla - T_input (live: the remaining
gRPC deadline, which needs no trust in the client's clock), and a distribution for the return leg
R (`Budget.return_leg`, learned online by `modipick.core.returnleg`; without one, the paper's
R = T_input). For each model m with execution time E_m ~ N(mu, sigma) it computes

    P_m = P(E_m + R <= L)      (3-point Gauss-Hermite over E_m, empirical CDF of R)

Live, E_m also carries the Selector's serving overhead: its mean is in L (Budget.upload_ms) and its
spread (Budget.overhead_std_ms) widens sigma to sqrt(sigma^2 + spread^2); with models that take
about a millisecond the overhead's spread is as wide as the models' differences.

and then, by `objective`:
  "expected"     (default) the model with the best expected effective accuracy A(m) * P_m (a miss
                 scores 0, so this is the per-request Bayes decision for effective accuracy);
  "constrained"  the most accurate model whose miss probability 1 - P_m is at most `miss_target`,
                 and where none is, the best A(m) * P_m.
Ties: higher value, then the faster model, then higher accuracy, then name. A model with
P_m < `min_probability` is not offered (default 0: every chance counts, the simulator's metric; a
live Selector passes 0.5, the paper's "likely to finish": a miss answers at the SLA's end, too late
for the device's own model, where declining at once leaves the device its time). When no model is
left (every P_m = 0, or below the floor) it falls back to the fastest model with `on_device` set.

No exploration on user requests: uncertain, cold and drifted models are kept measured by the
Profiler's probes and warm-ups, off the request path (a Selector offers only "eligible" models).

`choose` is a hot path. For a *tuple* of candidates (the Selector's profile cache passes the same
tuple between refreshes) the models sorted by accuracy are kept until a different tuple arrives.
Models are visited from the most accurate down and the scan stops once A(m) is below the best
A * P found (A * P <= A), so a typical decision evaluates only a few models.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from typing import NamedTuple, Sequence

from modipick.core.budget import Budget
from modipick.core.policies.base import Decision, Reason, Rng, fastest, require_models
from modipick.core.profiles import Candidate
from modipick.core.returnleg import ReturnLegEstimate

# Gauss-Hermite (probabilists') 3-point rule: nodes 0, +-sqrt(3) sigma; weights 2/3, 1/6, 1/6
# (hence P = (4 F(x) + F(x - spread) + F(x + spread)) / 6 below).
_SQRT3 = math.sqrt(3.0)
_log = math.log
_BASE = Reason.BASE
_FALLBACK = Reason.FALLBACK
OBJECTIVES = ("constrained", "expected")


class _Prepared(NamedTuple):
    models: Sequence[Candidate]
    rows: tuple[tuple[Candidate, float, float, float], ...]  # (m, A, mu, sqrt(3)*sigma), best A first
    fastest: Candidate
    decisions: dict[int, Decision]  # id(m) -> Decision(m, BASE, base=m), made once: frozen, so requests share it


def _prepare(models: Sequence[Candidate]) -> _Prepared:
    require_models(models)
    order = sorted(models, key=lambda m: (-m.accuracy, m.mean_ms, m.name))
    return _Prepared(models, tuple((m, m.accuracy, m.mean_ms, _SQRT3 * m.std_ms) for m in order),
                     fastest(models), {})


def _base_decision(prep: _Prepared, m: Candidate) -> Decision:
    """Decision(m, BASE, base=m), built once per model of `prep`: a frozen dataclass sets each field
    through object.__setattr__, which costs a request more than looking it up."""
    decision = prep.decisions.get(id(m))
    if decision is None:
        decision = prep.decisions[id(m)] = Decision(m, _BASE, base=m)
    return decision


def meet_probability(offsets: Sequence[float], x: float, spread: float, centre: float = 0.0,
                     log_scale: bool = False) -> float:
    """P(E + R <= L) for E ~ N(mu, sigma) and R = centre + an offset drawn from `offsets` (sorted;
    with `log_scale`, log R = centre + offset), where x = L - mu and spread = sqrt(3) * sigma
    (3-point Gauss-Hermite over E)."""
    n = len(offsets)
    if log_scale:
        hi_x = x + spread
        if hi_x <= 0.0:
            return 0.0
        hi = bisect_right(offsets, _log(hi_x) - centre)
        if hi == 0:
            return 0.0
        lo_x = x - spread
        lo = bisect_right(offsets, _log(lo_x) - centre) if lo_x > 0.0 else 0
        if lo == hi:  # all three nodes in one step of the empirical CDF
            return lo / n
        mid = bisect_right(offsets, _log(x) - centre) if x > 0.0 else 0
        return (4 * mid + lo + hi) / (6.0 * n)
    x -= centre
    hi = bisect_right(offsets, x + spread)
    if hi == 0:
        return 0.0
    lo = bisect_right(offsets, x - spread)
    if lo == hi:
        return lo / n
    return (4 * bisect_right(offsets, x) + lo + hi) / (6.0 * n)


class RiskAware:
    name = "risk_aware"
    _prepared: _Prepared | None = None

    def __init__(self, miss_target: float = 0.05, objective: str = "expected", min_probability: float = 0.0) -> None:
        if not 0.0 <= miss_target < 1.0:
            raise ValueError(f"miss_target must be in [0, 1), got {miss_target!r}")
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be 'constrained' or 'expected', got {objective!r}")
        if not 0.0 <= min_probability <= 1.0:
            raise ValueError(f"min_probability must be in [0, 1], got {min_probability!r}")
        self.miss_target = float(miss_target)
        self.objective = objective
        self.min_probability = float(min_probability)

    def meet_probability(self, m: Candidate, left_ms: float, ret: ReturnLegEstimate,
                         overhead_std_ms: float = 0.0) -> float:
        """P_m for a request with `left_ms` after the upload and return-leg estimate `ret` (and a
        serving overhead of that spread on top of the model's)."""
        spread = _SQRT3 * math.sqrt(m.std_ms * m.std_ms + overhead_std_ms * overhead_std_ms)
        return meet_probability(ret.offsets, left_ms - m.mean_ms, spread, ret.centre, ret.log_scale)

    def choose(self, models: Sequence[Candidate], budget: Budget, rng: Rng) -> Decision:
        prep = self._prepared
        if prep is None or prep.models is not models:
            prep = _prepare(models)
            if type(models) is tuple:
                self._prepared = prep
        left = budget.sla_ms - budget.upload_ms
        ret = budget.return_leg
        if ret is None:
            offsets: Sequence[float] = (0.0,)
            centre, log_scale = budget.return_ms, False
        else:
            offsets, centre, log_scale = ret.offsets, ret.centre, ret.log_scale
        n = len(offsets)
        if not log_scale:  # the common case inlined below: R = centre + offset
            left -= centre
        need = 1.0 - self.miss_target if self.objective == "constrained" else 2.0  # 2: never
        extra_var = budget.overhead_std_ms * budget.overhead_std_ms
        floor = self.min_probability
        best = None
        best_e = best_mu = -1.0
        chosen = None
        chosen_acc = chosen_p = chosen_mu = 0.0
        for m, acc, mu, spread in prep.rows:
            if chosen is not None and acc < chosen_acc:
                break
            if acc < best_e and chosen is None and need > 1.0:
                break  # expected objective: A * P <= A cannot beat the best any more
            x = left - mu
            if extra_var:
                spread = _SQRT3 * math.sqrt(m.std_ms * m.std_ms + extra_var)
            if log_scale:
                p = meet_probability(offsets, x, spread, centre, True)
                if p <= 0.0:
                    continue
            else:
                hi = bisect_right(offsets, x + spread)
                if hi == 0:
                    continue
                lo = bisect_right(offsets, x - spread)
                p = lo / n if lo == hi else (4 * bisect_right(offsets, x) + lo + hi) / (6.0 * n)
            if p < floor:
                continue
            e = acc * p
            if e > best_e or (e == best_e and mu < best_mu):
                best, best_e, best_mu = m, e, mu
            if p >= need and (chosen is None or p > chosen_p or (p == chosen_p and mu < chosen_mu)):
                chosen, chosen_acc, chosen_p, chosen_mu = m, acc, p, mu
        if chosen is not None:
            return _base_decision(prep, chosen)
        if best is None or best_e <= 0.0:
            return Decision(prep.fastest, _FALLBACK, on_device=True)
        return _base_decision(prep, best)
