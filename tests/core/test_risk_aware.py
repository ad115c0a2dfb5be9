import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modipick.core import Budget, Candidate, make_policy
from modipick.core.policies import Reason
from modipick.core.policies.risk_aware import RiskAware, meet_probability
from modipick.core.returnleg import ReturnLegEstimate, empirical

MODELS = (
    Candidate("fast", 1, 50.0, 5.0, 0.1),
    Candidate("mid", 1, 70.0, 30.0, 0.2),
    Candidate("slow", 1, 80.0, 60.0, 0.3),
    Candidate("fiction", 1, 50.0, 60.0, 0.3),
)
WIDE = empirical([10 + i for i in range(100)])  # R uniform on 10..109


def choose(budget, models=MODELS, **params):
    return make_policy("risk_aware", **params).choose(models, budget, random.Random(0))


def test_known_return_leg_picks_most_accurate_that_fits():
    d = choose(Budget(sla_ms=200, upload_ms=50, return_leg=ReturnLegEstimate.exact(50)))
    assert d.model.name == "slow" and d.reason is Reason.BASE
    d = choose(Budget(sla_ms=150, upload_ms=50, return_leg=ReturnLegEstimate.exact(50)))
    assert d.model.name == "mid"


def test_default_objective_is_expected_effective_accuracy():
    assert RiskAware().objective == "expected"
    # L = 150: slow needs R <= 90 (P = 0.81, 80 * 0.81 = 64.8); mid needs R <= 120 (P = 1, 70)
    assert choose(Budget(sla_ms=160, upload_ms=10, return_leg=WIDE)).model.name == "mid"
    # L = 165: slow needs R <= 105 (P = 0.96, 76.8) beats mid (70)
    assert choose(Budget(sla_ms=175, upload_ms=10, return_leg=WIDE)).model.name == "slow"


def test_constrained_backs_off_to_keep_the_miss_target():
    budget = Budget(sla_ms=160, upload_ms=10, return_leg=WIDE)
    assert choose(budget, objective="constrained", miss_target=0.05).model.name == "mid"
    assert choose(budget, objective="constrained", miss_target=0.25).model.name == "slow"


def test_constrained_without_a_safe_model_maximises_expected_accuracy():
    # L = 60: fast needs R <= 55 (P = 0.46), mid needs R <= 30 (P = 0.21): none meets 95 %
    d = choose(Budget(sla_ms=70, upload_ms=10, return_leg=WIDE), objective="constrained", miss_target=0.05)
    assert d.model.name == "fast" and d.reason is Reason.BASE  # 50 * 0.46 = 23 > 70 * 0.21 = 14.7


def test_never_prefers_an_equally_slow_less_accurate_model():
    for objective in ("expected", "constrained"):
        for sla in range(60, 300, 7):
            d = choose(Budget(sla_ms=sla, upload_ms=20, return_leg=empirical([5, 20, 40])), objective=objective)
            assert d.model.name != "fiction"


def test_hopeless_budget_falls_back_to_the_fastest():
    d = choose(Budget(sla_ms=10, upload_ms=9, return_leg=ReturnLegEstimate.exact(30)))
    assert d.model.name == "fast" and d.reason is Reason.FALLBACK


def test_without_a_learned_leg_it_uses_the_budget_estimate():
    assert choose(Budget(sla_ms=200, upload_ms=50)).model.name == "slow"  # return estimate = upload (paper)
    assert choose(Budget(sla_ms=200, upload_ms=50, return_estimate_ms=100)).model.name == "mid"


def test_the_serving_overheads_spread_widens_every_models():
    # 80 ms left for the model (150 - 50 upload - 20 return): slow (60 +- 0.3 ms) fits with 20 to spare
    models = (Candidate("mid", 1, 70.0, 30.0, 0.2), Candidate("slow", 1, 80.0, 60.0, 0.3))
    calm = Budget(sla_ms=150, upload_ms=50, return_leg=ReturnLegEstimate.exact(20))
    assert choose(calm, models).model.name == "slow"
    # the same budget with 15 ms of spread in the overhead around the model: slow's lower node
    # (20 - sqrt(3) * 15 < 0) misses, P = 5/6 and 80 * 5/6 = 66.7 < mid's 70 * 1
    noisy = Budget(sla_ms=150, upload_ms=50, return_leg=ReturnLegEstimate.exact(20), overhead_std_ms=15.0)
    assert choose(noisy, models).model.name == "mid"
    assert RiskAware().meet_probability(models[1], 100.0, ReturnLegEstimate.exact(20), 15.0) == pytest.approx(5 / 6)


def test_a_minimum_chance_keeps_long_shots_out_and_declines_when_none_is_left():
    # L = 60: fast P = 0.46 (23), mid P = 0.21 (14.7): the expected objective takes fast's long shot
    budget = Budget(sla_ms=70, upload_ms=10, return_leg=WIDE)
    assert choose(budget).model.name == "fast" and not choose(budget).on_device
    declined = choose(budget, min_probability=0.5)
    assert declined.reason is Reason.FALLBACK and declined.on_device and declined.model.name == "fast"
    # L = 160: slow P = 0.91 (72.7) beats mid P = 1 (70); at a floor of 0.95 slow is not offered
    roomy = Budget(sla_ms=170, upload_ms=10, return_leg=WIDE)
    assert choose(roomy).model.name == "slow"
    assert choose(roomy, min_probability=0.95).model.name == "mid"
    with pytest.raises(ValueError, match="min_probability"):
        RiskAware(min_probability=1.5)


