import random

import pytest

from modipick.core import Budget, Candidate, make_policy
from modipick.core.policies import Reason
from modipick.core.returnleg import ReturnLegEstimate, empirical

MODELS = [
    Candidate("fast", 1, 50.0, 5.0, 0.1),
    Candidate("mid", 1, 70.0, 30.0, 0.2),
    Candidate("slow", 1, 80.0, 60.0, 0.3),
    Candidate("fiction", 1, 50.0, 60.0, 0.3),
]


def choose(budget, **params):
    return make_policy("risk_aware", **params).choose(MODELS, budget, random.Random(0))


def test_known_return_leg_picks_most_accurate_that_fits():
    d = choose(Budget(sla_ms=200, upload_ms=50, return_leg=ReturnLegEstimate.exact(50)))
    assert d.model.name == "slow" and d.reason is Reason.BASE
    d = choose(Budget(sla_ms=150, upload_ms=50, return_leg=ReturnLegEstimate.exact(50)))
    assert d.model.name == "mid"


def test_uncertain_return_leg_backs_off_to_keep_the_miss_target():
    wide = empirical([10 + i for i in range(100)])  # R uniform on 10..109
    # L = 150: slow needs R <= 90 (P=0.81), mid needs R <= 120 (P=1.0)
    d = choose(Budget(sla_ms=160, upload_ms=10, return_leg=wide), miss_target=0.05)
    assert d.model.name == "mid"
    d = choose(Budget(sla_ms=160, upload_ms=10, return_leg=wide), miss_target=0.25)
    assert d.model.name == "slow"


def test_never_prefers_an_equally_slow_less_accurate_model():
    for sla in range(60, 300, 7):
        d = choose(Budget(sla_ms=sla, upload_ms=20, return_leg=empirical([5, 20, 40])))
        assert d.model.name != "fiction"


def test_hopeless_budget_falls_back_to_the_fastest():
    d = choose(Budget(sla_ms=10, upload_ms=9, return_leg=ReturnLegEstimate.exact(30)))
    assert d.model.name == "fast" and d.reason is Reason.FALLBACK


def test_without_a_learned_leg_it_uses_the_budget_estimate():
    d = choose(Budget(sla_ms=200, upload_ms=50))  # return estimate = upload (paper)
    assert d.model.name == "slow"


@pytest.mark.parametrize("bad", [-0.1, 1.0])
def test_rejects_bad_miss_target(bad):
    with pytest.raises(ValueError):
        make_policy("risk_aware", miss_target=bad)
