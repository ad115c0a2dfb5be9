"""Attacks on a locked-down suite (tests/security/conftest.py), each against real processes, each
asserting what it must not change: other clients' return-leg models, every model's latency profile
and measured accuracy (beyond the configured bound), and the Selector's choice."""

from __future__ import annotations

import time

import grpc
import pytest

from security_support import (ADMIN_TOKEN, AUDIENCE, EXECUTOR_TOKEN, ISSUER, MAX_SHIFT_PCT, REPORT_BURST, REPORT_RATE,
                      SELECTOR_TOKEN, TICKET_KEYS, CHANNEL_OPTIONS, digit_tensor, make_token, stamp)
from fixtures_suite import learned_legs, wait_until
from modipick.v1 import common_pb2, profiler_pb2, profiler_pb2_grpc, selector_pb2, selector_pb2_grpc

Code = grpc.StatusCode
SLA_MS = 10_000.0


def _auth(token: str | None) -> tuple:
    return (("authorization", f"Bearer {token}"),) if token else ()


def _code(call) -> tuple[Code, str]:
    try:
        call()
        return Code.OK, ""
    except grpc.RpcError as exc:
        return exc.code(), exc.details() or ""


def _select(stub, token: str | None, sla_ms: float = 100.0, client_id: str = "", request_id: str = ""):
    """Budgeted from the send stamp (the deadline is far beyond the SLA): no race with a busy machine.
    The same request id draws the same exploration: the same profiles give the same choice."""
    return stub.Select(selector_pb2.SelectRequest(request_id=request_id or f"sel-{time.perf_counter_ns()}",
                                                  sla_ms=sla_ms,
                                                  client_id=client_id, client_send_time=stamp(time.time_ns())),
                       timeout=5.0, metadata=_auth(token))


def _infer(stub, token: str, image, *, client_id: str = "", request_id: str | None = None):
    # a roomy SLA: what is tested is who may teach what, not speed (a 2 s one ran out under stress-ng)
    request = selector_pb2.InferRequest(request_id=request_id or f"inf-{time.perf_counter_ns()}", sla_ms=SLA_MS,
                                        input=digit_tensor(image), client_id=client_id)
    return stub.Infer(request, timeout=SLA_MS / 1000.0, metadata=_auth(token))


def _report(reply, *, e2e_ms: float, true_label: int | None = None, ticket=None, client_id: str = ""):
    report = selector_pb2.ReportOutcomeRequest(
        request_id=reply.request_id, model=reply.model, e2e_ms=e2e_ms, sla_ms=SLA_MS, client_id=client_id,
        predicted_label=reply.prediction.label)
    if true_label is not None:
        report.true_label = true_label
    report.ticket.CopyFrom(reply.ticket if ticket is None else ticket)
    return report


def _leg_samples(suite, client_id: str) -> int:
    return learned_legs(suite.loop, suite.selector, client_id)


def _refusals(app) -> dict[str, float]:
    registry = app.metrics.registry
    return {s.labels["reason"]: s.value for m in registry.collect() if m.name == "modipick_security_refusals"
            for s in m.samples}


def _all(method, requests, metadata, batch: int = 100) -> dict[Code, int]:
    """Send every request, `batch` in flight at a time; the status codes they ended with."""
    codes: dict[Code, int] = {}
    for start in range(0, len(requests), batch):
        futures = [method.future(r, timeout=30, metadata=metadata) for r in requests[start:start + batch]]
        for f in futures:
            try:
                f.result()
                code = Code.OK
            except grpc.RpcError as exc:
                code = exc.code()
            codes[code] = codes.get(code, 0) + 1
    return codes


def _latencies(suite) -> dict[str, tuple[float, float, int]]:
    return {n: (p.mean_ms, p.std_ms, p.samples) for n, p in suite.profiles().items()}


@pytest.fixture(scope="module")
def stub(secure_suite):
    with grpc.insecure_channel(secure_suite.selector.target, CHANNEL_OPTIONS) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        yield selector_pb2_grpc.SelectorServiceStub(channel)


