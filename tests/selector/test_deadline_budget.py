"""The Selector's budget without the client's clock (selector/budget.py, clocks.py), the return legs it
learns per client (returnlegs.py) and what it remembers for outcome reports (outcomes.py).
Pure Python: the same pieces over real gRPC are in test_risk_aware_live.py."""

from __future__ import annotations

import random

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from structlog.testing import capture_logs

from modipick.selector.budget import (DEADLINE_SLACK_KEY, Budgeter, BudgetRules, RequestInvalid, ServingOverhead,
                                      deadline_slack_ms)
from modipick.selector.clocks import ClockOffsets
from modipick.selector.outcomes import OutcomeLearner
from modipick.selector.returnlegs import (ReturnLegBook, ReturnLegSettings, network_class,
                                          parse_return_leg_mode)

NOW_NS = 1_800_000_000 * 10**9
SECOND_NS = 10**9


def stamp(ns: int) -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(ns)
    return ts


def _sent(ms_ago: float, skew_s: float = 0.0):
    """A send stamp `ms_ago` before NOW on a client clock `skew_s` ahead of ours."""
    return stamp(int(NOW_NS - ms_ago * 1e6 + skew_s * SECOND_NS))


def test_the_deadline_gives_the_upload_whatever_the_client_clock_says():
    budgeter = Budgeter()
    honest = budgeter.make(sla_ms=150.0, send_time=_sent(30.0), receive_ns=NOW_NS, left_s=0.120, client_id="c")
    for skew in (-10.0, 10.0, 3600.0):
        skewed = budgeter.make(sla_ms=150.0, send_time=_sent(30.0, skew), receive_ns=NOW_NS, left_s=0.120,
                               client_id="c")
        assert skewed.source == "deadline" and skewed.upload_ms == pytest.approx(30.0)
        assert skewed.budget == honest.budget
    no_stamp = budgeter.make(sla_ms=150.0, send_time=None, receive_ns=NOW_NS, left_s=0.120)
    assert no_stamp.budget == honest.budget
    # expired already: everything was spent upstream
    late = budgeter.make(sla_ms=150.0, send_time=None, receive_ns=NOW_NS, left_s=-0.010)
    assert late.upload_ms == pytest.approx(160.0) and late.budget.execution_ms < 0


def test_a_deadline_not_set_from_the_sla_is_ignored_and_the_send_time_used():
    budgeter = Budgeter()
    made = budgeter.make(sla_ms=150.0, send_time=_sent(12.0), receive_ns=NOW_NS, left_s=5.0)
    assert made.source == "send_time" and made.upload_ms == pytest.approx(12.0)
    with pytest.raises(RequestInvalid, match="client_send_time"):
        budgeter.make(sla_ms=150.0, send_time=None, receive_ns=NOW_NS, left_s=5.0)
    with pytest.raises(RequestInvalid, match="client_send_time"):  # no deadline, clock 10 s off
        budgeter.make(sla_ms=150.0, send_time=_sent(12.0, -10.0), receive_ns=NOW_NS, left_s=None)
    # the paper's measurement on request
    paper = Budgeter(BudgetRules(use_deadline=False))
    assert paper.make(sla_ms=150.0, send_time=_sent(12.0), receive_ns=NOW_NS, left_s=0.140).upload_ms == \
        pytest.approx(12.0)


def test_the_clients_deadline_slack_is_taken_off_what_is_left():
    budgeter = Budgeter()
    made = budgeter.make(sla_ms=100.0, send_time=None, receive_ns=NOW_NS, left_s=1.080, slack_ms=1000.0)
    assert made.source == "deadline" and made.upload_ms == pytest.approx(20.0)
    assert deadline_slack_ms([("x-request-id", "r"), (DEADLINE_SLACK_KEY, "1000.0")]) == 1000.0
    assert deadline_slack_ms([]) == 0.0 and deadline_slack_ms(None) == 0.0
    for bad in ("soon", "-5", "nan"):
        with pytest.raises(RequestInvalid, match=DEADLINE_SLACK_KEY):
            deadline_slack_ms([(DEADLINE_SLACK_KEY, bad)])


