import math
import random

import pytest

from modipick.core.returnleg import ReturnLegEstimate, ReturnLegModel, empirical


def normal_leg(rng, mean=58.0, std=31.0):
    while True:  # the paper's network model: normal, resampled while <= 0
        x = rng.gauss(mean, std)
        if x > 0:
            return x


def test_before_min_samples_the_paper_assumption_holds():
    model = ReturnLegModel(min_samples=20)
    for _ in range(5):
        model.observe(10.0, 99.0)
    est = model.estimate(42.0)
    assert est.cdf(41.9) == 0.0 and est.cdf(42.0) == 1.0


@pytest.mark.parametrize("log_scale", [True, False])
def test_mirrored_legs_learn_slope_one_and_tight_residuals(log_scale):
    rng = random.Random(3)
    model = ReturnLegModel(log_scale=log_scale)
    for _ in range(500):
        u = normal_leg(rng)
        model.observe(u, u)
    assert model.slope == pytest.approx(1.0, abs=1e-6)
    assert model.persistence == pytest.approx(0.0, abs=1e-6)
    est = model.estimate(80.0)  # (the first legs, before the uploads spread, leave a trace of noise)
    assert est.quantile(0.01) == pytest.approx(80.0, rel=1e-5)
    assert est.quantile(0.99) == pytest.approx(80.0, rel=1e-5)


@pytest.mark.parametrize("log_scale", [True, False])
def test_independent_legs_learn_the_marginal_distribution(log_scale):
    rng = random.Random(4)
    model = ReturnLegModel(window=512, log_scale=log_scale)
    for _ in range(3000):
        model.observe(normal_leg(rng), normal_leg(rng))
    assert abs(model.slope) < 0.15 and model.persistence < 0.15  # shrunk to (nearly) 0
    for upload in (5.0, 150.0):  # neither a fast nor a slow upload says much about the reply
        est = model.estimate(upload)
        assert 45 < est.quantile(0.5) < 72
        assert est.quantile(0.9) - est.quantile(0.1) > 50  # the spread of the network, not of 0


def regime_trace(n, rng):
    """A network whose state persists: good (about 50 ms) or bad (about 500 ms) for runs of requests."""
    level, out = 50.0, []
    for _ in range(n):
        if rng.random() < 0.02:
            level = 550.0 - level
        out.append(level * math.exp(rng.gauss(0.0, 0.05)))
    return out


def test_a_persistent_network_re_centres_on_the_last_reported_leg():
    rng = random.Random(5)
    model = ReturnLegModel()
    legs = regime_trace(4000, rng)
    for r in legs:
        model.observe(normal_leg(rng), r)
    assert model.persistence > 0.8
    model.observe(50.0, 48.0)
    good = model.estimate(50.0)
    assert good.basis_ms == 48.0 and good.quantile(0.5) < 80 and good.cdf(100.0) > 0.9
    model.observe(50.0, 510.0)
    bad = model.estimate(50.0)
    assert bad.quantile(0.5) > 300 and bad.cdf(100.0) < 0.1


def test_stale_reports_are_fitted_with_the_staleness_they_have():
    """With `basis_ms` from the decision's estimate, c measures how much a k-request-old leg says."""
    rng = random.Random(6)
    legs = [50.0]
    for _ in range(6000):  # AR(1) in logs, rho = 0.9
        legs.append(math.exp(math.log(50.0) + 0.9 * (math.log(legs[-1]) - math.log(50.0)) + rng.gauss(0, 0.3)))
    fresh, stale = ReturnLegModel(), ReturnLegModel()
    lag = 10
    bases: list[float | None] = []
    for i, r in enumerate(legs):
        fresh.observe(50.0, r)
        bases.append(stale.estimate(50.0).basis_ms)
        if i >= lag:
            stale.observe(50.0, legs[i - lag], bases[i - lag])
    assert fresh.persistence == pytest.approx(0.9, abs=0.1)
    assert stale.persistence < fresh.persistence - 0.3  # 0.9 ** 11 = 0.31


def test_log_scale_estimate_cdf_and_quantile_agree():
    est = ReturnLegEstimate(tuple(sorted(math.log(v) for v in (20.0, 40.0, 80.0, 160.0))), 0.0, log_scale=True)
    assert est.cdf(0.0) == 0.0 and est.cdf(-5.0) == 0.0
    assert [est.cdf(x) for x in (19.9, 20.0, 79.0, 1000.0)] == [0.0, 0.25, 0.5, 1.0]
    assert est.quantile(0.5) == pytest.approx(80.0)
    assert est.mean == pytest.approx(75.0)


def test_empirical_cdf_is_monotone_and_bounded():
    est = empirical([5, 1, 3, 2, 4])
    assert [est.cdf(x) for x in (0, 1, 2.5, 5, 9)] == [0.0, 0.2, 0.4, 1.0, 1.0]
    assert est.mean == pytest.approx(3.0)
    with pytest.raises(ValueError):
        empirical([])


def test_exact_estimate():
    est = ReturnLegEstimate.exact(7.0)
    assert est.quantile(0.5) == 7.0 and est.cdf(6.99) == 0.0


@pytest.mark.parametrize("kwargs", [{"alpha": 0.0}, {"alpha": 1.5}, {"window": 0}, {"min_samples": 0}])
def test_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError):
        ReturnLegModel(**kwargs)


def test_uploads_prior_answers_with_the_upload_distribution_until_legs_are_reported():
    rng = random.Random(8)
    model = ReturnLegModel(prior="uploads", min_samples=20)
    assert model.estimate(10.0).cdf(10.0) == 1.0  # nothing known yet: the paper's assumption
    for _ in range(200):
        model.observe_upload(normal_leg(rng))
    est = model.estimate(10.0)  # a fast upload, but the reply is drawn like any upload
    assert 45 < est.quantile(0.5) < 72 and est.cdf(10.0) < 0.1
    for _ in range(20):
        model.observe(30.0, 30.0)  # reported legs take over once there are min_samples of them
    assert model.estimate(30.0).quantile(0.5) == pytest.approx(30.0, abs=1e-6)


def test_mirror_prior_ignores_uploads_and_rejects_unknown_priors():
    model = ReturnLegModel()
    for _ in range(50):
        model.observe_upload(99.0)
    assert model.estimate(10.0).quantile(0.5) == 10.0
    with pytest.raises(ValueError, match="prior"):
        ReturnLegModel(prior="psychic")
