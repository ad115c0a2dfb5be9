"""Outcome tickets: what a served Infer leaves for its outcome report, carried by the client.

The memory of served requests (`OutcomeLearner`) is per replica, so behind a per-request load
balancer only about 1 in N reports would reach the replica that could derive the return leg. So
the Selector also hands what it remembers to the client (`InferResponse.ticket`: the request and
client ids, U, the time from the decision to the reply, the server time, the estimate's basis and
whose model it came from, the send-stamp reading of send-time budgets), and the client echoes it
unchanged in `ReportOutcomeRequest.ticket`: any replica derives R = e2e - U - after_decision from
it. A report without one falls back to the replica's memory; with both, the memory wins (it is the
server's own reading).

Echoed values are checked (finite, >= 0, bounded; the report's request id and client id), and a
bad one is refused, naming the field (INVALID_ARGUMENT). Where the Selectors share a ticket key
(`TicketSigner`), each ticket carries an HMAC-SHA256 over its canonical encoding and the id of the
key; a report whose ticket is missing, does not verify or was already reported to this replica is
PERMISSION_DENIED (its fields are well formed, but it is not the caller's to claim), and one that
verifies teaches the ticket's client only: the leg is derived from the signed ticket, never from
this replica's memory of a request id, which a client chooses. Keys rotate: a current key signs,
the previous one still verifies. The clock-offset sample a send-time
ticket gives was read on the serving replica's clock: replicas are assumed NTP-synchronised.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import math
import struct
from dataclasses import dataclass, field

from modipick.selector.outcomes import Served
from modipick.stores.base import MAX_CLIENT_ID_CHARS
from modipick.v1 import profiler_pb2, selector_pb2

# U, the server time and return legs are within an SLA (at most an hour) and its tolerances.
MAX_TICKET_MS = 7_200_000.0
MAX_CLOCK_READING_MS = 1e11  # receive - send stamp as read: clock offsets of years are still offsets

_OWNER_CODES = {"client": profiler_pb2.RETURN_LEG_OWNER_CLIENT, "class": profiler_pb2.RETURN_LEG_OWNER_CLASS}
_OWNER_NAMES = {profiler_pb2.RETURN_LEG_OWNER_UNSPECIFIED: "", profiler_pb2.RETURN_LEG_OWNER_CLIENT: "client",
                profiler_pb2.RETURN_LEG_OWNER_CLASS: "class"}


def outcome_ticket(request_id: str, served: Served,
                   ticket: selector_pb2.OutcomeTicket | None = None) -> selector_pb2.OutcomeTicket:
    """The ticket of a served request, written into `ticket` (a reply's own field: nothing to copy),
    else into a new message."""
    if ticket is None:
        ticket = selector_pb2.OutcomeTicket()
    ticket.request_id = request_id
    ticket.client_id = served.client_id
    ticket.upload_ms = served.upload_ms
    ticket.after_decision_ms = served.after_decision_ms
    ticket.server_ms = served.server_ms
    ticket.basis_owner = _OWNER_CODES.get(served.leg_owner, profiler_pb2.RETURN_LEG_OWNER_UNSPECIFIED)
    ticket.sla_ms = served.sla_ms
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


_DOMAIN = b"modipick.v1.OutcomeTicket/1\0"
_NUMBERS = struct.Struct(">ddddi")
_OPTIONAL = struct.Struct(">?d")
MAX_KEY_ID_CHARS = 64


def canonical_bytes(ticket: selector_pb2.OutcomeTicket) -> bytes:
    """Fields 1-9 in a fixed layout (not protobuf's serialisation, which is not canonical)."""
    rid, cid = ticket.request_id.encode(), ticket.client_id.encode()
    basis, elapsed = ticket.HasField("basis_ms"), ticket.HasField("send_elapsed_ms")
    return b"".join((
        _DOMAIN, len(rid).to_bytes(4, "big"), rid, len(cid).to_bytes(4, "big"), cid,
        _NUMBERS.pack(ticket.upload_ms, ticket.after_decision_ms, ticket.server_ms, ticket.sla_ms,
                     ticket.basis_owner),
        _OPTIONAL.pack(basis, ticket.basis_ms if basis else 0.0),
        _OPTIONAL.pack(elapsed, ticket.send_elapsed_ms if elapsed else 0.0)))


@dataclass(frozen=True)
class TicketKeys:
    """The shared HMAC keys: `current` signs and verifies, `previous` (during a rotation) verifies."""

    current_id: str = ""
    current: bytes = field(default=b"", repr=False)
    previous_id: str = ""
    previous: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        for name, key_id, key in (("current", self.current_id, self.current),
                                  ("previous", self.previous_id, self.previous)):
            if key and len(key) < 16:
                raise ValueError(f"the {name} ticket key must have at least 16 bytes")
            if key and not (0 < len(key_id) <= MAX_KEY_ID_CHARS):
                raise ValueError(f"the {name} ticket key needs an id of 1-{MAX_KEY_ID_CHARS} characters")
        if self.previous and not self.current:
            raise ValueError("a previous ticket key needs a current one")
        if self.previous and self.previous_id == self.current_id:
            raise ValueError("the previous ticket key needs an id other than the current one's")

    @property
    def enabled(self) -> bool:
        return bool(self.current)


class TicketSigner:
    def __init__(self, keys: TicketKeys, *, remember: int = 100_000) -> None:
        if not keys.enabled:
            raise ValueError("ticket signing needs a current key")
        # keyed HMAC states, copied per ticket (cheaper than keying a new one each time)
        self._keys = {keys.current_id: hmac.new(keys.current, digestmod=hashlib.sha256)}
        if keys.previous:
            self._keys[keys.previous_id] = hmac.new(keys.previous, digestmod=hashlib.sha256)
        self._signing = (keys.current_id, self._keys[keys.current_id])
        self._spent: collections.OrderedDict[tuple[str, str], None] = collections.OrderedDict()
        self._remember = remember
        self.refused: collections.Counter[str] = collections.Counter()

    @staticmethod
    def _mac(keyed: "hmac.HMAC", ticket: selector_pb2.OutcomeTicket) -> bytes:
        mac = keyed.copy()
        mac.update(canonical_bytes(ticket))
        return mac.digest()

    def ticket(self, request_id: str, served: Served,
               ticket: selector_pb2.OutcomeTicket | None = None) -> selector_pb2.OutcomeTicket:
        """outcome_ticket, signed with the current key."""
        ticket = outcome_ticket(request_id, served, ticket)
        key_id, key = self._signing
        ticket.key_id = key_id
        ticket.signature = self._mac(key, ticket)
        return ticket

    def refusal(self, ticket: selector_pb2.OutcomeTicket | None) -> str:
        """Why a report's (well-formed) ticket does not entitle it to teach ("" : it does). A ticket
        that verifies is spent: the same one again is refused (per replica, the last `remember`)."""
        if ticket is None:
            return self._refuse("missing", "ticket: required (echo the signed ticket of the reply)")
        key = self._keys.get(ticket.key_id)
        if key is None:
            return self._refuse("unknown_key", "ticket.key_id: not a key this service signs or verifies with")
        if not hmac.compare_digest(ticket.signature, self._mac(key, ticket)):
            return self._refuse("bad_signature", "ticket.signature: does not verify (echo the ticket unchanged)")
        spent = (ticket.key_id, ticket.request_id)
        if spent in self._spent:
            return self._refuse("replayed", "ticket: already reported")
        self._spent[spent] = None
        if len(self._spent) > self._remember:
            self._spent.popitem(last=False)
        return ""

    def _refuse(self, reason: str, message: str) -> str:
        self.refused[reason] += 1
        return message
