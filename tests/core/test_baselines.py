import math
import random
from collections import Counter

import pytest

from modipick.core import Budget, Candidate, Hindsight
from modipick.core.policies import ModiPick, Oracle, PureRandom, Reason, RelatedAccurate, RelatedRandom


def c(name, acc, mu, sd=0.0):
    return Candidate(name, 1, acc, mu, sd)


# T_U = 100, T_L = 80 (threshold 20): base m3; M_E = [m3, m1, m2, hi]; m5 and m4 are outside.
M3, M1, M2 = c("m3", 80, 70, 5), c("m1", 75, 85, 2), c("m2", 60, 88, 3)
HI = c("hi", 85, 90, 1)   # more accurate than the base, misses only the soft limit
MODELS = (c("m5", 50, 60, 0), M3, M1, c("m4", 90, 98, 5), M2, HI)
BUDGET = Budget(sla_ms=100.0)
M_E = {"m3", "m1", "m2", "hi"}


def within(count, n, p):
    return abs(count / n - p) < 4 * math.sqrt(p * (1 - p) / n)


def test_pure_random_is_uniform_over_all_models_regardless_of_budget():
    rng = random.Random(1)
    n = 30_000
    seen = Counter()
    for _ in range(n):
        d = PureRandom().choose(MODELS, Budget(sla_ms=1.0), rng)  # nothing fits, it does not care
        assert d.reason is Reason.EXPLORED and d.probability == pytest.approx(1 / len(MODELS))
        seen[d.model.name] += 1
    assert set(seen) == {m.name for m in MODELS}
    assert all(within(seen[m.name], n, 1 / len(MODELS)) for m in MODELS)


def test_related_random_is_uniform_over_the_exploration_set():
    p = ModiPick()
    assert {m.name for m in p.exploration_set(MODELS, p.base_model(MODELS, 100.0, 80.0), 100.0, 80.0)} == M_E
    rng = random.Random(2)
    n = 20_000
    seen = Counter()
    for _ in range(n):
        d = RelatedRandom().choose(MODELS, BUDGET, rng)
        assert d.base is M3 and d.explored == 4 and d.probability == 0.25
        assert d.reason is (Reason.BASE if d.model is M3 else Reason.EXPLORED)
        seen[d.model.name] += 1
    assert set(seen) == M_E
    assert all(within(seen[name], n, 0.25) for name in M_E)


def test_related_accurate_takes_the_most_accurate_member_of_the_exploration_set():
    d = RelatedAccurate().choose(MODELS, BUDGET, random.Random(0))
    assert d.model is HI and d.reason is Reason.EXPLORED and d.base is M3
    assert d.explored == 4 and d.probability == 1.0
    d = RelatedAccurate().choose([m for m in MODELS if m is not HI], BUDGET, random.Random(0))
    assert d.model is M3 and d.reason is Reason.BASE


def test_related_accurate_avoids_nasnet_fictional(table2):
    rng = random.Random(0)
    for _ in range(50):
        assert RelatedAccurate().choose(table2, Budget(sla_ms=300.0, upload_ms=50.0), rng).model.name \
            == "NasNet Large"


@pytest.mark.parametrize("policy_cls", [RelatedRandom, RelatedAccurate])
def test_related_policies_fall_back_to_the_fastest_like_modipick(policy_cls):
    d = policy_cls().choose(MODELS, Budget(sla_ms=10.0), random.Random(0))
    assert d.reason is Reason.FALLBACK and d.model.name == "m5"


@pytest.mark.parametrize("policy_cls", [RelatedRandom, RelatedAccurate])
def test_related_policies_share_modipicks_threshold(policy_cls):
    # threshold 0: T_L = T_U = 100, base becomes hi (90 + 1 < 100), T_E = [80, 120]
    d = policy_cls(threshold_ms=0.0).choose(MODELS, BUDGET, random.Random(0))
    assert d.base is HI
    assert d.explored == len(ModiPick(threshold_ms=0.0).exploration_set(MODELS, HI, 100.0, 100.0))


@pytest.mark.parametrize("policy_cls", [PureRandom, RelatedRandom, RelatedAccurate, Oracle])
def test_no_models_is_an_error(policy_cls):
    b = Budget(sla_ms=100.0, hindsight=Hindsight(return_ms=0.0))
    with pytest.raises(ValueError, match="no models"):
        policy_cls().choose([], b, random.Random(0))


def hindsight_budget(sla, upload, back, exec_ms):
    return Budget(sla_ms=sla, upload_ms=upload, hindsight=Hindsight(return_ms=back, exec_ms=exec_ms))


def test_oracle_uses_the_real_times_not_the_profiles():
    models = [c("fast", 60, 10, 1), c("mid", 70, 30, 1), c("slow", 90, 60, 1)]
    # The profiles say slow fits 100 - 20 - 10 = 70, but this time it really took 75.
    b = hindsight_budget(100.0, 20.0, 10.0, {"fast": 9.0, "mid": 31.0, "slow": 75.0})
    d = Oracle().choose(models, b, random.Random(0))
    assert d.model.name == "mid" and d.reason is Reason.ORACLE and d.base.name == "mid"
    # A slow reply leg it knows in hindsight, where the paper's estimate (= upload) would not.
    b = hindsight_budget(100.0, 5.0, 50.0, {"fast": 9.0, "mid": 31.0, "slow": 46.0})
    assert Oracle().choose(models, b, random.Random(0)).model.name == "mid"
    b = hindsight_budget(100.0, 5.0, 50.0, {"fast": 9.0, "mid": 31.0, "slow": 45.0})
    assert Oracle().choose(models, b, random.Random(0)).model.name == "slow"  # e2e == SLA fits


def test_oracle_falls_back_to_the_really_fastest_when_nothing_fits():
    models = [c("a", 60, 10, 1), c("b", 70, 30, 1)]
    b = hindsight_budget(50.0, 30.0, 30.0, {"a": 12.0, "b": 8.0})  # b happened to be quicker
    d = Oracle().choose(models, b, random.Random(0))
    assert d.model.name == "b" and d.reason is Reason.FALLBACK


def test_oracle_takes_the_profile_mean_for_a_model_without_a_real_time():
    models = [c("a", 60, 10, 1), c("b", 70, 30, 1)]
    assert Oracle().choose(models, hindsight_budget(100.0, 10.0, 10.0, {"a": 5.0}),
                           random.Random(0)).model.name == "b"
    assert Oracle().choose(models, hindsight_budget(100.0, 10.0, 10.0, {"a": 5.0, "b": 90.0}),
                           random.Random(0)).model.name == "a"


def test_oracle_refuses_without_hindsight():
    with pytest.raises(ValueError, match="hindsight"):
        Oracle().choose([c("a", 60, 10)], Budget(sla_ms=100.0), random.Random(0))


def test_oracle_fits_by_the_same_sum_the_simulator_scores_with():
    # 0.1 + 0.2 + 0.3 > 0.6 in floating point, while 0.2 <= 0.6 - 0.1 - 0.3 is true: an oracle
    # deciding by the latter would pick a model the scorer counts as a miss.
    models = [c("a", 90, 0.2), c("b", 10, 0.0)]
    b = hindsight_budget(0.6, 0.1, 0.3, {"a": 0.2, "b": 0.0})
    assert b.real_e2e_ms(0.2) > 0.6
    d = Oracle().choose(models, b, random.Random(0))
    assert d.model.name == "b" and d.reason is Reason.ORACLE
