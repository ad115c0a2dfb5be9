"""Outcome tickets (selector/tickets.py) without gRPC: what a served request's ticket carries, that
a replica which never served the request learns the same leg and clock-offset sample from it as
the serving replica from its memory, and what an echoed ticket may not be. The same over real
gRPC and Redis, across replicas: test_outcome_tickets_live.py."""

from __future__ import annotations

import math

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from modipick.selector.budget import Budgeter
from modipick.selector.outcomes import MAX_RETURN_LEG_MS, ImplausibleReport, OutcomeLearner
from modipick.selector.returnlegs import ReturnLegBook, ReturnLegSettings
from modipick.selector.tickets import MAX_TICKET_MS, outcome_ticket, served_from_ticket, ticket_problem
from modipick.v1 import profiler_pb2, selector_pb2

NOW_NS = 1_800_000_000 * 10**9


def _sent(ms_ago: float) -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(NOW_NS - round(ms_ago * 1e6))  # in ints: 1.8e18 ns as a float is off by ~100 ns
    return ts


def _replica(min_samples: int = 2):
    book = ReturnLegBook(ReturnLegSettings(min_samples=min_samples))
    budgeter = Budgeter(returns=book)
    return budgeter, OutcomeLearner(book, budgeter.clocks)


def test_a_replica_that_never_served_the_request_learns_the_same_leg_from_its_ticket():
    serving, other = _replica(), _replica()
    for i in range(4):  # past min_samples: later decisions carry a basis from the client's own model
        for budgeter, learner in (serving, other):
            made = budgeter.make(sla_ms=200.0, send_time=_sent(20.0), receive_ns=NOW_NS, left_s=0.180,
                                 client_id="lte/t1")
            served = learner.remember(f"d{i}", made, after_decision_ms=7.0, server_ms=9.0)
            learner.learn(f"d{i}", 20.0 + 7.0 + 40.0 + i)
    budgeter, learner = serving
    made = budgeter.make(sla_ms=200.0, send_time=_sent(20.0), receive_ns=NOW_NS, left_s=0.180, client_id="lte/t1")
    served = learner.remember("r1", made, after_decision_ms=7.0, server_ms=9.0)
    ticket = selector_pb2.OutcomeTicket.FromString(outcome_ticket("r1", served).SerializeToString())
    assert (ticket.request_id, ticket.client_id, ticket.upload_ms, ticket.after_decision_ms, ticket.server_ms) == \
        ("r1", "lte/t1", pytest.approx(20.0), 7.0, 9.0)
    assert ticket.HasField("basis_ms") and ticket.basis_owner == profiler_pb2.RETURN_LEG_OWNER_CLIENT
    assert not ticket.HasField("send_elapsed_ms")  # a deadline budget: no clock-offset sample
    assert ticket_problem(ticket, "r1", "lte/t1") == "" and ticket_problem(ticket, "r1", "") == ""
    own = learner.learn_sample("r1", 80.0)
    echoed = other[1].learn_sample("r1", 80.0, served_from_ticket(ticket))
    assert echoed == own and echoed.return_ms == pytest.approx(53.0)
    assert other[1].from_tickets == 1 and learner.from_tickets == 0
    assert other[0].returns.estimate("lte/t1", 20.0) == serving[0].returns.estimate("lte/t1", 20.0)


def test_the_memory_wins_over_the_ticket_and_a_ticket_outlives_the_memory():
    budgeter, learner = _replica()
    made = budgeter.make(sla_ms=200.0, send_time=None, receive_ns=NOW_NS, left_s=0.190, client_id="c")
    served = learner.remember("r1", made, after_decision_ms=5.0, server_ms=6.0)
    forged = outcome_ticket("r1", served)
    forged.upload_ms = 0.0  # valid values, not what this replica measured: its own reading is used
    assert learner.learn_sample("r1", 60.0, served_from_ticket(forged)).return_ms == pytest.approx(45.0)
    assert learner.from_tickets == 0
    # not remembered (another replica, or forgotten): the ticket answers, once per report
    assert learner.learn_sample("r1", 60.0, served_from_ticket(forged)).return_ms == pytest.approx(55.0)
    assert learner.learn_sample("r1", 60.0) is None
    assert (learner.learned, learner.from_tickets, learner.unmatched) == (2, 1, 1)


