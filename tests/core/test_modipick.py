import math
import random
from collections import Counter

import pytest

from modipick.core import Budget, Candidate
from modipick.core.policies import DynamicGreedy, ModiPick, Reason


def c(name, acc, mu, sd=0.0):
    return Candidate(name, 1, acc, mu, sd)


# Paper Figure 4 in numbers, with T_U = 100 and T_L = 80 (threshold 20, no network):
M3 = c("m3", 80, 70, 5)    # meets both limits: the base
M1 = c("m1", 75, 85, 2)    # mu - sd = 83 >= T_L: not a base, but inside T_E and under T_U
M2 = c("m2", 60, 88, 3)    # likewise
M4 = c("m4", 90, 98, 5)    # mu + sd = 103 >= T_U: never
M5 = c("m5", 50, 60, 0)    # a base candidate, but mu = 60 lies outside T_E = [65, 95]
FIG4 = (M5, M3, M1, M4, M2)
FIG4_BUDGET = Budget(sla_ms=100.0)
FIG4_UTILITY = {"m3": 80 * 25 / 10, "m1": 75 * 13 / 5, "m2": 60 * 9 / 8}


def choose(models, budget, seed=0, **params):
    return ModiPick(**params).choose(models, budget, random.Random(seed))


def test_limits_are_the_budget_and_the_budget_minus_the_threshold():
    assert ModiPick(threshold_ms=20).limits(Budget(sla_ms=150.0, upload_ms=25.0)) == (100.0, 80.0)
    assert ModiPick(threshold_ms=0).limits(Budget(sla_ms=150.0, upload_ms=25.0)) == (100.0, 100.0)
    assert ModiPick(threshold_ms=5).limits(Budget(sla_ms=150.0, upload_ms=25.0,
                                                  return_estimate_ms=0.0)) == (125.0, 120.0)


def test_stage_one_is_the_most_accurate_model_meeting_both_limits():
    assert ModiPick().base_model(FIG4, 100.0, 80.0) is M3


def test_stage_one_constraints_are_strict():
    p = ModiPick()
    below = c("below", 10, 1, 0)
    # hard limit: mu + sd == T_U is out (T_L = T_U so the soft limit cannot bite)
    assert p.base_model([c("hard", 90, 95, 5), below], 100.0, 100.0) is below
    assert p.base_model([c("hard", 90, 94.999, 5), below], 100.0, 100.0).name == "hard"
    # soft limit: mu - sd == T_L is out (T_U far away)
    assert p.base_model([c("soft", 90, 85, 5), below], 1000.0, 80.0) is below
    assert p.base_model([c("soft", 90, 84.999, 5), below], 1000.0, 80.0).name == "soft"


def test_stage_two_keeps_models_inside_the_range_and_under_the_hard_limit():
    members = ModiPick().exploration_set(FIG4, M3, 100.0, 80.0)
    assert members == [M3, M1, M2]  # input order kept; m4 over T_U, m5 outside T_E = [65, 95]


def test_stage_two_range_edges_are_inclusive():
    base = c("base", 80, 70, 5)   # T_E = [65, 95]
    lo, hi = c("lo", 50, 65, 0), c("hi", 50, 95, 0)
    out_lo, out_hi = c("out_lo", 50, 64.99, 0), c("out_hi", 50, 95.01, 0)
    members = ModiPick().exploration_set([base, lo, hi, out_lo, out_hi], base, 100.0, 80.0)
    assert [m.name for m in members] == ["base", "lo", "hi"]


def test_stage_three_probabilities_are_eq3_normalised_by_eq4():
    p = ModiPick()
    probs = p.probabilities([M3, M1, M2], 100.0, 80.0)
    total = sum(FIG4_UTILITY.values())
    assert probs == pytest.approx([FIG4_UTILITY[n] / total for n in ("m3", "m1", "m2")], rel=1e-12)
    assert math.fsum(probs) == pytest.approx(1.0)


