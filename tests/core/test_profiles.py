import dataclasses
import math

import numpy as np
import pytest

from modipick.core import Candidate, ModelProfile, ewma_update
from modipick.core.profiles import MEASURED_ACCURACY_MIN_SERVED, ewma_step, record_outcome


def ewma_weights(n: int, alpha: float) -> np.ndarray:
    """Weights the EWMA gives x_1..x_n when the first sample seeds the mean."""
    w = alpha * (1 - alpha) ** np.arange(n - 1, -1, -1, dtype=float)
    w[0] = (1 - alpha) ** (n - 1)
    return w


@pytest.mark.parametrize("alpha", [0.05, 0.2, 0.5, 0.9])
def test_ewma_mean_and_variance_equal_numpys_weighted_formulas(alpha):
    xs = np.random.default_rng(7).gamma(shape=4.0, scale=12.0, size=60)
    p = ModelProfile("m")
    for i, x in enumerate(xs):
        p = ewma_update(p, float(x), alpha=alpha, now=float(i))
    w = ewma_weights(len(xs), alpha)
    assert w.sum() == pytest.approx(1.0)
    mean = np.average(xs, weights=w)
    var = np.average((xs - mean) ** 2, weights=w)
    assert p.mean_ms == pytest.approx(mean, rel=1e-12)
    assert p.var_ms2 == pytest.approx(var, rel=1e-9)
    assert p.std_ms == pytest.approx(math.sqrt(var), rel=1e-9)
    assert p.samples == len(xs)
    assert p.updated_at == len(xs) - 1


def test_first_sample_sets_the_mean_and_zero_variance_whatever_came_before():
    p = ModelProfile("m", mean_ms=999.0, var_ms2=50.0, samples=0)
    q = ewma_update(p, 12.0, alpha=0.1, now=5.0)
    assert (q.mean_ms, q.var_ms2, q.samples, q.updated_at) == (12.0, 0.0, 1, 5.0)


def test_alpha_one_forgets_everything_but_the_last_sample():
    p = ModelProfile("m")
    for x in (10.0, 50.0, 20.0):
        p = ewma_update(p, x, alpha=1.0, now=0.0)
    assert (p.mean_ms, p.var_ms2) == (20.0, 0.0)


def test_ewma_step_is_the_single_formula():
    assert ewma_step(10.0, 4.0, 3, 20.0, 0.25) == (12.5, 0.75 * (4.0 + 0.25 * 100.0))
    assert ewma_step(10.0, 4.0, 0, 20.0, 0.25) == (20.0, 0.0)


def test_ewma_update_returns_a_new_profile_and_leaves_the_old_one():
    p = ModelProfile("m", declared_accuracy=70.0, correct=3, served=4, state="warming")
    q = ewma_update(p, 8.0, alpha=0.3, now=1.0)
    assert p.samples == 0 and q.samples == 1
    assert (q.declared_accuracy, q.correct, q.served, q.state) == (70.0, 3, 4, "warming")


@pytest.mark.parametrize("alpha", [0.0, -0.1, 1.01, math.nan])
def test_alpha_outside_zero_one_is_rejected(alpha):
    with pytest.raises(ValueError, match="alpha"):
        ewma_update(ModelProfile("m"), 1.0, alpha=alpha, now=0.0)


@pytest.mark.parametrize("x", [-1.0, math.nan, math.inf])
def test_bad_observation_is_rejected(x):
    with pytest.raises(ValueError, match="observation"):
        ewma_update(ModelProfile("m"), x, alpha=0.5, now=0.0)


def test_measured_accuracy_replaces_declared_after_enough_outcomes():
    p = ModelProfile("m", declared_accuracy=80.0)
    assert p.measured_accuracy is None and p.accuracy == 80.0
    for i in range(MEASURED_ACCURACY_MIN_SERVED - 1):
        p = record_outcome(p, correct=i % 2 == 0)  # about half right
    assert p.served == MEASURED_ACCURACY_MIN_SERVED - 1
    assert p.measured_accuracy == pytest.approx(100.0 * p.correct / p.served)
    assert p.accuracy == 80.0  # not enough evidence yet
    assert p.candidate().accuracy == 80.0
    p = record_outcome(p, correct=False)
    assert p.served == MEASURED_ACCURACY_MIN_SERVED
    assert p.accuracy == pytest.approx(100.0 * p.correct / p.served)
    assert p.accuracy < 60.0
    assert p.candidate().accuracy == p.accuracy


def test_record_outcome_counts_correct_and_served():
    p = record_outcome(record_outcome(ModelProfile("m"), True), False)
    assert (p.correct, p.served) == (1, 2)


def test_candidate_is_the_lean_view_with_std_from_variance():
    p = ModelProfile("resnet", version=3, declared_accuracy=76.0, mean_ms=20.0, var_ms2=6.25)
    c = p.candidate()
    assert c == Candidate("resnet", 3, 76.0, 20.0, 2.5)
    assert c.key == p.key == "resnet:3"


def test_from_stats_squares_the_std():
    p = ModelProfile.from_stats("m", 71.0, 5.43, 0.11, version=2, samples=9, updated_at=3.0)
    assert p.var_ms2 == pytest.approx(0.11 ** 2)
    assert (p.version, p.samples, p.updated_at, p.declared_accuracy) == (2, 9, 3.0, 71.0)


@pytest.mark.parametrize("field", ["declared_accuracy", "mean_ms", "var_ms2"])
@pytest.mark.parametrize("value", [-0.5, math.nan, math.inf, -math.inf])
def test_negative_or_non_finite_numbers_are_rejected(field, value):
    with pytest.raises(ValueError, match=field):
        ModelProfile("m", **{field: value})


def test_accuracy_is_a_percentage():
    with pytest.raises(ValueError, match="percentage"):
        ModelProfile("m", declared_accuracy=100.5)
    assert ModelProfile("m", declared_accuracy=100.0).accuracy == 100.0


@pytest.mark.parametrize("field", ["samples", "correct", "served"])
def test_negative_counts_are_rejected(field):
    with pytest.raises(ValueError, match=field):
        ModelProfile("m", **{field: -1})


def test_more_correct_than_served_is_rejected():
    with pytest.raises(ValueError, match="exceeds served"):
        ModelProfile("m", correct=5, served=4)


def test_non_finite_update_time_is_rejected():
    with pytest.raises(ValueError, match="updated_at"):
        ModelProfile("m", updated_at=math.nan)


def test_profile_is_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ModelProfile("m").mean_ms = 1.0  # type: ignore[misc]
