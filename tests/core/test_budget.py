import dataclasses
import math

import pytest

from modipick.core import Budget, Hindsight


def test_execution_budget_is_eq1_sla_minus_twice_the_upload():
    b = Budget(sla_ms=150.0, upload_ms=40.0)
    assert b.return_ms == 40.0
    assert b.execution_ms == 150.0 - 2 * 40.0


def test_an_explicit_return_estimate_replaces_the_upload_for_the_reply_leg():
    b = Budget(sla_ms=150.0, upload_ms=40.0, return_estimate_ms=5.0)
    assert b.return_ms == 5.0
    assert b.execution_ms == 105.0
    assert Budget(sla_ms=150.0, upload_ms=40.0, return_estimate_ms=0.0).execution_ms == 110.0


def test_execution_budget_may_be_negative_when_the_network_ate_the_sla():
    assert Budget(sla_ms=50.0, upload_ms=40.0).execution_ms == -30.0


def test_zero_upload_leaves_the_whole_sla():
    assert Budget(sla_ms=80.0).execution_ms == 80.0


@pytest.mark.parametrize("sla", [0.0, -1.0, math.nan, math.inf, -math.inf])
def test_sla_must_be_a_positive_finite_number(sla):
    with pytest.raises(ValueError, match="SLA"):
        Budget(sla_ms=sla)


@pytest.mark.parametrize("upload", [-0.001, math.nan, math.inf])
def test_upload_must_be_finite_and_not_negative(upload):
    with pytest.raises(ValueError, match="upload"):
        Budget(sla_ms=100.0, upload_ms=upload)


@pytest.mark.parametrize("ret", [-1.0, math.nan, math.inf])
def test_return_estimate_must_be_finite_and_not_negative(ret):
    with pytest.raises(ValueError, match="return estimate"):
        Budget(sla_ms=100.0, upload_ms=1.0, return_estimate_ms=ret)


@pytest.mark.parametrize("ret", [-1.0, math.nan, math.inf])
def test_hindsight_return_must_be_finite_and_not_negative(ret):
    with pytest.raises(ValueError, match="return"):
        Hindsight(return_ms=ret)


def test_real_e2e_uses_the_real_return_leg_not_the_estimate():
    b = Budget(sla_ms=100.0, upload_ms=30.0, hindsight=Hindsight(return_ms=12.5, exec_ms={"a": 7.0}))
    assert b.execution_ms == 40.0  # the decision still sees the paper's estimate
    assert b.real_e2e_ms(7.0) == 30.0 + 7.0 + 12.5


def test_real_e2e_needs_hindsight():
    with pytest.raises(ValueError, match="hindsight"):
        Budget(sla_ms=100.0, upload_ms=30.0).real_e2e_ms(5.0)


def test_budget_is_an_immutable_value():
    b = Budget(sla_ms=100.0, upload_ms=10.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        b.sla_ms = 5.0  # type: ignore[misc]
    assert b == Budget(sla_ms=100.0, upload_ms=10.0)