def test_choose_reports_base_exploration_set_size_and_probability():
    total = sum(FIG4_UTILITY.values())
    seen = Counter()
    rng = random.Random(11)
    policy = ModiPick()
    n = 20_000
    for _ in range(n):
        d = policy.choose(FIG4, FIG4_BUDGET, rng)
        assert d.base is M3 and d.explored == 3
        assert d.probability == pytest.approx(FIG4_UTILITY[d.model.name] / total)
        assert d.reason is (Reason.BASE if d.model is M3 else Reason.EXPLORED)
        seen[d.model.name] += 1
    assert set(seen) == {"m3", "m1", "m2"}
    for name, u in FIG4_UTILITY.items():
        p = u / total
        assert abs(seen[name] / n - p) < 4 * math.sqrt(p * (1 - p) / n)


def test_no_eligible_model_falls_back_to_the_fastest_without_drawing():
    models = [c("a", 80, 40, 1), c("b", 60, 25, 1), c("c", 70, 30, 1)]
    rng = random.Random(1)
    state = rng.getstate()
    d = ModiPick().choose(models, Budget(sla_ms=20.0), rng)
    assert d.model.name == "b" and d.reason is Reason.FALLBACK and not d.fits
    assert d.base is None and d.explored == 0 and d.probability == 1.0
    assert rng.getstate() == state


def test_negative_budget_falls_back(table2):
    d = choose(table2, Budget(sla_ms=50.0, upload_ms=60.0))
    assert d.reason is Reason.FALLBACK and d.model.name == "MobileNetV1 0.25"


def test_every_model_eligible_bases_on_the_most_accurate_of_all(table2):
    t_u, t_l = 10_000.0, 9_980.0
    assert all(m.mean_ms + m.std_ms < t_u and m.mean_ms - m.std_ms < t_l for m in table2)
    d = choose(table2, Budget(sla_ms=t_u))
    assert d.base.name == "NasNet Large"
    # T_E is centred on T_L with the base's distance as half-width, so it reaches down exactly to
    # the base: only the models at least as slow (the NasNet twins) are explored.
    members = ModiPick().exploration_set(table2, d.base, t_u, t_l)
    assert d.explored == len(members) == 2
    assert {m.name for m in members} == {"NasNet Large", "NasNet Fictional"}


def test_stage_one_ties_go_to_the_faster_model_then_the_name():
    p = ModiPick()
    slow, quick = c("slow", 70, 30, 1), c("quick", 70, 10, 1)
    assert p.base_model([slow, quick], 100.0, 80.0) is quick
    zeta, alpha = c("zeta", 70, 10, 1), c("alpha", 70, 10, 1)
    assert p.base_model([zeta, alpha], 100.0, 80.0) is alpha
    assert p.base_model([alpha, zeta], 100.0, 80.0) is alpha


def test_tied_utilities_draw_evenly():
    twins = [c("a", 70, 50, 1), c("b", 70, 50, 1)]
    rng = random.Random(2)
    seen = Counter(ModiPick().choose(twins, Budget(sla_ms=100.0), rng).model.name for _ in range(4000))
    assert abs(seen["a"] - 2000) < 4 * math.sqrt(1000)


def test_sigma_zero_and_threshold_zero_base_equals_dynamic_greedy(table2):
    exact = tuple(m._replace(std_ms=0.0) for m in table2)
    policy = ModiPick(threshold_ms=0.0)
    for budget_ms in range(1, 200):
        b = Budget(sla_ms=budget_ms + 0.5)  # never exactly on a mean
        greedy = DynamicGreedy().choose(exact, b, random.Random(0))
        t_u, t_l = policy.limits(b)
        base = policy.base_model(exact, t_u, t_l)
        if greedy.reason is Reason.FALLBACK:
            assert base is None
        else:
            assert base is greedy.model


@pytest.mark.parametrize("container", [list, tuple])
def test_sigma_zero_base_is_kept_in_the_exploration_set_despite_rounding(container):
    # 30 - (30 - 3.21) != 3.21 in binary floating point: a range test written as
    # T_L - h <= mu <= T_L + h dropped this base and then divided by zero.
    m = c("m", 49.7, 3.21, 0.0)
    d = choose(container([m]), Budget(sla_ms=50.0), threshold_ms=20.0)
    assert d.model is m and d.reason is Reason.BASE and d.explored == 1
    twin = c("twin", 10.0, 3.21, 0.0)
    d = choose(container([m, twin]), Budget(sla_ms=50.0), threshold_ms=20.0)
    assert d.base is m and d.explored == 2