def test_a_negative_overhead_spread_is_refused():
    with pytest.raises(ValueError, match="overhead spread"):
        Budget(sla_ms=150, upload_ms=50, overhead_std_ms=-1.0)


def test_no_exploration_the_rng_is_never_drawn():
    rng = random.Random(7)
    state = rng.getstate()
    policy = RiskAware()
    for sla in range(20, 400, 3):
        policy.choose(MODELS, Budget(sla_ms=sla, upload_ms=30, return_leg=WIDE), rng)
    assert rng.getstate() == state


def test_gauss_hermite_probability_of_a_slow_variable_model():
    # E ~ N(100, 10), R = 0, L = 110: Phi(1) = 0.841; the 3-point rule gives 5/6
    assert meet_probability((0.0,), 110.0 - 100.0, math.sqrt(3) * 10.0) == pytest.approx(5 / 6)
    assert meet_probability((0.0,), 10.0 - 100.0, math.sqrt(3) * 10.0) == 0.0
    assert meet_probability((0.0,), 200.0 - 100.0, math.sqrt(3) * 10.0) == 1.0


def test_log_scale_estimates_decide_like_the_same_distribution_in_ms():
    values = [12.0 + 3.7 * i for i in range(60)]
    linear = empirical(values)
    log = ReturnLegEstimate(tuple(math.log(v) - math.log(20.0) for v in values), math.log(20.0), log_scale=True)
    for sla in range(40, 400, 5):
        a = choose(Budget(sla_ms=sla, upload_ms=15, return_leg=linear))
        b = choose(Budget(sla_ms=sla, upload_ms=15, return_leg=log))
        assert (a.model, a.reason) == (b.model, b.reason), sla


ms = st.one_of(st.floats(0.0, 300.0), st.integers(0, 200).map(float))
models_st = st.lists(st.tuples(st.floats(1.0, 100.0) | st.sampled_from([50.0, 70.0]), ms,
                               st.floats(0.0, 40.0) | st.just(0.0)), min_size=1, max_size=12)
legs_st = st.lists(st.floats(0.0, 300.0), min_size=1, max_size=40)


def brute_force(models, budget, miss_target, objective, floor=0.0):
    """The definition, without pruning or caching: P_m for every model offered (P_m >= floor), then the rule."""
    policy = RiskAware(miss_target, objective)
    ret = budget.return_leg
    left = budget.sla_ms - budget.upload_ms
    scored = [(m, p) for m in models if (p := policy.meet_probability(m, left, ret, budget.overhead_std_ms)) >= floor]
    if not scored:
        return None, 0.0
    if objective == "constrained":
        safe = [(m, p) for m, p in scored if p >= 1 - miss_target]
        if safe:
            return max(safe, key=lambda s: (s[0].accuracy, s[1], -s[0].mean_ms))[0].accuracy, None
    best = max(m.accuracy * p for m, p in scored)
    return None, best


@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(models_st, st.floats(1.0, 800.0), st.floats(0.0, 200.0), legs_st, st.booleans(),
       st.sampled_from(["expected", "constrained"]), st.sampled_from([0.0, 0.05, 0.3]),
       st.sampled_from([0.0, 0.7, 25.0]), st.sampled_from([0.0, 0.5]))
def test_pruned_scan_matches_the_definition(rows, sla, upload, legs, log_scale, objective, miss_target, overhead_std,
                                            floor):
    models = tuple(Candidate(f"m{i}", 1, a, mu, sd) for i, (a, mu, sd) in enumerate(rows))
    if log_scale:
        ret = ReturnLegEstimate(tuple(sorted(math.log(max(v, 0.01)) for v in legs)), 0.0, log_scale=True)
    else:
        ret = empirical(legs)
    budget = Budget(sla_ms=sla, upload_ms=upload, return_leg=ret, overhead_std_ms=overhead_std)
    policy = RiskAware(miss_target, objective, min_probability=floor)
    d = policy.choose(models, budget, random.Random(0))
    again = policy.choose(list(models), budget, random.Random(0))  # uncached path
    assert (d.model, d.reason) == (again.model, again.reason)
    safe_accuracy, best = brute_force(models, budget, miss_target, objective, floor)
    if safe_accuracy is not None:
        assert d.reason is Reason.BASE and d.model.accuracy == safe_accuracy
    elif best <= 0:
        assert d.reason is Reason.FALLBACK and d.on_device and d.model.mean_ms == min(m.mean_ms for m in models)
    else:
        left = sla - upload
        assert d.model.accuracy * policy.meet_probability(d.model, left, ret, overhead_std) == pytest.approx(best)


def test_cached_candidates_follow_a_new_tuple():
    policy = RiskAware()
    budget = Budget(sla_ms=200, upload_ms=50, return_leg=ReturnLegEstimate.exact(50))
    assert policy.choose(MODELS, budget, random.Random(0)).model.name == "slow"
    slower = tuple(m._replace(mean_ms=500.0) if m.name == "slow" else m for m in MODELS)
    assert policy.choose(slower, budget, random.Random(0)).model.name == "mid"


@pytest.mark.parametrize("bad", [-0.1, 1.0])
def test_rejects_bad_miss_target(bad):
    with pytest.raises(ValueError):
        make_policy("risk_aware", miss_target=bad)


def test_rejects_unknown_objective():
    with pytest.raises(ValueError, match="objective"):
        make_policy("risk_aware", objective="greedy")
