"""Outcome tickets: what a served Infer leaves for its outcome report, carried by the client.

The memory of served requests (`OutcomeLearner`) is per replica, so behind a per-request load
balancer only about 1 in N reports would reach the replica that could derive the return leg. So
the Selector also hands what it remembers to the client (`InferResponse.ticket`: the request and
client ids, U, the time from the decision to the reply, the server time, the estimate's basis and
whose model it came from, the send-stamp reading of send-time budgets), and the client echoes it
unchanged in `ReportOutcomeRequest.ticket`: any replica derives R = e2e - U - after_decision from
it. A report without one falls back to the replica's memory; with both, the memory wins (it is the
server's own reading).

A ticket is not signed: a client can misreport only its own legs, as it already can through
e2e_ms. Echoed values are checked all the same (finite, >= 0, bounded; the report's request id
and client id), and a bad one is refused, naming the field. The clock-offset sample a send-time
ticket gives was read on the serving replica's clock: replicas are assumed NTP-synchronised.
"""

from __future__ import annotations

import math

from modipick.selector.outcomes import Served
from modipick.stores.base import MAX_CLIENT_ID_CHARS
from modipick.v1 import profiler_pb2, selector_pb2

# U, the server time and return legs are within an SLA (at most an hour) and its tolerances.
MAX_TICKET_MS = 7_200_000.0
MAX_CLOCK_READING_MS = 1e11  # receive - send stamp as read: clock offsets of years are still offsets

_OWNER_CODES = {"client": profiler_pb2.RETURN_LEG_OWNER_CLIENT, "class": profiler_pb2.RETURN_LEG_OWNER_CLASS}
_OWNER_NAMES = {profiler_pb2.RETURN_LEG_OWNER_UNSPECIFIED: "", profiler_pb2.RETURN_LEG_OWNER_CLIENT: "client",
                profiler_pb2.RETURN_LEG_OWNER_CLASS: "class"}


def outcome_ticket(request_id: str, served: Served) -> selector_pb2.OutcomeTicket:
    ticket = selector_pb2.OutcomeTicket(
        request_id=request_id, client_id=served.client_id, upload_ms=served.upload_ms,
        after_decision_ms=served.after_decision_ms, server_ms=served.server_ms,
        basis_owner=_OWNER_CODES.get(served.leg_owner, profiler_pb2.RETURN_LEG_OWNER_UNSPECIFIED),
        sla_ms=served.sla_ms)
    if served.basis_ms is not None:
        ticket.basis_ms = served.basis_ms
    if served.source == "send_time" and served.elapsed_ms is not None:
        ticket.send_elapsed_ms = served.elapsed_ms
    return ticket


def _ms_problem(name: str, value: float) -> str:
    if not (math.isfinite(value) and 0.0 <= value <= MAX_TICKET_MS):
        return f"ticket.{name}: must be a finite number of ms in [0, {MAX_TICKET_MS:g}], got {value!r}"
    return ""


def ticket_problem(ticket: selector_pb2.OutcomeTicket, request_id: str, client_id: str) -> str:
    """Why an echoed ticket cannot be learned from ("" : it can), naming the field."""
    if ticket.request_id != request_id:
        return "ticket.request_id: is not the report's request_id (echo the ticket of that reply, unchanged)"
    if len(ticket.client_id) > MAX_CLIENT_ID_CHARS:
        return f"ticket.client_id: longer than {MAX_CLIENT_ID_CHARS} characters"
    if client_id and ticket.client_id != client_id:
        return "ticket.client_id: is not the report's client_id (echo the ticket of that reply, unchanged)"
    for name in ("upload_ms", "after_decision_ms", "server_ms", "sla_ms"):
        problem = _ms_problem(name, getattr(ticket, name))
        if problem:
            return problem
    if ticket.after_decision_ms > ticket.server_ms:
        return (f"ticket.after_decision_ms: {ticket.after_decision_ms!r} is longer than server_ms "
                f"{ticket.server_ms!r} (echo the ticket unchanged)")
    if ticket.HasField("basis_ms"):
        problem = _ms_problem("basis_ms", ticket.basis_ms)
        if problem:
            return problem
    if ticket.basis_owner not in _OWNER_NAMES:
        return f"ticket.basis_owner: unknown value {ticket.basis_owner}"
    if ticket.HasField("send_elapsed_ms") and not (math.isfinite(ticket.send_elapsed_ms)
                                                    and abs(ticket.send_elapsed_ms) <= MAX_CLOCK_READING_MS):
        return (f"ticket.send_elapsed_ms: must be a finite number of ms within +-{MAX_CLOCK_READING_MS:g}, "
                f"got {ticket.send_elapsed_ms!r}")
    return ""


def served_from_ticket(ticket: selector_pb2.OutcomeTicket) -> Served:
    """What the serving replica remembered, as the (checked) ticket tells it; it does not expire."""
    send_time = ticket.HasField("send_elapsed_ms")
    return Served(ticket.client_id, ticket.upload_ms, ticket.basis_ms if ticket.HasField("basis_ms") else None,
                  _OWNER_NAMES[ticket.basis_owner], ticket.after_decision_ms, ticket.server_ms,
                  ticket.send_elapsed_ms if send_time else None, "send_time" if send_time else "deadline",
                  math.inf, ticket.sla_ms)