def test_a_send_time_ticket_samples_the_clock_offset_on_any_replica():
    serving, other = _replica(), _replica()
    made = serving[0].make(sla_ms=5000.0, send_time=_sent(30.0), receive_ns=NOW_NS, left_s=None, client_id="old")
    served = serving[1].remember("r1", made, after_decision_ms=5.0, server_ms=5.0)
    ticket = outcome_ticket("r1", served)
    assert ticket.send_elapsed_ms == pytest.approx(30.0)
    other[1].learn_sample("r1", 65.0, served_from_ticket(ticket))
    assert other[0].clocks.snapshot()["old"][:2] == (pytest.approx(0.0, abs=1e-6), "reports")


def test_legs_longer_than_an_hour_are_not_learned():
    budgeter, learner = _replica()
    made = budgeter.make(sla_ms=200.0, send_time=None, receive_ns=NOW_NS, left_s=0.190, client_id="c")
    learner.remember("r1", made, after_decision_ms=5.0, server_ms=6.0)
    with pytest.raises(ImplausibleReport, match="over an hour"):
        learner.learn_sample("r1", MAX_RETURN_LEG_MS + 100.0, sla_ms=1e9)
    assert learner.implausible == 1 and learner.learned == 0 and MAX_RETURN_LEG_MS <= MAX_TICKET_MS


def test_a_leg_longer_than_ten_slas_of_its_request_is_refused_not_learned():
    """The SLA judged is the one the request was served under (memory or ticket), not the report's."""
    budgeter, learner = _replica()
    made = budgeter.make(sla_ms=300.0, send_time=None, receive_ns=NOW_NS, left_s=0.297, client_id="c")
    served = learner.remember("r1", made, after_decision_ms=1.0, server_ms=2.0)
    ticket = outcome_ticket("r1", served)
    assert ticket.sla_ms == 300.0
    with pytest.raises(ImplausibleReport, match=r"more than 10 x the request's SLA of 300 ms"):
        learner.learn_sample("r1", 5000.0, sla_ms=1e6)  # the report's own SLA does not widen it
    # another replica, from the ticket alone: the same SLA travels with it
    with pytest.raises(ImplausibleReport):
        learner.learn_sample("r1", 5000.0, served_from_ticket(ticket), sla_ms=1e6)
    # a ticket from before the SLA travelled with it: the report's SLA is all there is
    ticket.sla_ms = 0.0
    assert learner.learn_sample("r1", 5000.0, served_from_ticket(ticket), sla_ms=1e6) is not None
    assert learner.implausible == 2 and learner.learned == 1
    # within ten SLAs: learned
    learner.remember("r2", made, after_decision_ms=1.0, server_ms=2.0)
    assert learner.learn_sample("r2", 2900.0).return_ms == pytest.approx(2900.0 - made.upload_ms - 1.0)


def _good() -> selector_pb2.OutcomeTicket:
    return selector_pb2.OutcomeTicket(request_id="r1", client_id="lte/t1", upload_ms=20.0, after_decision_ms=7.0,
                                      server_ms=9.0, basis_ms=40.0, basis_owner=profiler_pb2.RETURN_LEG_OWNER_CLASS,
                                      send_elapsed_ms=-1500.0)


@pytest.mark.parametrize("field,value,names", [
    ("request_id", "r2", "ticket.request_id"),
    ("client_id", "lte/other", "ticket.client_id"),
    ("client_id", "x" * 300, "ticket.client_id"),
    ("upload_ms", -1.0, "ticket.upload_ms"),
    ("upload_ms", math.nan, "ticket.upload_ms"),
    ("upload_ms", MAX_TICKET_MS * 2, "ticket.upload_ms"),
    ("after_decision_ms", math.inf, "ticket.after_decision_ms"),
    ("after_decision_ms", 9.5, "ticket.after_decision_ms"),  # longer than server_ms
    ("server_ms", -0.5, "ticket.server_ms"),
    ("basis_ms", -3.0, "ticket.basis_ms"),
    ("basis_ms", 1e300, "ticket.basis_ms"),
    ("basis_owner", 7, "ticket.basis_owner"),
    ("send_elapsed_ms", math.nan, "ticket.send_elapsed_ms"),
    ("send_elapsed_ms", -1e15, "ticket.send_elapsed_ms"),
])
def test_an_echoed_ticket_that_was_changed_or_is_absurd_is_refused_naming_the_field(field, value, names):
    assert ticket_problem(_good(), "r1", "lte/t1") == ""
    ticket = _good()
    setattr(ticket, field, value)
    problem = ticket_problem(ticket, "r1", "lte/t1" if field != "client_id" or len(value) < 100 else "")
    assert problem.startswith(names + ":"), problem
