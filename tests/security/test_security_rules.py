"""The security rules on their own, on injected clocks: report rate limits, the label bound, ticket
signatures and key rotation, JWT verification and its cache, binding a request's client id."""

from __future__ import annotations

import grpc
import pytest

from security_support import AUDIENCE, ISSUER, JWT_SECRET, make_token
from modipick.profiler.accuracy import AccuracyBounds, LabelGate
from modipick.runtime.identity import (ANONYMOUS, ANONYMOUS_CLIENT_ID, Identity, JwtSettings, JwtVerifier, Refused,
                                       ServiceCredentials)
from modipick.runtime.identity_interceptors import ClientAuthSettings, bind_client_id
from modipick.selector.outcomes import Served
from modipick.selector.report_limits import ReportLimits, ReportRateLimiter
from modipick.selector.tickets import TicketKeys, TicketSigner, canonical_bytes, served_from_ticket
from modipick.v1 import selector_pb2


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_client_gets_its_burst_then_its_rate_and_others_are_not_slowed():
    clock = Clock()
    limiter = ReportRateLimiter(ReportLimits(rate_per_s=2.0, burst=5), clock=clock)
    assert [limiter.allow("a") for _ in range(7)] == [True] * 5 + [False] * 2
    assert limiter.allow("b")                      # its own bucket
    clock.now += 1.0                               # two tokens back
    assert [limiter.allow("a") for _ in range(3)] == [True, True, False]
    clock.now += 100.0                             # refilled to the burst, not beyond
    assert sum(limiter.allow("a") for _ in range(10)) == 5
    assert limiter.limited == 2 + 1 + 5
    assert all(ReportRateLimiter(ReportLimits()).allow("a") for _ in range(1000))  # 0: unlimited


def test_no_client_moves_measured_accuracy_by_more_than_the_bound():
    gate = LabelGate(AccuracyBounds(max_shift_pct=2.0))
    key = ("m", 1)
    gate.seed(key, 500)
    correct, served = 450, 500  # 90 %
    counted = 0
    for _ in range(10_000):      # one client, every label wrong
        if not gate.why_not(key, "lte/flooder"):
            counted += 1
            served += 1
    assert counted == 10         # 2 % of ~510
    assert 90.0 - 100.0 * correct / served <= 2.0
    assert gate.counts["capped"] == 10_000 - counted
    assert not gate.why_not(key, "lte/someone-else")  # other clients still count


def test_only_trusted_clients_labels_count_when_so_configured():
    gate = LabelGate(AccuracyBounds(trusted=frozenset({"lab/annotator"})))
    assert gate.why_not(("m", 1), "lte/phone") == "untrusted"
    assert gate.why_not(("m", 1), "lab/annotator") == ""
    assert dict(gate.counts) == {"untrusted": 1, "counted": 1}


def _served(client_id: str = "lte/a") -> Served:
    return Served(client_id, 3.0, 12.5, "client", 1.0, 4.0, 7.0, "send_time", 0.0)


def test_a_ticket_verifies_once_under_either_key_and_any_change_breaks_it():
    old = TicketSigner(TicketKeys("k1", b"0123456789abcdef-old"))
    signer = TicketSigner(TicketKeys("k2", b"0123456789abcdef-new", "k1", b"0123456789abcdef-old"))
    ticket = signer.ticket("r-1", _served())
    assert ticket.key_id == "k2" and len(ticket.signature) == 32
    assert signer.refusal(ticket) == ""
    assert "already" in signer.refusal(ticket)
    assert signer.refusal(old.ticket("r-2", _served())) == ""           # the previous key still verifies
    assert "key_id" in old.refusal(signer.ticket("r-3", _served()))      # a key it does not know
    for field, value in (("client_id", "lte/b"), ("upload_ms", 3.5), ("after_decision_ms", 0.5),
                         ("server_ms", 4.5), ("basis_ms", 12.0), ("basis_owner", 2), ("send_elapsed_ms", 6.0),
                         ("request_id", "r-9")):
        changed = selector_pb2.OutcomeTicket()
        changed.CopyFrom(signer.ticket("r-4", _served()))
        setattr(changed, field, value)
        assert "does not verify" in signer.refusal(changed), field
    cleared = signer.ticket("r-5", _served())
    cleared.ClearField("basis_ms")
    assert "does not verify" in signer.refusal(cleared)
    assert "required" in signer.refusal(None)
    assert dict(signer.refused) == {"replayed": 1, "bad_signature": 9, "missing": 1}
    # fields are length-prefixed: moving characters between the ids changes the encoding
    a, b = selector_pb2.OutcomeTicket(request_id="ab", client_id="c"), selector_pb2.OutcomeTicket(request_id="a",
                                                                                                  client_id="bc")
    assert canonical_bytes(a) != canonical_bytes(b)
    assert served_from_ticket(signer.ticket("r-6", _served())).client_id == "lte/a"