@pytest.fixture(scope="module")
def profiler_channel(secure_suite):
    with grpc.insecure_channel(secure_suite.profiler.target) as channel:
        yield channel


def test_the_services_own_tokens_get_their_writes_through(secure_suite, stub, digits):
    """The Executor's reporter (token from MODIPICK_SERVICE_TOKEN) and the Selector's forwarder
    (--service-token) reach the Profiler: served requests move profiles, labelled reports count."""
    images, labels = digits
    before = secure_suite.profiles()
    tokens = [make_token(f"lte/honest-{i}") for i in range(10)]
    replies = [_infer(stub, token, images[i]) for i, token in enumerate(tokens)]
    assert all(r.disposition == selector_pb2.DISPOSITION_SERVED and r.ticket.signature for r in replies)
    assert [r.ticket.client_id for r in replies] == [f"lte/honest-{i}" for i in range(10)]  # from the tokens
    for i, (reply, token) in enumerate(zip(replies, tokens)):
        stub.ReportOutcome(_report(reply, e2e_ms=30.0, true_label=int(labels[i])), timeout=5, metadata=_auth(token))
    served = {r.model.name for r in replies}

    def landed() -> bool:  # one label per client: each counts under the accuracy bound
        now = secure_suite.profiles()
        return (sum(now[n].samples - before[n].samples for n in served) >= 10
                and sum(now[n].served - before[n].served for n in served) == 10)
    try:
        wait_until(landed, 15.0)
    except AssertionError:
        raise AssertionError(f"observations and outcomes at the Profiler: {before} -> {secure_suite.profiles()}, "
                             f"refusals {_refusals(secure_suite.profiler)}") from None
    assert _refusals(secure_suite.profiler).get("recordobservations_unauthenticated", 0) == 0


def test_fake_observations_from_a_peer_without_credentials_change_nothing(secure_suite, stub, profiler_channel):
    """50 observations of 500 ms for the model chosen at SLA 100 ms, from a peer without credentials,
    with a wrong token, and with the Selector's and the admin's tokens: all refused, no profile moves
    and the choice stays."""
    token = make_token("lte/honest-2")
    chosen = _select(stub, token, request_id="the-choice").model.name
    before = _latencies(secure_suite)
    fake = profiler_pb2.RecordObservationsRequest(observations=[
        profiler_pb2.Observation(model=common_pb2.ModelRef(name=chosen, version=1), queue_ms=0.0, execution_ms=500.0)
        for _ in range(50)])
    record = profiler_pb2_grpc.ProfilerServiceStub(profiler_channel).RecordObservations
    outcomes = {who: _code(lambda: record(iter([fake]), timeout=5, metadata=_auth(t)))
                for who, t in (("nobody", None), ("wrong", "guessed-token"), ("selector", SELECTOR_TOKEN),
                               ("admin", ADMIN_TOKEN))}
    assert outcomes["nobody"][0] == Code.UNAUTHENTICATED, outcomes
    assert all(outcomes[w][0] == Code.PERMISSION_DENIED for w in ("wrong", "selector", "admin")), outcomes
    assert "executor" in outcomes["selector"][1]
    time.sleep(0.5)  # what an accepted batch would have needed to reach the store and a refresh
    assert _latencies(secure_suite) == before
    assert _select(stub, token, request_id="the-choice").model.name == chosen
    refused = _refusals(secure_suite.profiler)
    assert refused["recordobservations_unauthenticated"] >= 1 and refused["recordobservations_permission_denied"] >= 3
    # the Executor's own token still works: the control that the refusals were about the credentials
    reply = record(iter([profiler_pb2.RecordObservationsRequest()]), timeout=5, metadata=_auth(EXECUTOR_TOKEN))
    assert reply.accepted == 0 and reply.rejected == 0


