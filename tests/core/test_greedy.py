import random

import pytest

from modipick.core import Budget, Candidate
from modipick.core.policies import DynamicGreedy, Reason, StaticGreedy


def c(name, acc, mu, sd=0.0):
    return Candidate(name, 1, acc, mu, sd)


def pick(policy, models, sla, upload=0.0, **kw):
    return policy.choose(models, Budget(sla_ms=sla, upload_ms=upload, **kw), random.Random(0))


def test_static_greedy_decides_on_the_sla_alone_ignoring_the_network(table2):
    for upload in (0.0, 30.0, 74.9):
        d = pick(StaticGreedy(), table2, 150.0, upload)
        assert d.model.name == "NasNet Large" and d.reason is Reason.BASE and d.base == d.model
    assert pick(StaticGreedy(), table2, 100.0, 40.0).model.name == "InceptionV4"


def test_dynamic_greedy_decides_on_eq1_budget(table2):
    # T_budget = 150 - 2 * 20 = 110: NasNet Large (112.61) no longer fits, InceptionV4 does.
    d = pick(DynamicGreedy(), table2, 150.0, 20.0)
    assert d.model.name == "InceptionV4" and d.reason is Reason.BASE
    # T_budget = 150 - 2 * 15 = 120
    assert pick(DynamicGreedy(), table2, 150.0, 15.0).model.name == "NasNet Large"
    # T_budget = 150 - 50 - 0: with an explicit, small return-leg estimate
    assert pick(DynamicGreedy(), table2, 150.0, 35.0, return_estimate_ms=0.0).model.name == "NasNet Large"


def test_static_and_dynamic_differ_exactly_by_the_network_legs():
    models = [c("fast", 60, 10), c("slow", 90, 70)]
    assert pick(StaticGreedy(), models, 100.0, 20.0).model.name == "slow"
    assert pick(DynamicGreedy(), models, 100.0, 20.0).model.name == "fast"  # budget 60


@pytest.mark.parametrize("policy", [StaticGreedy(), DynamicGreedy()])
def test_a_mean_equal_to_the_limit_still_fits(policy):
    models = [c("fast", 60, 10), c("edge", 90, 50)]
    assert pick(policy, models, 50.0).model.name == "edge"
    assert pick(policy, models, 49.999).model.name == "fast"


@pytest.mark.parametrize("policy", [StaticGreedy(), DynamicGreedy()])
def test_nothing_fits_falls_back_to_the_fastest(policy):
    models = [c("a", 80, 40), c("b", 60, 25), c("c", 70, 30)]
    d = pick(policy, models, 20.0)
    assert d.model.name == "b" and d.reason is Reason.FALLBACK and not d.fits and d.base is None


def test_dynamic_greedy_falls_back_when_the_budget_is_negative(table2):
    d = pick(DynamicGreedy(), table2, 50.0, 40.0)
    assert d.reason is Reason.FALLBACK and d.model.name == "MobileNetV1 0.25"


@pytest.mark.parametrize("policy", [StaticGreedy(), DynamicGreedy()])
def test_every_model_fits_picks_the_most_accurate(policy, table2):
    assert pick(policy, table2, 10_000.0).model.name == "NasNet Large"


@pytest.mark.parametrize("policy", [StaticGreedy(), DynamicGreedy()])
def test_accuracy_ties_go_to_the_faster_then_the_name(policy):
    models = [c("slow", 70, 30), c("quick", 70, 10), c("other", 50, 1)]
    assert pick(policy, models, 100.0).model.name == "quick"
    twins = [c("zeta", 70, 10), c("alpha", 70, 10)]
    assert pick(policy, twins, 100.0).model.name == "alpha"
    assert pick(policy, twins[::-1], 100.0).model.name == "alpha"


def test_fallback_ties_on_mean_go_to_the_more_accurate():
    models = [c("worse", 40, 30), c("better", 60, 30), c("slow", 90, 80)]
    d = pick(DynamicGreedy(), models, 10.0)
    assert d.reason is Reason.FALLBACK and d.model.name == "better"


@pytest.mark.parametrize("policy", [StaticGreedy(), DynamicGreedy()])
def test_the_order_of_models_does_not_matter(policy, table2):
    rng = random.Random(3)
    for sla in (8.0, 30.0, 60.0, 130.0):
        shuffled = list(table2)
        rng.shuffle(shuffled)
        assert pick(policy, shuffled, sla, 2.0) == pick(policy, table2, sla, 2.0)


@pytest.mark.parametrize("policy", [StaticGreedy(), DynamicGreedy()])
def test_no_models_is_an_error(policy):
    with pytest.raises(ValueError, match="no models"):
        pick(policy, [], 100.0)


@pytest.mark.parametrize("policy", [StaticGreedy(), DynamicGreedy()])
def test_greedy_never_draws_from_the_rng(policy, table2):
    rng = random.Random(5)
    state = rng.getstate()
    policy.choose(table2, Budget(sla_ms=100.0, upload_ms=10.0), rng)
    assert rng.getstate() == state
