"""ProfileStore.reseed: the change detector's atomic (mean, variance) replacement, on both stores."""

from __future__ import annotations

import math

import pytest

from modipick.core import ModelProfile, ewma_update


def _fresh(name: str = "m", version: int = 1) -> ModelProfile:
    return ModelProfile(name=name, version=version, declared_accuracy=70.0, state="eligible")


def test_reseed_replaces_mean_and_variance_and_keeps_what_else_was_learned(store, clock):
    store.register(_fresh())
    store.register(_fresh("other"))
    store.observe_many([("m", 1, 10.0), ("m", 1, 12.0), ("other", 1, 5.0)], alpha=0.5, now=1.0)
    store.record_outcome("m", 1, True)
    clock.now = 77.25
    assert store.reseed("m", 1, 31.5, 4.0) is True
    profiles = {p.name: p for p in store.load_all()}
    m = profiles["m"]
    assert (m.mean_ms, m.var_ms2, m.updated_at) == (31.5, 4.0, 77.25)
    assert (m.samples, m.correct, m.served, m.state, m.declared_accuracy) == (2, 1, 1, "eligible", 70.0)
    assert profiles["other"].mean_ms == 5.0  # only the named profile changes


def test_observations_after_a_reseed_step_from_the_new_seed(store):
    store.register(_fresh())
    store.observe_many([("m", 1, 10.0)] * 5, alpha=0.1, now=1.0)
    assert store.reseed("m", 1, 30.0, 9.0, now=2.0)
    store.observe_many([("m", 1, 33.0)], alpha=0.1, now=3.0)
    (p,) = store.load_all()
    want = ewma_update(ModelProfile(name="m", version=1, declared_accuracy=70.0, mean_ms=30.0, var_ms2=9.0,
                                    samples=5, state="eligible"), 33.0, alpha=0.1, now=3.0)
    assert math.isclose(p.mean_ms, want.mean_ms, rel_tol=1e-12) and math.isclose(p.var_ms2, want.var_ms2, rel_tol=1e-12)
    assert (p.samples, p.updated_at) == (6, 3.0)


def test_reseed_of_a_never_observed_profile_counts_as_one_sample(store):
    """Otherwise the next observation would be taken as the first and overwrite the seed."""
    store.register(_fresh())
    assert store.reseed("m", 1, 20.0, 1.0, now=5.0)
    store.observe_many([("m", 1, 40.0)], alpha=0.5, now=6.0)
    (p,) = store.load_all()
    assert p.samples == 2 and p.mean_ms == 30.0


def test_reseed_of_an_unknown_model_is_refused_not_created(store):
    store.register(_fresh())
    assert store.reseed("ghost", 1, 1.0, 1.0, now=1.0) is False
    assert store.reseed("m", 2, 1.0, 1.0, now=1.0) is False
    assert [(p.name, p.version) for p in store.load_all()] == [("m", 1)]


@pytest.mark.parametrize("mean, var, named", [(float("nan"), 1.0, "mean"), (-1.0, 1.0, "mean"),
                                              (float("inf"), 1.0, "mean"), (5.0, -0.5, "variance"),
                                              (5.0, float("nan"), "variance")])
def test_bad_seeds_are_refused_before_anything_changes(store, mean, var, named):
    store.register(_fresh())
    store.observe_many([("m", 1, 10.0)], alpha=0.5, now=1.0)
    with pytest.raises(ValueError, match=named):
        store.reseed("m", 1, mean, var, now=2.0)
    (p,) = store.load_all()
    assert (p.mean_ms, p.var_ms2, p.updated_at) == (10.0, 0.0, 1.0)


def test_floats_survive_the_reseed_bit_for_bit(store):
    store.register(_fresh())
    mean, var = 0.1 + 0.2, 1 / 3
    store.reseed("m", 1, mean, var, now=1_700_000_000.123456)
    (p,) = store.load_all()
    assert (p.mean_ms, p.var_ms2, p.updated_at) == (mean, var, 1_700_000_000.123456)