def test_expired_wrongly_signed_and_foreign_tokens_are_unauthenticated(secure_suite, stub):
    import jwt

    good_rs256 = make_token("wifi/rsa-client", key=secure_suite.rsa_private_pem, algorithm="RS256")
    assert _select(stub, good_rs256).disposition != selector_pb2.DISPOSITION_UNSPECIFIED
    bad = {
        "none": None,
        "expired": make_token("lte/alice", expires_in_s=-120.0),
        "wrong secret": make_token("lte/alice", key="not-the-secret-0123456789abcdef0123"),
        "wrong issuer": make_token("lte/alice", issuer="https://evil.test"),
        "wrong audience": make_token("lte/alice", audience="someone-else"),
        "alg none": jwt.encode({"sub": "lte/alice", "exp": int(time.time()) + 600, "iss": ISSUER, "aud": AUDIENCE},
                               None, algorithm="none"),
        "garbage": "x" * 5000,
        "admin token": ADMIN_TOKEN,
    }
    for what, token in bad.items():
        code, details = _code(lambda: _select(stub, token))
        assert code == Code.UNAUTHENTICATED, (what, code, details)
        assert details and len(details) < 300, (what, details)
        code, _ = _code(lambda: stub.ReportOutcome(selector_pb2.ReportOutcomeRequest(request_id="r-1"), timeout=5,
                                                   metadata=_auth(token)))
        assert code == Code.UNAUTHENTICATED, what
    assert "expired" in _code(lambda: _select(stub, bad["expired"]))[1]
    assert _refusals(secure_suite.selector)["client_unauthenticated"] >= 2 * len(bad)