def test_clock_offsets_are_learned_per_client_from_deadlines_and_correct_the_send_time_fallback():
    budgeter = Budgeter()
    with capture_logs() as logs:
        for i in range(30):
            # a client 10 s behind our clock, uploads 20..49 ms, 3 ms of header latency on top
            up = 20.0 + i
            budgeter.make(sla_ms=200.0, send_time=_sent(up + 3.0, -10.0), receive_ns=NOW_NS,
                          left_s=(200.0 - up) / 1000.0, client_id="phone-1")
        budgeter.make(sla_ms=200.0, send_time=_sent(25.0, 4.0), receive_ns=NOW_NS, left_s=0.180)  # anonymous
    offset = budgeter.clocks.offset("phone-1")
    assert offset == pytest.approx(10_003.0, abs=1e-3)
    assert budgeter.clocks.offset("") is None and list(budgeter.clocks.snapshot()) == ["phone-1"]
    offset_logs = [e for e in logs if e["event"] == "client clock offset"]
    assert offset_logs and offset_logs[0]["client_id"] == "phone-1"
    assert offset_logs[-1]["clock_offset_ms"] == pytest.approx(10_003.0, abs=0.01)
    # the same client without a deadline: its send time, corrected by the offset (no refusal)
    fallback = budgeter.make(sla_ms=200.0, send_time=_sent(43.0, -10.0), receive_ns=NOW_NS, left_s=None,
                             client_id="phone-1")
    assert fallback.source == "send_time" and fallback.upload_ms == pytest.approx(40.0, abs=1e-3)
    assert fallback.clock_offset_ms == pytest.approx(10_003.0, abs=1e-3)


def test_clock_offsets_are_bounded_and_reports_count_only_without_deadline_samples():
    clocks = ClockOffsets(capacity=3, alpha=0.5)
    for i in range(5):
        clocks.observe(f"c{i}", float(i))
    assert len(clocks) == 3 and clocks.offset("c0") is None and clocks.offset("c4") == 4.0
    clocks.observe("r", 100.0, "reports")
    clocks.observe("r", 200.0, "reports")
    assert clocks.snapshot()["r"] == (150.0, "reports", 2)
    clocks.observe("r", -5.0, "deadline")
    assert clocks.offset("r") == -5.0
    with pytest.raises(ValueError, match="source"):
        clocks.observe("r", 1.0, "guess")


def test_budgets_for_modipick_stay_the_papers_and_risk_aware_gets_the_learned_leg():
    book = ReturnLegBook(ReturnLegSettings(min_samples=5))
    budgeter = Budgeter(returns=book, overhead=ServingOverhead(2.0))
    common = dict(sla_ms=150.0, send_time=None, receive_ns=NOW_NS, left_s=0.120, client_id="c")
    paper = budgeter.make(**common, with_leg=False).budget
    assert paper.return_leg is None and paper.execution_ms == pytest.approx(150.0 - 30.0 - 2.0 - 30.0)
    prior = budgeter.make(**common, with_leg=True).budget
    assert prior.return_leg is not None and prior.return_leg.quantile(0.5) == pytest.approx(30.0)  # mirror prior
    for i in range(40):
        book.observe("c", 30.0 + i % 3, 70.0 + i % 5, None, "client")
    learned = budgeter.make(**common, with_leg=True)
    leg = learned.budget.return_leg
    assert leg is learned.leg and learned.leg_owner == "client"
    assert 69.0 <= leg.quantile(0.5) <= 75.0
    # T_U: what is left (SLA - upload - overhead) minus a low quantile of the learned leg
    assert learned.budget.sla_ms - learned.budget.upload_ms == pytest.approx(118.0)
    assert learned.budget.execution_ms == pytest.approx(118.0 - leg.quantile(0.05))
    # ModiPick on the same request still budgets with R = U
    assert budgeter.make(**common, with_leg=False).budget.execution_ms == pytest.approx(paper.execution_ms)


def test_a_learned_serving_overhead_has_a_mean_and_a_spread_and_risk_aware_gets_both():
    fixed = ServingOverhead(2.0)
    fixed.observe(9.0)
    assert (fixed.value_ms, fixed.std_ms) == (2.0, 0.0)
    learned = ServingOverhead(None, alpha=0.05)
    for i in range(400):
        learned.observe(1.0 if i % 2 else 3.0)
    assert learned.value_ms == pytest.approx(2.0, abs=0.1) and learned.std_ms == pytest.approx(1.0, abs=0.1)
    learned.observe(5000.0)  # past max_ms: not an overhead but a stall elsewhere
    assert learned.std_ms == pytest.approx(1.0, abs=0.1)
    budgeter = Budgeter(overhead=learned)
    common = dict(sla_ms=150.0, send_time=None, receive_ns=NOW_NS, left_s=0.120, client_id="c")
    budget = budgeter.make(**common, with_leg=True).budget
    assert budget.overhead_std_ms == learned.std_ms
    assert budget.upload_ms == pytest.approx(30.0 + learned.value_ms)


