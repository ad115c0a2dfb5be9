"""The compact return-leg state: small, versioned, and a decoded model estimates as the original."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modipick.core.returnleg import ReturnLegModel
from modipick.core.returnleg_state import (MAX_STATE_BYTES, VERSION, StateError, encode_leg, from_state,
                                           generation_of, pending_legs, to_state)


def client_model() -> ReturnLegModel:
    return ReturnLegModel(window=256, min_samples=20)


def trained(n: int, seed: int = 1) -> ReturnLegModel:
    rng = random.Random(seed)
    model = client_model()
    leg = 80.0
    for _ in range(n):
        leg = max(1.0, 0.8 * leg + 0.2 * rng.lognormvariate(math.log(80.0), 0.6))
        model.observe(rng.uniform(20.0, 200.0), leg)
    return model


def quantiles(model: ReturnLegModel, upload: float) -> list[float]:
    est = model.estimate(upload)
    return [est.quantile(q) for q in (0.05, 0.25, 0.5, 0.75, 0.95)]


@pytest.mark.parametrize("n", [0, 1, 19, 20, 32, 33, 300, 5_000])
def test_state_fits_in_a_kilobyte_and_round_trips_byte_for_byte(n):
    model = trained(n)
    state = to_state(model, generation=7)
    assert len(state) <= MAX_STATE_BYTES
    assert state[0] == VERSION and generation_of(state) == 7
    again = from_state(state, client_model)
    assert to_state(again, generation=7) == state  # decoding loses nothing the encoding kept
    assert again.samples == model.samples and again.ready == model.ready
    assert again.last_return_ms == model.last_return_ms


@pytest.mark.parametrize("n", [20, 32, 256, 2_000])
def test_decoded_model_estimates_as_the_original(n):
    model = trained(n, seed=n)
    model._resort()  # the original re-sorts its window every few legs; the decoded one is current
    again = from_state(to_state(model), client_model)
    assert again.ready
    for upload in (25.0, 90.0, 190.0):
        for mine, theirs in zip(quantiles(model, upload), quantiles(again, upload)):
            # a 32-point sketch of a 256-leg window: within a few per cent at every quantile
            assert theirs == pytest.approx(mine, rel=0.08 if n > 32 else 1e-5)
        assert again.estimate(upload).centre == pytest.approx(model.estimate(upload).centre, rel=1e-12)
    assert again.observed_range_ms() == model.observed_range_ms()


def test_decoded_model_keeps_learning_like_the_original():
    model = trained(400, seed=3)
    again = from_state(to_state(model), client_model)
    rng = random.Random(9)
    for _ in range(300):  # a new regime: the decoded window is replaced evenly by the new legs
        u, r = rng.uniform(20.0, 200.0), rng.uniform(300.0, 400.0)
        model.observe(u, r)
        again.observe(u, r)
    assert quantiles(again, 90.0)[2] == pytest.approx(quantiles(model, 90.0)[2], rel=0.05)
    assert again.samples == model.samples


def test_unknown_version_and_damaged_states_are_refused():
    state = bytearray(to_state(trained(50)))
    state[0] = VERSION + 1
    with pytest.raises(StateError, match="version"):
        from_state(bytes(state), client_model)
    good = to_state(trained(50))
    with pytest.raises(StateError, match="malformed"):
        from_state(good[:-4], client_model)
    with pytest.raises(StateError, match="too short"):
        from_state(b"\x01", client_model)


@pytest.mark.parametrize("n", [0, 5, 300])
def test_legs_appended_after_a_state_are_learned_by_the_decoded_model(n):
    state = to_state(trained(n, seed=5), generation=3)
    legs = [(30.0, 70.5, None), (35.0, 72.25, 70.5), (31.0, 90.0, 72.25)]
    value = state + b"".join(encode_leg(*leg) for leg in legs)
    assert pending_legs(state) == 0 and pending_legs(value) == 3 and generation_of(value) == 3
    expected = from_state(state, client_model)
    for leg in legs:
        expected.observe(*leg)
    again = from_state(value, client_model)
    assert to_state(again, 4) == to_state(expected, 4)
    assert again.samples == n + 3 and again.last_return_ms == 90.0


def test_damaged_pending_legs_are_refused():
    state = to_state(trained(30))
    with pytest.raises(StateError, match="malformed"):
        from_state(state + encode_leg(30.0, 60.0, None)[:-1], client_model)
    with pytest.raises(StateError, match="non-finite"):
        from_state(state + encode_leg(30.0, math.inf, None), client_model)
    with pytest.raises(StateError, match="non-finite"):
        from_state(state + encode_leg(30.0, 60.0, -math.inf), client_model)


def test_a_shared_class_model_is_not_encoded():
    with pytest.raises(ValueError, match="client"):
        to_state(ReturnLegModel(window=64, source_cap=3, min_sources=3))


@settings(max_examples=60, deadline=None)
@given(legs=st.lists(st.tuples(st.floats(0.5, 5_000.0), st.floats(0.5, 20_000.0)), min_size=20, max_size=400),
       upload=st.floats(1e-3, 1e6))
def test_decoded_estimates_stay_inside_the_observed_range(legs, upload):
    model = client_model()
    for u, r in legs:
        model.observe(u, r)
    again = from_state(to_state(model), client_model)
    lo, hi = model.observed_range_ms()
    est = again.estimate(upload)
    for q in (0.0, 0.5, 0.999):
        assert lo * (1 - 1e-6) <= est.quantile(q) <= hi * (1 + 1e-6)
