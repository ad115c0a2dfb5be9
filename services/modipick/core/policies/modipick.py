"""Paper 3.3: ModiPick's three stages.

T_U = the request's execution budget, T_L = T_U - T_threshold.

1. Base model (eq. 2): the most accurate m with mu+sigma < T_U and mu-sigma < T_L. When none
   qualifies, the fastest model by mean is returned at once (reason FALLBACK, no exploration).
2. Exploration set M_E: models whose mu lies in [T_L - h, T_L + h], h = |mu(base) - T_L| + sigma(base),
   and whose mu+sigma < T_U. Membership is tested as |mu - T_L| <= h, which in floating point is
   exactly true for the base model (h is that same distance plus sigma >= 0); testing
   T_L - h <= mu <= T_L + h instead can drop the base by one rounding step and leave M_E empty.
   So the base model always belongs and M_E is never empty.
3. Utility (eq. 3) U(m) = A(m) * (T_U - (mu+sigma)) / |T_L - mu|, drawn with Pr(m) = U(m) / sum U (eq. 4).
   The numerator uses the very sum tested in stage 2, so it is > 0 for every member.
   |T_L - mu| = 0 would make U infinite: the distance is floored at `min_distance_ms` (default 1 us),
   so a model sitting exactly on T_L gets a very large but finite weight and probabilities still sum to 1.
   A member with A = 0 gets probability 0; where every utility is 0 (every member has A = 0) the
   draw is uniform over M_E.

Ties in stage 1 go to the faster model, then by name (see `better`).

`choose` is the per-request hot path (benchmarks/policy_decision.py). Given a *tuple* of
candidates (immutable all the way down) it keeps, until it is handed a different tuple, what does
not depend on the budget: the models in stage-1 order with mu+sigma and mu-sigma, the fastest model,
and the smallest mu+sigma and mu-sigma (a budget below them cannot have a base: O(1) fallback).
Callers get this by passing the same tuple between profile refreshes (the Selector's profile cache
and the simulator should). Any other sequence takes the one-pass path. Both paths give the same decision
for the same input and RNG state (tests/core/test_properties.py checks it); the stage methods
below compute the same things step by step for the decomposition baselines and for tests.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

from modipick.core.budget import Budget
from modipick.core.policies.base import Decision, Reason, Rng, fastest, require_models
from modipick.core.profiles import Candidate

_BASE = Reason.BASE
_EXPLORED = Reason.EXPLORED
_FALLBACK = Reason.FALLBACK


def stage_one(models: Sequence[Candidate], t_u: float, t_l: float) -> Candidate | None:
    """Eq. 2: the most accurate model with mu+sigma < T_U and mu-sigma < T_L, or None.
    Ties by lower mean, then by name (the order of `base.better`)."""
    base = None
    b_acc = b_mu = 0.0
    for m in models:
        _, _, acc, mu, sd = m
        if mu + sd < t_u and mu - sd < t_l:
            if (base is None or acc > b_acc
                    or (acc == b_acc and (mu < b_mu or (mu == b_mu and m.name < base.name)))):
                base, b_acc, b_mu = m, acc, mu
    return base


class Prepared(NamedTuple):
    """Budget-independent data for one tuple of candidates (see the module docstring)."""

    models: tuple[Candidate, ...]
    stage_one_order: tuple[tuple[Candidate, float, float], ...]  # (m, mu+sd, mu-sd), best first
    rows: tuple[tuple[Candidate, float, float, float], ...]      # (m, A, mu, mu+sd), input order
    fastest: Candidate
    min_upper: float  # min mu+sd: T_U at or below it leaves no base
    min_lower: float  # min mu-sd: T_L at or below it leaves no base


def prepare(models: tuple[Candidate, ...]) -> Prepared:
    require_models(models)
    # Stable sort on the key of `base.better`: full ties keep input order, as stage_one does.
    order = sorted(models, key=lambda m: (-m.accuracy, m.mean_ms, m.name))
    stage_order = tuple((m, m.mean_ms + m.std_ms, m.mean_ms - m.std_ms) for m in order)
    rows = tuple((m, m.accuracy, m.mean_ms, m.mean_ms + m.std_ms) for m in models)
    return Prepared(models, stage_order, rows, fastest(models),
                    min(r[1] for r in stage_order), min(r[2] for r in stage_order))


class ModiPick:
    name = "modipick"
    _prepared: Prepared | None = None

    def __init__(self, threshold_ms: float = 20.0, min_distance_ms: float = 1e-3) -> None:
        if not threshold_ms >= 0:
            raise ValueError(f"threshold_ms must be >= 0, got {threshold_ms!r}")
        if not min_distance_ms > 0:
            raise ValueError(f"min_distance_ms must be > 0, got {min_distance_ms!r}")
        self.threshold_ms = float(threshold_ms)
        self.min_distance_ms = float(min_distance_ms)

    # Stages 1 and 2 are shared with the decomposition baselines (paper 4.4).
    def base_model(self, models: Sequence[Candidate], t_u: float, t_l: float) -> Candidate | None:
        return stage_one(models, t_u, t_l)

    def exploration_set(self, models: Sequence[Candidate], base: Candidate, t_u: float,
                        t_l: float) -> list[Candidate]:
        half = abs(base.mean_ms - t_l) + base.std_ms
        return [m for m in models if abs(m.mean_ms - t_l) <= half and m.mean_ms + m.std_ms < t_u]

    def utility(self, m: Candidate, t_u: float, t_l: float) -> float:
        """Eq. 3 with the floored distance."""
        d = abs(t_l - m.mean_ms)
        return m.accuracy * (t_u - (m.mean_ms + m.std_ms)) / (d if d > self.min_distance_ms
                                                              else self.min_distance_ms)

    def probabilities(self, members: Sequence[Candidate], t_u: float, t_l: float) -> list[float]:
        """Eq. 4 over `members` (non-empty)."""
        utilities = [self.utility(m, t_u, t_l) for m in members]
        total = sum(utilities)
        if total <= 0:
            return [1.0 / len(members)] * len(members)
        return [u / total for u in utilities]

    def limits(self, budget: Budget) -> tuple[float, float]:
        t_u = budget.execution_ms
        return t_u, t_u - self.threshold_ms

    def choose(self, models: Sequence[Candidate], budget: Budget, rng: Rng) -> Decision:
        prep = self._prepared
        if prep is None or prep.models is not models:
            if type(models) is not tuple:
                return self._choose_once(models, budget, rng)
            prep = self._prepared = prepare(models)
        t_u = budget.execution_ms
        t_l = t_u - self.threshold_ms
        if t_u <= prep.min_upper or t_l <= prep.min_lower:
            return Decision(prep.fastest, _FALLBACK)
        for base, upper, lower in prep.stage_one_order:
            if upper < t_u and lower < t_l:
                break
        else:
            return Decision(prep.fastest, _FALLBACK)

        half = abs(base[3] - t_l) + base[4]
        floor = self.min_distance_ms
        members: list[Candidate] = []
        utilities: list[float] = []
        total = 0.0
        for m, acc, mu, upper in prep.rows:
            d = abs(mu - t_l)
            if d <= half and upper < t_u:
                u = acc * (t_u - upper) / (d if d > floor else floor)
                members.append(m)
                utilities.append(u)
                total += u
        return self._draw(base, members, utilities, total, rng)

    def _choose_once(self, models: Sequence[Candidate], budget: Budget, rng: Rng) -> Decision:
        """The same three stages in two passes, for sequences that are not cached."""
        if not models:
            require_models(models)
        t_u = budget.execution_ms
        t_l = t_u - self.threshold_ms
        base = stage_one(models, t_u, t_l)
        if base is None:
            return Decision(fastest(models), _FALLBACK)

        half = abs(base[3] - t_l) + base[4]
        floor = self.min_distance_ms
        members: list[Candidate] = []
        utilities: list[float] = []
        total = 0.0
        for m in models:
            _, _, acc, mu, sd = m
            d = abs(mu - t_l)
            if d <= half:
                upper = mu + sd
                if upper < t_u:
                    u = acc * (t_u - upper) / (d if d > floor else floor)
                    members.append(m)
                    utilities.append(u)
                    total += u
        return self._draw(base, members, utilities, total, rng)

    @staticmethod
    def _draw(base: Candidate, members: list[Candidate], utilities: list[float], total: float,
              rng: Rng) -> Decision:
        """Stage 3: one draw with Pr = U / sum U (uniform where every U is 0)."""
        n = len(members)
        if n == 1:
            return Decision(base, _BASE, base, 1)
        x = rng.random()
        if total > 0:
            x *= total
            # The last member with U > 0 catches x landing past the rounded cumulative sum.
            i = n - 1
            while utilities[i] <= 0:
                i -= 1
            acc_u = 0.0
            for j, u in enumerate(utilities):
                acc_u += u
                if x < acc_u:
                    i = j
                    break
            chosen, p = members[i], utilities[i] / total
        else:
            chosen, p = members[int(x * n)], 1.0 / n
        return Decision(chosen, _BASE if chosen is base else _EXPLORED, base, n, p)
