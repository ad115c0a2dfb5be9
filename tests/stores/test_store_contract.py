"""One contract, two stores: in-memory and a real redis-server."""

from __future__ import annotations

import math
import random
from dataclasses import replace

import pytest

from modipick.core import ModelProfile, ewma_update
from modipick.core.profiles import MEASURED_ACCURACY_MIN_SERVED
from modipick.stores import ProfileStore


def fresh(name: str, version: int = 1, accuracy: float = 70.0, state: str = "eligible") -> ModelProfile:
    return ModelProfile(name=name, version=version, declared_accuracy=accuracy, state=state)


def by_key(store) -> dict[tuple[str, int], ModelProfile]:
    return {(p.name, p.version): p for p in store.load_all()}


def test_implements_the_protocol(store):
    assert isinstance(store, ProfileStore)


def test_register_then_load_round_trips_every_field(store):
    seeded = ModelProfile(name="mobilenet_v1_0.25", version=3, declared_accuracy=41.5, mean_ms=12.345678901234567,
                          var_ms2=0.1 + 0.2, samples=7, updated_at=1_700_000_000.123456, correct=4, served=9,
                          state="warming", input_size=160)
    assert store.register(seeded) is True
    assert store.register(fresh("a")) is True
    assert store.load_all() == [fresh("a"), seeded]  # sorted by (name, version), floats bit-exact


def test_register_again_updates_declared_fields_and_keeps_learned_stats(store):
    store.register(fresh("m", accuracy=50.0, state="warming"))
    store.observe_many([("m", 1, 10.0), ("m", 1, 14.0)], alpha=0.5, now=5.0)
    store.record_outcome("m", 1, True)
    assert store.register(ModelProfile(name="m", declared_accuracy=60.0, mean_ms=999.0, samples=99,
                                       state="eligible", input_size=96)) is False
    (p,) = store.load_all()
    assert (p.declared_accuracy, p.state, p.input_size) == (60.0, "eligible", 96)
    assert (p.mean_ms, p.samples, p.correct, p.served, p.updated_at) == (12.0, 2, 1, 1, 5.0)
    # a registration that does not say the input size (0: an admin's RegisterModel) keeps the known one
    store.register(ModelProfile(name="m", declared_accuracy=61.0, state="eligible"))
    (p,) = store.load_all()
    assert (p.declared_accuracy, p.input_size) == (61.0, 96)


def test_versions_and_names_with_colons_are_distinct_profiles(store):
    for profile in (fresh("a:b", 1), fresh("a:b", 2), fresh("a", 1)):
        store.register(profile)
    assert store.observe_many([("a:b", 2, 5.0)], alpha=0.1, now=1.0) == 1
    profiles = by_key(store)
    assert sorted(profiles) == [("a", 1), ("a:b", 1), ("a:b", 2)]
    assert [profiles[k].samples for k in sorted(profiles)] == [0, 0, 1]


def test_deregister_removes_and_reports_whether_it_existed(store):
    store.register(fresh("a"))
    store.register(fresh("b"))
    assert store.deregister("a", 1) is True
    assert store.deregister("a", 1) is False
    assert [p.name for p in store.load_all()] == ["b"]
    assert store.observe_many([("a", 1, 3.0)], alpha=0.2) == 0
    assert [p.name for p in store.load_all()] == ["b"]


def test_first_sample_sets_mean_and_zero_variance(store, clock):
    store.register(fresh("m"))
    clock.now = 42.5
    assert store.observe_many([("m", 1, 17.25)], alpha=0.3) == 1
    (p,) = store.load_all()
    assert (p.mean_ms, p.var_ms2, p.samples, p.updated_at) == (17.25, 0.0, 1, 42.5)


@pytest.mark.parametrize("alpha", [0.05, 0.3, 1.0])
def test_ewma_equals_core_ewma_update_applied_sequentially(store, alpha):
    rng = random.Random(7)
    names = [("fast", 1), ("slow", 1), ("slow", 2)]
    expected = {key: fresh(*key) for key in names}
    for profile in expected.values():
        store.register(profile)
    sent = 0
    for batch_no in range(40):
        batch = [(*rng.choice(names), rng.lognormvariate(3.0, 0.6)) for _ in range(rng.randint(1, 60))]
        now = 100.0 + batch_no * 0.25
        for name, version, ms in batch:
            expected[(name, version)] = ewma_update(expected[(name, version)], ms, alpha=alpha, now=now)
        assert store.observe_many(batch, alpha=alpha, now=now) == len(batch)
        sent += len(batch)
    stored = by_key(store)
    assert sum(p.samples for p in stored.values()) == sent
    for key, want in expected.items():
        got = stored[key]
        assert (got.samples, got.updated_at) == (want.samples, want.updated_at)
        assert math.isclose(got.mean_ms, want.mean_ms, rel_tol=1e-12, abs_tol=1e-12), key
        assert math.isclose(got.var_ms2, want.var_ms2, rel_tol=1e-12, abs_tol=1e-12), key


def test_observations_for_unknown_models_are_rejected_not_created(store):
    store.register(fresh("known"))
    accepted = store.observe_many([("known", 1, 1.0), ("ghost", 1, 2.0), ("known", 2, 3.0), ("known", 1, 3.0)],
                                  alpha=0.5, now=1.0)
    assert accepted == 2
    assert list(by_key(store)) == [("known", 1)]
    assert store.load_all()[0].samples == 2


def test_a_bad_observation_rejects_the_whole_batch_before_anything_is_applied(store):
    store.register(fresh("m"))
    for bad in (float("nan"), float("inf"), -1.0):
        with pytest.raises(ValueError, match="latency"):
            store.observe_many([("m", 1, 5.0), ("m", 1, bad)], alpha=0.5)
    assert store.load_all()[0].samples == 0


@pytest.mark.parametrize("alpha", [0.0, -0.1, 1.5, float("nan")])
def test_alpha_outside_zero_one_is_refused(store, alpha):
    store.register(fresh("m"))
    with pytest.raises(ValueError, match="alpha"):
        store.observe_many([("m", 1, 5.0)], alpha=alpha)


def test_empty_batch_accepts_nothing(store):
    assert store.observe_many([], alpha=0.5) == 0


def test_outcomes_become_measured_accuracy(store):
    store.register(fresh("m", accuracy=90.0))
    outcomes = [i % 4 != 0 for i in range(MEASURED_ACCURACY_MIN_SERVED + 10)]  # 75 % correct
    for correct in outcomes:
        assert store.record_outcome("m", 1, correct) is True
    (p,) = store.load_all()
    assert (p.correct, p.served) == (sum(outcomes), len(outcomes))
    assert p.measured_accuracy == pytest.approx(100.0 * sum(outcomes) / len(outcomes))
    assert p.accuracy == p.measured_accuracy != p.declared_accuracy
    assert store.record_outcome("ghost", 1, True) is False
    assert list(by_key(store)) == [("m", 1)]


def test_set_state(store):
    store.register(fresh("m", state="loading"))
    for state in ("warming", "eligible", "failing"):
        assert store.set_state("m", 1, state) is True
        assert store.load_all()[0].state == state
    assert store.set_state("ghost", 1, "eligible") is False
    with pytest.raises(ValueError, match="state"):
        store.set_state("m", 1, "sleeping")
    with pytest.raises(ValueError, match="state"):
        store.register(replace(fresh("n"), state="bogus"))
    assert [p.name for p in store.load_all()] == ["m"]
