"""Property tests (hypothesis, derandomized: the same examples on every run)."""

import math
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from modipick.core import Budget, Candidate, Hindsight, make_policy, policy_names
from modipick.core.policies import ModiPick, Reason

PROPERTY = settings(max_examples=300, derandomize=True, database=None, deadline=None)
HEAVY = settings(PROPERTY, max_examples=200)  # many policies per example

# Round values (integers, a few shared constants) make exact ties and boundary hits likely.
ms = st.one_of(st.floats(0.0, 400.0), st.integers(0, 300).map(float), st.sampled_from([3.21, 20.0, 112.61]))
std = st.one_of(st.just(0.0), st.floats(0.0, 60.0), st.integers(0, 10).map(float))
accuracy = st.one_of(st.floats(0.5, 100.0), st.sampled_from([50.0, 70.0, 82.6]))
threshold = st.one_of(st.just(0.0), st.just(20.0), st.floats(0.0, 150.0))
legs = st.one_of(st.floats(0.0, 200.0), st.integers(0, 100).map(float))


@st.composite
def model_lists(draw, max_size=12):
    n = draw(st.integers(1, max_size))
    return tuple(Candidate(f"m{i}", 1, draw(accuracy), draw(ms), draw(std)) for i in range(n))


@st.composite
def budgets(draw):
    sla = draw(st.one_of(st.floats(1.0, 800.0), st.integers(1, 400).map(float)))
    ret = draw(st.one_of(st.none(), legs))
    return Budget(sla_ms=sla, upload_ms=draw(legs), return_estimate_ms=ret)


def index_of(m, members):
    return next(i for i, x in enumerate(members) if x is m)


@PROPERTY
@given(model_lists(), budgets(), threshold)
def test_stage_one_finds_a_base_whenever_eq2_can_be_met(models, budget, t_threshold):
    policy = ModiPick(threshold_ms=t_threshold)
    t_u, t_l = policy.limits(budget)
    feasible = [m for m in models if m.mean_ms + m.std_ms < t_u and m.mean_ms - m.std_ms < t_l]
    d = policy.choose(models, budget, random.Random(0))
    if feasible:
        assert d.reason is not Reason.FALLBACK
        assert any(d.base is m for m in feasible)
        assert d.base.accuracy == max(m.accuracy for m in feasible)
    else:
        assert d.reason is Reason.FALLBACK and d.base is None
        assert d.model.mean_ms == min(m.mean_ms for m in models)


@PROPERTY
@given(model_lists(), budgets(), threshold, st.integers(0, 2**32 - 1))
def test_exploration_set_and_probabilities(models, budget, t_threshold, seed):
    policy = ModiPick(threshold_ms=t_threshold)
    t_u, t_l = policy.limits(budget)
    base = policy.base_model(models, t_u, t_l)
    if base is None:
        return
    members = policy.exploration_set(models, base, t_u, t_l)
    assert any(m is base for m in members)
    half = abs(base.mean_ms - t_l) + base.std_ms
    for m in members:
        assert m.mean_ms + m.std_ms < t_u
        assert t_l - half - 1e-9 <= m.mean_ms <= t_l + half + 1e-9
    probs = policy.probabilities(members, t_u, t_l)
    assert all(p > 0 for p in probs)  # every accuracy drawn here is > 0
    assert math.isclose(math.fsum(probs), 1.0, rel_tol=1e-9)

    # The one-pass `choose` agrees with the stage-by-stage methods.
    d = policy.choose(models, budget, random.Random(seed))
    assert d.base is base and d.explored == len(members)
    i = index_of(d.model, members)
    assert math.isclose(d.probability, probs[i], rel_tol=1e-9)
    assert d.reason is (Reason.BASE if d.model is base else Reason.EXPLORED)


