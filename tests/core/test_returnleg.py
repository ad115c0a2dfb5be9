import random

import pytest

from modipick.core.returnleg import ReturnLegEstimate, ReturnLegModel, empirical


def test_before_min_samples_the_paper_assumption_holds():
    model = ReturnLegModel(min_samples=20)
    for _ in range(5):
        model.observe(10.0, 99.0)
    est = model.estimate(42.0)
    assert est.cdf(41.9) == 0.0 and est.cdf(42.0) == 1.0


def test_mirrored_legs_learn_slope_one_and_tight_residuals():
    rng = random.Random(3)
    model = ReturnLegModel()
    for _ in range(500):
        u = max(1.0, rng.gauss(58, 31))
        model.observe(u, u)
    assert model.slope == pytest.approx(1.0, abs=1e-6)
    est = model.estimate(80.0)
    assert est.quantile(0.01) == pytest.approx(80.0, abs=1e-6)
    assert est.quantile(0.99) == pytest.approx(80.0, abs=1e-6)


def test_independent_legs_learn_the_marginal_distribution():
    rng = random.Random(4)
    model = ReturnLegModel(alpha=0.01, window=512)
    for _ in range(3000):
        model.observe(max(1.0, rng.gauss(58, 31)), max(1.0, rng.gauss(58, 31)))
    assert abs(model.slope) < 0.3
    est = model.estimate(150.0)  # a slow upload says little about the reply
    assert 35 < est.quantile(0.5) < 85
    assert est.quantile(0.9) - est.quantile(0.1) > 50  # the spread of the network, not of 0


def test_empirical_cdf_is_monotone_and_bounded():
    est = empirical([5, 1, 3, 2, 4])
    assert [est.cdf(x) for x in (0, 1, 2.5, 5, 9)] == [0.0, 0.2, 0.4, 1.0, 1.0]
    assert est.mean == pytest.approx(3.0)
    with pytest.raises(ValueError):
        empirical([])


def test_exact_estimate():
    est = ReturnLegEstimate.exact(7.0)
    assert est.quantile(0.5) == 7.0 and est.cdf(6.99) == 0.0
