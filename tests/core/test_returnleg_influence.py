"""What one source can do to a shared return-leg model, and estimates that stay inside what was seen."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modipick.core.returnleg import ReturnLegModel

WINDOW, CAP = 64, 3


def shared_model(**kw) -> ReturnLegModel:
    return ReturnLegModel(window=WINDOW, min_samples=10, source_cap=CAP, min_sources=3, **kw)


def extremes(model: ReturnLegModel, upload_ms: float) -> tuple[float, float]:
    est = model.estimate(upload_ms)
    lo, hi = est.centre + est.offsets[0], est.centre + est.offsets[-1]
    return (math.exp(lo), math.exp(hi)) if est.log_scale else (lo, hi)


def within(x: float, lo: float, hi: float) -> bool:
    return lo - 1e-9 * abs(lo) - 1e-9 <= x <= hi + 1e-9 * abs(hi) + 1e-9  # (legs in ms may fit below 0)


leg = st.floats(0.5, 2_000.0)
far = st.floats(1e-3, 3.6e6)
honest = st.lists(st.tuples(st.integers(0, 9), st.floats(1.0, 500.0), leg), min_size=20, max_size=120)
forged = st.lists(st.tuples(far, far), max_size=3 * CAP)


@settings(max_examples=80, deadline=None)
@given(honest=honest, forged=forged, positions=st.randoms(use_true_random=False),
       queries=st.lists(st.floats(1e-3, 1e6), min_size=1, max_size=4))
def test_one_source_cannot_move_a_shared_estimate_outside_the_other_sources_legs(honest, forged, positions, queries):
    """Whatever one source reports, in whatever order, however often (only CAP of its samples are
    kept in the window), every estimate stays within the range of the other sources' legs."""
    stream = [(f"c{c}", u, r) for c, u, r in honest]
    for u, r in forged:
        stream.insert(positions.randrange(len(stream) + 1), ("mallory", u, r))
    model = shared_model()
    for source, u, r in stream:
        model.observe(u, r, source=source)
    others = [r for source, _, r in stream if source != "mallory"]
    if not model.ready:
        return
    for upload in queries:
        lo, hi = extremes(model, upload)
        assert within(lo, min(others), max(others)) and within(hi, min(others), max(others)), (upload, lo, hi)
    assert model.ignored >= len(forged) - CAP


@settings(max_examples=80, deadline=None)
@given(samples=st.lists(st.tuples(st.floats(40.0, 60.0), leg), min_size=20, max_size=200),
       upload=st.sampled_from([1e-3, 1.0, 2_000.0, 1e6]), log_scale=st.booleans())
def test_an_upload_outside_the_training_range_gets_a_leg_within_the_observed_range(samples, upload, log_scale):
    """A class's model stays within the legs seen; a client's own within half their range beyond."""
    legs = [r for _, r in samples]
    t = math.log if log_scale else float
    back = math.exp if log_scale else float
    for margin in (0.0, 0.5):
        model = ReturnLegModel(log_scale=log_scale, range_margin=margin)
        for u, r in samples:
            model.observe(u, r)
        lo, hi = extremes(model, upload)
        reach = margin * (t(max(legs)) - t(min(legs)))
        bounds = back(t(min(legs)) - reach), back(t(max(legs)) + reach)
        assert within(lo, *bounds) and within(hi, *bounds), (margin, lo, hi, bounds)


def test_a_class_trained_on_40_to_60_ms_uploads_does_not_extrapolate_its_slope():
    """Legs that follow the upload (b = 1): a 1 ms or a 2,000 ms upload is answered as the nearest
    upload seen, inside the legs seen (the regression would say 1 ms and 2,000 ms)."""
    rng = random.Random(5)
    model = shared_model()
    for i in range(300):
        u = rng.uniform(40.0, 60.0)
        model.observe(u, u * math.exp(rng.gauss(0.0, 0.02)), source=f"c{i % 30}")
    assert model.slope == pytest.approx(1.0, abs=0.1)
    seen = model.observed_range_ms()
    assert seen is not None and 38.0 < seen[0] and seen[1] < 63.0
    for upload in (1.0, 2_000.0):
        lo, hi = extremes(model, upload)
        assert within(lo, *seen) and within(hi, *seen)


def test_two_far_points_cannot_set_the_slope():
    """Thirty clients at one upload (about 50 ms), reply about 10 ms; one more sends two reports of a
    0.01 ms upload and a 5 s reply. Fitted alone they would make a steep slope (high leverage)."""
    rng = random.Random(7)
    model = shared_model()
    for i in range(60):
        model.observe(rng.uniform(49.0, 51.0), rng.uniform(9.0, 11.0), source=f"c{i % 30}")
    before = model.estimate(1.0).quantile(0.5)
    for _ in range(2):
        model.observe(0.01, 5_000.0, source="mallory")
    assert abs(model.slope) < 0.2
    for upload in (0.01, 1.0, 50.0, 5_000.0):
        lo, hi = extremes(model, upload)
        assert 9.0 <= lo <= hi <= 11.0, (upload, lo, hi)
    assert model.estimate(1.0).quantile(0.5) == pytest.approx(before, abs=1.0)


def test_a_shared_model_waits_for_enough_sources():
    model = shared_model()
    for i in range(100):
        model.observe(50.0, 10.0, source=f"c{i % 2}")
    assert not model.ready and model.sources == 2 and model.ignored == 100 - 2 * CAP
    assert model.estimate(50.0).quantile(0.5) == 50.0  # the prior still answers
    for i in range(10):
        model.observe(50.0, 10.0, source=f"d{i}")
    assert model.ready and model.estimate(50.0).quantile(0.5) == pytest.approx(10.0)


def test_a_sources_cap_frees_as_its_samples_leave_the_window():
    model = shared_model()
    for _ in range(CAP + 2):
        model.observe(50.0, 10.0, source="a")
    assert model.ignored == 2
    for i in range(WINDOW):
        model.observe(50.0, 10.0, source=f"o{i % 32}")
    assert model.ignored == 2
    model.observe(50.0, 10.0, source="a")  # its old samples were overwritten: it may report again
    assert model.ignored == 2 and model.sources == 33


def test_the_cap_and_sources_settings_are_checked():
    with pytest.raises(ValueError, match="source_cap"):
        ReturnLegModel(window=10, source_cap=5)
    with pytest.raises(ValueError, match="min_sources"):
        ReturnLegModel(min_sources=0)
    with pytest.raises(ValueError, match="winsor_k"):
        ReturnLegModel(winsor_k=0.0)
    with pytest.raises(ValueError, match="range_margin"):
        ReturnLegModel(range_margin=2.0)