def test_threshold_zero_explores_only_below_the_hard_limit():
    # T_U = T_L = 100; base mu = 70 -> T_E = [40, 130], cut at mu + sd < 100.
    models = [c("base", 80, 70, 0), c("near", 85, 99, 0.5), c("over", 99, 99.5, 0.5), c("far", 60, 39, 0)]
    p = ModiPick(threshold_ms=0.0)
    t_u, t_l = p.limits(Budget(sla_ms=100.0))
    assert t_u == t_l == 100.0
    base = p.base_model(models, t_u, t_l)
    assert base.name == "near"   # with T_L = T_U the soft limit adds nothing: 98.5 < 100
    assert [m.name for m in p.exploration_set(models, base, t_u, t_l)] == ["near"]
    members = p.exploration_set(models, models[0], t_u, t_l)
    assert [m.name for m in members] == ["base", "near"]


def test_threshold_equal_to_on_device_time_keeps_the_base_below_the_soft_limit():
    on_device_ms = 100.0  # T_D: the largest threshold the paper allows
    models = [c("fast", 60, 45, 1), c("slow", 90, 80, 1)]
    budget = Budget(sla_ms=150.0)
    wide = ModiPick(threshold_ms=on_device_ms)
    assert wide.limits(budget) == (150.0, 50.0)
    d = wide.choose(models, budget, random.Random(0))
    # slow: 81 < T_U but 79 >= T_L, so only fast is a base; T_E = [44, 56] leaves slow out.
    assert d.model.name == "fast" and d.reason is Reason.BASE and d.explored == 1
    d0 = ModiPick(threshold_ms=0.0).choose(models, budget, random.Random(0))
    assert d0.base.name == "slow"


def test_a_model_exactly_on_the_soft_limit_gets_a_floored_distance():
    on = c("on", 70, 80, 1)       # |T_L - mu| = 0
    other = c("other", 60, 75, 1)  # base? no: on is more accurate and meets both limits
    p = ModiPick()
    assert p.base_model([on, other], 100.0, 80.0) is on
    members = p.exploration_set([on, other], on, 100.0, 80.0)
    assert members == [on]        # h = 0 + 1: other (75) is outside [79, 81]
    probs = p.probabilities([on, other], 100.0, 80.0)
    u_on, u_other = 70 * 19 / 1e-3, 60 * 24 / 5
    assert probs == pytest.approx([u_on / (u_on + u_other), u_other / (u_on + u_other)])
    assert all(0 < q < 1 for q in probs) and math.fsum(probs) == pytest.approx(1.0)
    coarse = ModiPick(min_distance_ms=2.0).probabilities([on, other], 100.0, 80.0)
    assert coarse[0] == pytest.approx((70 * 19 / 2) / (70 * 19 / 2 + u_other))


def test_a_zero_distance_member_is_drawn_without_dividing_by_zero():
    base = c("base", 80, 70, 5)       # T_E = [65, 95]
    on = c("on", 60, 80, 0)           # exactly on T_L
    rng = random.Random(4)
    draws = [ModiPick().choose([base, on], Budget(sla_ms=100.0), rng) for _ in range(200)]
    assert {d.explored for d in draws} == {2}
    assert sum(d.model is on for d in draws) > 190  # U(on) = 60 * 20 / 0.001 dwarfs U(base) = 200


@pytest.mark.parametrize("floor", [0.0, -1.0, math.nan])
def test_min_distance_must_be_positive(floor):
    with pytest.raises(ValueError, match="min_distance_ms"):
        ModiPick(min_distance_ms=floor)


@pytest.mark.parametrize("threshold", [-0.1, math.nan])
def test_threshold_must_not_be_negative(threshold):
    with pytest.raises(ValueError, match="threshold_ms"):
        ModiPick(threshold_ms=threshold)