@pytest.mark.parametrize("keys", [("k1", b"short", "", b""), ("", b"0123456789abcdef", "", b""),
                                  ("k1", b"0123456789abcdef", "k1", b"0123456789abcdef"),
                                  ("", b"", "k0", b"0123456789abcdef")])
def test_bad_ticket_keys_are_refused_at_start(keys):
    with pytest.raises(ValueError):
        TicketKeys(*keys)


def test_a_verified_token_is_cached_until_it_expires_on_the_injected_clock():
    import time

    clock = Clock(time.time())
    verifier = JwtVerifier(JwtSettings(hs256_secrets=(JWT_SECRET,), issuer=ISSUER, audience=AUDIENCE), clock=clock)
    token = make_token("lte/a", expires_in_s=60.0)
    assert verifier.subject(token) == "lte/a"
    assert verifier.subject(token) == "lte/a"      # from the cache
    clock.now += 120.0
    with pytest.raises(Refused) as refused:
        verifier.subject(token)
    assert refused.value.code == grpc.StatusCode.UNAUTHENTICATED and "expired" in str(refused.value)
    rotated = JwtVerifier(JwtSettings(hs256_secrets=("another-secret-0123456789abcdef01", JWT_SECRET)))
    assert rotated.subject(make_token("lte/b")) == "lte/b"  # the previous secret still verifies
    with pytest.raises(Refused):
        JwtVerifier(JwtSettings(hs256_secrets=(JWT_SECRET,))).subject(make_token("x", expires_in_s=-5.0))


def test_a_request_names_its_authenticated_client_or_none():
    request = selector_pb2.SelectRequest()
    bind_client_id(request, Identity("lte/a", "client", "jwt"))
    assert request.client_id == "lte/a"
    for claimed, identity in (("lte/b", Identity("lte/a", "client", "jwt")), ("lte/a", ANONYMOUS),
                              ("", Identity("anonymous/x", "client", "jwt"))):
        with pytest.raises(Refused) as refused:
            bind_client_id(selector_pb2.SelectRequest(client_id=claimed), identity)
        assert refused.value.code == grpc.StatusCode.PERMISSION_DENIED
    anonymous = selector_pb2.SelectRequest()
    bind_client_id(anonymous, ANONYMOUS)
    assert anonymous.client_id == ANONYMOUS_CLIENT_ID


def test_settings_refuse_what_cannot_work():
    with pytest.raises(ValueError):
        ClientAuthSettings(mode="required")          # no keys, no certificates
    with pytest.raises(ValueError):
        ClientAuthSettings(mode="maybe", mtls=True)
    with pytest.raises(ValueError):
        ServiceCredentials(tokens={"root": "x"})
    assert ServiceCredentials(tokens={"executor": "e"}).role("e", []) == "executor"
    assert ServiceCredentials(names={"selector": ("selector.svc",)}).role("", ["selector.svc"]) == "selector"
    assert ServiceCredentials(tokens={"executor": "e"}).role("guess", []) is None