def test_a_client_can_neither_name_another_nor_forge_or_reuse_a_ticket(secure_suite, stub, digits):
    """Mallory (her own valid token) attacks Alice's return-leg model every way a report can: it stays
    as Alice's own reports left it, and Mallory's own reports still teach Mallory only."""
    images, labels = digits
    alice, mallory = make_token("lte/alice"), make_token("lte/mallory")
    alice_replies = [_infer(stub, alice, images[i]) for i in range(5)]
    for reply in alice_replies[:3]:
        stub.ReportOutcome(_report(reply, e2e_ms=reply.timings.server_ms + 40.0), timeout=5, metadata=_auth(alice))
    # legs are learned in the background (the client's state in Redis, the default)
    wait_until(lambda: _leg_samples(secure_suite, "lte/alice") == 3, 10.0)
    alice_legs = 3
    own = [_infer(stub, mallory, images[i]) for i in range(4)]
    stolen = alice_replies[3]

    def tampered(**fields):
        ticket = selector_pb2.OutcomeTicket()
        ticket.CopyFrom(own[0].ticket)
        for name, value in fields.items():
            setattr(ticket, name, value)
        return ticket

    attacks = {
        "infer as alice": (lambda: _infer(stub, mallory, images[0], client_id="lte/alice"), Code.PERMISSION_DENIED),
        "select as alice": (lambda: _select(stub, mallory, client_id="lte/alice"), Code.PERMISSION_DENIED),
        "report as alice": (lambda: stub.ReportOutcome(_report(own[0], e2e_ms=900.0, client_id="lte/alice"),
                                                       timeout=5, metadata=_auth(mallory)), Code.PERMISSION_DENIED),
        "alice's ticket": (lambda: stub.ReportOutcome(_report(stolen, e2e_ms=900.0), timeout=5,
                                                      metadata=_auth(mallory)), Code.INVALID_ARGUMENT),
        "ticket renamed to alice": (lambda: stub.ReportOutcome(
            _report(own[0], e2e_ms=900.0, ticket=tampered(client_id="lte/alice")), timeout=5,
            metadata=_auth(mallory)), Code.INVALID_ARGUMENT),
        "ticket with alice's request id": (lambda: stub.ReportOutcome(
            _report(stolen, e2e_ms=900.0, ticket=tampered(request_id=stolen.request_id)), timeout=5,
            metadata=_auth(mallory)), Code.PERMISSION_DENIED),
        "edited upload": (lambda: stub.ReportOutcome(
            _report(own[0], e2e_ms=900.0, ticket=tampered(upload_ms=own[0].ticket.upload_ms + 50.0)), timeout=5,
            metadata=_auth(mallory)), Code.PERMISSION_DENIED),
        "unknown key": (lambda: stub.ReportOutcome(_report(own[0], e2e_ms=900.0, ticket=tampered(key_id="k9")),
                                                   timeout=5, metadata=_auth(mallory)), Code.PERMISSION_DENIED),
        "no signature": (lambda: stub.ReportOutcome(_report(own[0], e2e_ms=900.0, ticket=tampered(signature=b"")),
                                                    timeout=5, metadata=_auth(mallory)), Code.PERMISSION_DENIED),
        "no ticket": (lambda: stub.ReportOutcome(selector_pb2.ReportOutcomeRequest(
            request_id=own[0].request_id, model=own[0].model, e2e_ms=900.0, sla_ms=2000.0), timeout=5,
            metadata=_auth(mallory)), Code.PERMISSION_DENIED),
    }
    for what, (attack, expected) in attacks.items():
        code, details = _code(attack)
        assert code == expected, (what, code, details)
    # her own ticket teaches her own model, once
    stub.ReportOutcome(_report(own[1], e2e_ms=own[1].timings.server_ms + 5.0), timeout=5, metadata=_auth(mallory))
    code, details = _code(lambda: stub.ReportOutcome(_report(own[1], e2e_ms=900.0), timeout=5,
                                                     metadata=_auth(mallory)))
    assert code == Code.PERMISSION_DENIED and "already" in details
    wait_until(lambda: _leg_samples(secure_suite, "lte/mallory") == 1, 10.0)  # learned ...
    assert _leg_samples(secure_suite, "lte/alice") == alice_legs  # ... and taught Alice nothing
    # key rotation: a ticket signed with the previous key still verifies
    from modipick.selector.tickets import TicketKeys, TicketSigner, served_from_ticket

    previous = TicketSigner(TicketKeys("k1", TICKET_KEYS["k1"]))
    resigned = previous.ticket(own[2].request_id, served_from_ticket(own[2].ticket))
    assert resigned.key_id == "k1"
    stub.ReportOutcome(_report(own[2], e2e_ms=40.0, ticket=resigned), timeout=5, metadata=_auth(mallory))
    wait_until(lambda: _leg_samples(secure_suite, "lte/mallory") == 2, 10.0)
    assert _leg_samples(secure_suite, "lte/alice") == alice_legs
    refused = _refusals(secure_suite.selector)
    assert refused["client_permission_denied"] >= 3 and refused["ticket_bad_signature"] >= 2
    assert refused["ticket_replayed"] >= 1 and refused["ticket_missing"] >= 1


def _accuracy(suite, name: str) -> float:
    p = suite.profiles()[name]
    return 100.0 * p.correct / p.served