def test_a_single_member_is_the_base_without_drawing():
    rng = random.Random(9)
    state = rng.getstate()
    d = ModiPick().choose([c("only", 70, 50, 1), c("too_slow", 90, 200, 1)], Budget(sla_ms=100.0), rng)
    assert d.model.name == "only" and d.reason is Reason.BASE and d.explored == 1 and d.probability == 1.0
    assert rng.getstate() == state


def test_zero_accuracy_members_are_never_drawn_while_others_have_utility():
    base, zero = c("base", 80, 70, 5), c("zero", 0, 85, 2)
    p = ModiPick()
    assert p.probabilities([base, zero], 100.0, 80.0) == [1.0, 0.0]
    rng = random.Random(0)
    assert all(p.choose([base, zero], FIG4_BUDGET, rng).model is base for _ in range(500))


def test_all_zero_accuracy_draws_uniformly():
    models = [c("a", 0, 70, 5), c("b", 0, 85, 2), c("c", 0, 88, 3)]
    p = ModiPick()
    assert p.probabilities(models, 100.0, 80.0) == pytest.approx([1 / 3] * 3)
    rng = random.Random(6)
    seen = Counter()
    for _ in range(3000):
        d = p.choose(models, FIG4_BUDGET, rng)
        assert d.probability == pytest.approx(1 / 3) and d.explored == 3
        seen[d.model.name] += 1
    assert all(abs(seen[n] - 1000) < 4 * math.sqrt(3000 * 2 / 9) for n in "abc")


def test_nasnet_fictional_is_explored_in_proportion_to_accuracy(table2):
    # T_U = 300 - 2 * 50 = 200, T_L = 180: only the two NasNets lie within T_E = [112.25, 247.75].
    d = choose(table2, Budget(sla_ms=300.0, upload_ms=50.0))
    assert d.base.name == "NasNet Large" and d.explored == 2
    rng = random.Random(8)
    n = 10_000
    fictional = sum(ModiPick().choose(table2, Budget(sla_ms=300.0, upload_ms=50.0), rng).model.name
                    == "NasNet Fictional" for _ in range(n))
    p = 50.0 / (50.0 + 82.6)
    assert abs(fictional / n - p) < 4 * math.sqrt(p * (1 - p) / n)


def test_no_models_is_an_error():
    with pytest.raises(ValueError, match="no models"):
        ModiPick().choose([], FIG4_BUDGET, random.Random(0))


def test_same_seed_same_decisions(table2):
    budgets = [Budget(sla_ms=s, upload_ms=u) for s in (60.0, 120.0, 200.0, 300.0) for u in (5.0, 20.0, 45.0)]

    def run(seed):
        rng = random.Random(seed)
        return [ModiPick().choose(table2, b, rng) for b in budgets for _ in range(5)]

    assert run(3) == run(3)


def test_a_new_tuple_of_models_replaces_the_cached_one():
    policy, rng = ModiPick(), random.Random(0)
    first = (c("a", 80, 50, 1), c("b", 60, 10, 1))
    assert policy.choose(first, FIG4_BUDGET, rng).base.name == "a"
    refreshed = (c("a", 80, 150, 1), c("b", 60, 10, 1))  # a got slow: a new tuple from a refresh
    d = policy.choose(refreshed, FIG4_BUDGET, rng)
    assert d.base.name == "b" and d.model.name == "b"
    assert policy.choose(first, FIG4_BUDGET, rng).base.name == "a"
    assert policy.choose(list(refreshed), FIG4_BUDGET, rng).base.name == "b"  # lists are never cached


def test_quick_fallback_when_the_budget_is_below_every_model(table2):
    policy = ModiPick()
    for sla, upload in ((1.0, 0.0), (50.0, 60.0), (23.0, 10.0)):
        d = policy.choose(table2, Budget(sla_ms=sla, upload_ms=upload), random.Random(0))
        assert d.reason is Reason.FALLBACK and d.model.name == "MobileNetV1 0.25"
