import random

import pytest

from modipick.core import Budget, Candidate, Decision, Hindsight, make_policy, policy_names
from modipick.core.policies import LIVE_POLICIES, ModiPick, Reason, register_policy

PAPER_POLICIES = {"static_greedy", "dynamic_greedy", "modipick", "pure_random", "related_random",
                  "related_accurate", "oracle"}


def test_every_paper_policy_is_registered_under_its_name():
    assert PAPER_POLICIES <= set(policy_names())
    for name in policy_names():
        assert make_policy(name).name == name


def test_the_oracle_is_not_a_live_policy():
    assert "oracle" not in LIVE_POLICIES
    assert set(LIVE_POLICIES) == set(policy_names()) - {"oracle"}


def test_unknown_policy_names_the_value_and_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown policy 'greedy'.*modipick"):
        make_policy("greedy")


def test_parameters_reach_the_policies_that_take_them_and_are_dropped_elsewhere():
    p = make_policy("modipick", threshold_ms=7.5, min_distance_ms=0.5)
    assert isinstance(p, ModiPick) and (p.threshold_ms, p.min_distance_ms) == (7.5, 0.5)
    models = [Candidate("low", 1, 80.0, 70.0, 5.0), Candidate("high", 1, 85.0, 90.0, 1.0)]
    for threshold, base in ((20.0, "low"), (0.0, "high")):  # high misses T_L = 80, not T_L = 100
        d = make_policy("related_random", threshold_ms=threshold).choose(models, Budget(sla_ms=100.0),
                                                                         random.Random(0))
        assert d.base.name == base
    assert make_policy("static_greedy", threshold_ms=7.5).name == "static_greedy"


def test_bad_parameter_values_are_rejected_by_the_policy():
    with pytest.raises(ValueError, match="threshold_ms"):
        make_policy("modipick", threshold_ms=-1.0)
    with pytest.raises(ValueError, match="threshold_ms"):
        make_policy("related_accurate", threshold_ms=-1.0)


def test_register_policy_adds_a_name(monkeypatch):
    import modipick.core.policies as policies

    monkeypatch.setattr(policies, "_REGISTRY", dict(policies._REGISTRY))

    class Always:
        name = "always_first"

        def choose(self, models, budget, rng):
            return Decision(models[0], Reason.BASE, base=models[0])

    register_policy("always_first", Always)
    assert "always_first" in policy_names()
    assert isinstance(make_policy("always_first"), Always)


@pytest.mark.parametrize("name", policy_names())
def test_every_policy_picks_one_of_the_offered_models(name, table2):
    policy = make_policy(name)
    rng = random.Random(0)
    for sla in (20.0, 80.0, 150.0, 300.0):
        b = Budget(sla_ms=sla, upload_ms=25.0,
                   hindsight=Hindsight(return_ms=25.0, exec_ms={m.name: m.mean_ms for m in table2}))
        d = policy.choose(table2, b, rng)
        assert isinstance(d, Decision) and isinstance(d.reason, Reason)
        assert any(d.model is m for m in table2)
        assert 0.0 < d.probability <= 1.0
        assert d.fits is (d.reason is not Reason.FALLBACK)


@pytest.mark.parametrize("name", policy_names())
def test_every_policy_rejects_an_empty_model_list(name):
    b = Budget(sla_ms=100.0, hindsight=Hindsight(return_ms=0.0))
    with pytest.raises(ValueError, match="no models"):
        make_policy(name).choose([], b, random.Random(0))