def test_return_leg_models_per_client_with_a_shared_model_per_network_class():
    assert network_class("lte/device-42") == "lte" and network_class("device-42") == "default"
    assert network_class("") == "default" and network_class("/x") == "default"
    book = ReturnLegBook(ReturnLegSettings(clients=2, min_samples=5))
    rng = random.Random(3)
    for i in range(30):  # lte clients' legs ~ 80 ms, wifi ~ 10 ms; three clients of each class report
        book.observe(f"lte/a{i % 3}", 20.0, rng.uniform(75, 85), None, "class")
        book.observe(f"wifi/b{i % 3}", 20.0, rng.uniform(8, 12), None, "class")
    # a new lte client: too few reports of its own, so its class's model decides
    first = book.estimate("lte/new", 20.0)
    assert first.owner == "class" and 75.0 <= first.estimate.quantile(0.5) <= 85.0
    assert 8.0 <= book.estimate("wifi/other", 20.0).estimate.quantile(0.5) <= 12.0
    # anonymous requests share the default class: still on the mirror prior (R = upload)
    anonymous = book.estimate("", 33.0)
    assert anonymous.owner == "class" and anonymous.estimate.quantile(0.5) == 33.0
    # the client LRU is bounded: a third client forgets the least recently seen ("lte/new")
    book.estimate("wifi/third", 20.0)
    assert book.known_clients() == 2 and book.evicted == 1
    # a client with its own reports decides with its own model
    for _ in range(10):
        book.estimate("lte/new", 20.0)
        book.observe("lte/new", 20.0, 200.0, None, "client")
    own = book.estimate("lte/new", 20.0)
    assert own.owner == "client" and own.estimate.quantile(0.5) == pytest.approx(200.0, rel=0.01)


def test_return_leg_mode_parsing():
    assert parse_return_leg_mode("learned") == ("learned", None)
    assert parse_return_leg_mode("mirror") == ("mirror", None)
    assert parse_return_leg_mode("12.5") == ("fixed", 12.5)
    for bad in ("-1", "soon", "inf"):
        with pytest.raises(ValueError, match="return leg"):
            parse_return_leg_mode(bad)
    with pytest.raises(ValueError, match="fixed_ms"):
        ReturnLegSettings(mode="fixed")


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_outcome_reports_give_the_return_leg_of_remembered_requests():
    book = ReturnLegBook(ReturnLegSettings(min_samples=3))
    budgeter = Budgeter(returns=book)
    clock = _Clock()
    learner = OutcomeLearner(book, budgeter.clocks, capacity=3, min_ttl_s=5.0, clock=clock)
    made = budgeter.make(sla_ms=100.0, send_time=None, receive_ns=NOW_NS, left_s=0.090, client_id="c")
    learner.remember("r1", made, after_decision_ms=12.0, server_ms=12.5)
    # e2e 60 = upload 10 + server after the decision 12 + return 38
    assert learner.learn("r1", 60.0) == pytest.approx(38.0)
    assert learner.learn("r1", 60.0) is None  # once
    assert learner.learn("never-seen", 60.0) is None
    learner.remember("r2", made, after_decision_ms=12.0, server_ms=12.5)
    assert learner.learn("r2", 15.0) == 0.0  # clamped
    learner.remember("r3", made, after_decision_ms=1.0, server_ms=1.0)
    assert learner.learn("r3", 0.0) is None  # no e2e time: nothing to learn
    assert book.client_model("c").samples == 2 and learner.learned == 2 and learner.unmatched == 3
    # bounded: capacity and TTL (10 SLAs, at least min_ttl_s)
    for i in range(5):
        learner.remember(f"x{i}", made, after_decision_ms=1.0, server_ms=1.0)
    assert len(learner) == 3 and learner.learn("x0", 50.0) is None and learner.learn("x4", 50.0) is not None
    clock.now += 6.0
    assert learner.learn("x3", 50.0) is None


def test_reports_estimate_the_clock_offset_of_clients_that_never_send_deadlines():
    budgeter = Budgeter()
    learner = OutcomeLearner(None, budgeter.clocks)
    for i in range(20):
        # client 0.5 s ahead of us (within the skew tolerance); real legs 30 ms each way, 5 ms in the server
        made = budgeter.make(sla_ms=5000.0, send_time=_sent(30.0, 0.5), receive_ns=NOW_NS, left_s=None,
                             client_id="old-app")
        learner.remember(f"r{i}", made, after_decision_ms=5.0, server_ms=5.0)
        learner.learn(f"r{i}", 65.0)
    assert budgeter.clocks.snapshot()["old-app"][:2] == (pytest.approx(-500.0), "reports")
    corrected = budgeter.make(sla_ms=150.0, send_time=_sent(30.0, 0.5), receive_ns=NOW_NS, left_s=None,
                              client_id="old-app")
    assert corrected.upload_ms == pytest.approx(30.0, abs=1e-3)