def test_a_flood_of_10000_wrong_labels_moves_measured_accuracy_by_at_most_the_bound(
        secure_suite, stub, profiler_channel, digits):
    """10,000 wrong labels from one client: through the Selector (each of her tickets counts once,
    and her report rate is capped), then straight at the Profiler as a compromised Selector would
    (the per-client accuracy bound). Measured accuracy of every model moves by at most the bound."""
    images, _ = digits
    record = profiler_pb2_grpc.ProfilerServiceStub(profiler_channel).RecordOutcome
    names = sorted(secure_suite.profiles())
    honest = [profiler_pb2.RecordOutcomeRequest(
        request_id=f"h-{name}-{i}", model=common_pb2.ModelRef(name=name, version=1), e2e_ms=30.0, sla_ms=100.0,
        client_id=f"lte/device-{i}", predicted_label=1, true_label=1 if i % 10 else 2)
        for name in names for i in range(400)]
    assert _all(record, honest, _auth(SELECTOR_TOKEN)) == {Code.OK: len(honest)}
    accuracy_before = {n: 100.0 * p.correct / p.served for n, p in secure_suite.profiles().items()}
    assert min(p.served for p in secure_suite.profiles().values()) >= 100.0 / MAX_SHIFT_PCT
    legs_alice = _leg_samples(secure_suite, "lte/alice")
    target = max(secure_suite.profiles().values(), key=lambda p: p.declared_accuracy).name
    model = common_pb2.ModelRef(name=target, version=1)

    mallory = make_token("lte/flooder")
    tickets = [_infer(stub, mallory, images[i % len(images)]) for i in range(30)]
    started = time.monotonic()
    codes = _all(stub.ReportOutcome, [
        _report(tickets[i % len(tickets)], e2e_ms=5.0, true_label=(tickets[i % len(tickets)].prediction.label + 1) % 10)
        for i in range(10_000)], _auth(mallory))
    elapsed = time.monotonic() - started
    # each ticket teaches once; beyond the burst, the rate: reports reaching the ticket check
    assert codes.get(Code.OK, 0) <= len(tickets), codes
    checked = codes.get(Code.OK, 0) + codes.get(Code.PERMISSION_DENIED, 0)
    assert checked <= REPORT_BURST + REPORT_RATE * elapsed + 1, (codes, elapsed)
    assert codes.get(Code.RESOURCE_EXHAUSTED, 0) >= 10_000 - checked, codes
    assert set(codes) <= {Code.OK, Code.PERMISSION_DENIED, Code.RESOURCE_EXHAUSTED}, codes

    direct = [profiler_pb2.RecordOutcomeRequest(request_id=f"w-{i}", model=model, e2e_ms=5.0, sla_ms=100.0,
                                                client_id="lte/flooder", predicted_label=1, true_label=2)
              for i in range(10_000)]
    # accepted: a capped label is not an error the caller could act on
    assert _all(record, direct, _auth(SELECTOR_TOKEN)) == {Code.OK: len(direct)}
    secure_suite.loop.run(secure_suite.selector.outcomes.drain(5.0))
    after = {n: 100.0 * p.correct / p.served for n, p in secure_suite.profiles().items() if p.served}
    shifts = {n: abs(after[n] - accuracy_before.get(n, after[n])) for n in after}
    print(f"\nflood: selector {({c.name: n for c, n in codes.items()})} in {elapsed:.1f} s; "
          f"accuracy shifts {shifts}; refusals {_refusals(secure_suite.profiler)}")
    assert all(s <= MAX_SHIFT_PCT + 1e-9 for s in shifts.values()), shifts
    assert _refusals(secure_suite.profiler)["label_capped"] >= 9_900
    assert _refusals(secure_suite.selector)["report_rate_limited"] >= codes.get(Code.RESOURCE_EXHAUSTED, 0)
    assert _leg_samples(secure_suite, "lte/alice") == legs_alice


def test_the_sdk_sends_its_token_with_infer_and_report(secure_suite, digits):
    """ModiPickClient(token=...): the Selector names the client from the token, the ticket is signed
    for it, and the report (the ticket echoed) teaches that client's return-leg model."""
    from modipick.client import ModiPickClient, ModiPickError

    images, labels = digits
    with ModiPickClient(secure_suite.selector.target, token=make_token("wifi/sdk-user")) as client:
        client.wait_ready()
        result = client.infer(images[0], SLA_MS)
        assert result.outcome_ticket is not None and result.outcome_ticket.client_id == "wifi/sdk-user"
        assert client.report_outcome(result, int(labels[0]))
    wait_until(lambda: _leg_samples(secure_suite, "wifi/sdk-user") == 1, 10.0)
    with ModiPickClient(secure_suite.selector.target) as anonymous:
        with pytest.raises(ModiPickError) as refused:
            anonymous.infer(images[0], SLA_MS)
    assert "UNAUTHENTICATED" in str(refused.value)