@HEAVY
@given(model_lists(), st.lists(budgets(), min_size=1, max_size=8), st.integers(0, 2**32 - 1))
def test_same_seed_same_decisions(models, plain_budgets, seed):
    hindsight = Hindsight(return_ms=10.0, exec_ms={m.name: m.mean_ms for m in models})
    reqs = [Budget(b.sla_ms, b.upload_ms, b.return_estimate_ms, hindsight) for b in plain_budgets] * 2
    for name in policy_names():
        runs = []
        for _ in range(2):
            policy, rng = make_policy(name), random.Random(seed)
            runs.append([policy.choose(models, b, rng) for b in reqs])
        assert runs[0] == runs[1], name


@st.composite
def requests(draw, models):
    sla = draw(st.one_of(st.floats(1.0, 400.0), st.integers(1, 300).map(float)))
    exec_ms = {m.name: draw(st.one_of(st.just(m.mean_ms), ms)) for m in models}
    return Budget(sla_ms=sla, upload_ms=draw(legs),
                  hindsight=Hindsight(return_ms=draw(legs), exec_ms=exec_ms))


@st.composite
def simulations(draw):
    models = draw(model_lists())
    return models, draw(st.lists(requests(models), min_size=1, max_size=6))


def effective_accuracy(model, budget):
    return model.accuracy if budget.real_e2e_ms(budget.hindsight.exec_ms[model.name]) <= budget.sla_ms else 0.0


@HEAVY
@given(simulations(), st.integers(0, 2**32 - 1))
def test_the_oracle_is_never_beaten_on_effective_accuracy(simulation, seed):
    models, reqs = simulation
    oracle = make_policy("oracle")
    best = [effective_accuracy(oracle.choose(models, b, random.Random(seed)).model, b) for b in reqs]
    for name in policy_names():
        policy, rng = make_policy(name), random.Random(seed)
        for b, bound in zip(reqs, best):
            got = effective_accuracy(policy.choose(models, b, rng).model, b)
            assert got <= bound, (name, b)


@PROPERTY
@given(model_lists(), budgets(), threshold, st.integers(0, 2**32 - 1))
def test_greedy_and_related_policies_stay_inside_their_sets(models, budget, t_threshold, seed):
    for name, limit in (("static_greedy", budget.sla_ms), ("dynamic_greedy", budget.execution_ms)):
        d = make_policy(name).choose(models, budget, random.Random(seed))
        fitting = [m for m in models if m.mean_ms <= limit]
        if fitting:
            assert d.model.mean_ms <= limit and d.model.accuracy == max(m.accuracy for m in fitting)
        else:
            assert d.reason is Reason.FALLBACK and d.model.mean_ms == min(m.mean_ms for m in models)
    stages = ModiPick(threshold_ms=t_threshold)
    t_u, t_l = stages.limits(budget)
    base = stages.base_model(models, t_u, t_l)
    members = [] if base is None else stages.exploration_set(models, base, t_u, t_l)
    for name in ("related_random", "related_accurate", "modipick"):
        d = make_policy(name, threshold_ms=t_threshold).choose(models, budget, random.Random(seed))
        if base is None:
            assert d.reason is Reason.FALLBACK
        else:
            assert any(d.model is m for m in members) and d.explored == len(members)
    top = max((m.accuracy for m in members), default=None)
    if top is not None:
        assert make_policy("related_accurate", threshold_ms=t_threshold).choose(
            models, budget, random.Random(seed)).model.accuracy == top


@PROPERTY
@given(model_lists(), st.lists(budgets(), min_size=1, max_size=6), threshold, st.integers(0, 2**32 - 1))
def test_cached_tuple_path_and_one_pass_path_decide_alike(models, reqs, t_threshold, seed):
    cached, once = ModiPick(threshold_ms=t_threshold), ModiPick(threshold_ms=t_threshold)
    rng_a, rng_b = random.Random(seed), random.Random(seed)
    as_list = list(models)
    for b in reqs * 2:
        a, o = cached.choose(models, b, rng_a), once.choose(as_list, b, rng_b)
        assert a == o
        assert a.model is o.model and a.base is o.base
