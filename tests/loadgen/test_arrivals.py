"""Open-loop arrival schedules."""

from __future__ import annotations

import numpy as np
import pytest

from modipick.loadgen import arrivals


def test_poisson_is_seeded_and_has_the_rate():
    a = arrivals.poisson(200.0, count=5000, seed=3)
    assert len(a) == 5000 and a[0] == 0.0 and np.all(np.diff(a) >= 0)
    assert np.array_equal(a, arrivals.poisson(200.0, count=5000, seed=3))
    assert not np.array_equal(a, arrivals.poisson(200.0, count=5000, seed=4))
    assert 5000 / a[-1] == pytest.approx(200.0, rel=0.05)
    gaps = np.diff(a)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, rel=0.1)  # exponential gaps


def test_bounds_by_count_duration_or_both():
    by_time = arrivals.poisson(100.0, duration_s=3.0, seed=1)
    assert by_time[-1] < 3.0 and 240 <= len(by_time) <= 360
    assert len(arrivals.poisson(100.0, count=50, duration_s=30.0)) == 50
    assert len(arrivals.poisson(100.0, count=10_000, duration_s=1.0)) < 200
    assert arrivals.constant(4.0, duration_s=1.0).tolist() == [0.0, 0.25, 0.5, 0.75]


def test_trace_arrivals_repeat_back_to_back():
    times = arrivals.from_trace(np.array([10.0, 10.5, 11.0]), count=7)
    assert times.tolist() == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    assert arrivals.from_trace(np.array([0.0, 1.0]), duration_s=3.5).tolist() == [0.0, 1.0, 2.0, 3.0]


@pytest.mark.parametrize("call", [
    lambda: arrivals.poisson(10.0),
    lambda: arrivals.poisson(0.0, count=3),
    lambda: arrivals.constant(10.0, count=0),
    lambda: arrivals.poisson(10.0, duration_s=-1.0),
])
def test_bad_arrival_parameters(call):
    with pytest.raises(ValueError):
        call()
