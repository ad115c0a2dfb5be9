"""risk_aware live: budgets from the gRPC deadline, not the client's clock; return legs
learned per client from ReportOutcome; risk_aware the default policy.

A Selector on synthetic profiles (memory store, well-separated models, no Executor needed for
Select) shows the clock part deterministically; the live suite (real Executor, Redis, SavedModels)
shows the learning end to end through the client SDK."""

from __future__ import annotations

import time

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from fixtures_suite import LoopThread, learned_legs, learned_model
from suite_support import FrozenDecider, answered_in_time, least_delayed, leg_ceiling_ms, wait_until
from modipick.client import ModiPickClient
from modipick.core import ModelProfile
from modipick.v1 import common_pb2, selector_pb2, selector_pb2_grpc

SECOND_NS = 10**9


def stamp(ns: int) -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(ns)
    return ts


# (name, mean ms, std ms, accuracy), and SLAs that each leave the model they should pick ~45 ms of
# budget to spare (a Select's stall on this busy machine counts twice: as its upload, and mirrored
# as its return leg, so ~22 ms of it) while staying short of the next model by far more than that
MODELS = [("fast", 20.0, 0.5, 60.0), ("middle", 80.0, 1.0, 80.0), ("accurate", 200.0, 1.0, 95.0)]
SLAS = [70.0, 130.0, 260.0, 400.0]
TRIES = 3  # identical calls per decision; the least-delayed one decides (services_support.least_delayed)
# as the SDK's: every timeout sent as it is (gRPC's HPACK may otherwise resend an earlier one up to 3 % longer)
CHANNEL_OPTIONS = [("grpc.http2.hpack_table_size.encoder", 0)]


@pytest.fixture(scope="module")
def synthetic_selector():
    from modipick.selector.app import SelectorSettings, start_selector
    from modipick.stores import InMemoryProfileStore

    store = InMemoryProfileStore()
    for name, mean, std, acc in MODELS:
        store.register(ModelProfile(name=name, version=1, declared_accuracy=acc, mean_ms=mean, var_ms2=std * std,
                                    samples=100, state="eligible"))
    loop = LoopThread()
    app = loop.run(start_selector(SelectorSettings(store_url="memory", executor_target="127.0.0.1:9",
                                                   refresh_ms=600_000.0), store=store))
    channel = grpc.insecure_channel(app.target, CHANNEL_OPTIONS)
    grpc.channel_ready_future(channel).result(timeout=10)
    stub = selector_pb2_grpc.SelectorServiceStub(channel)
    _select_once(stub, 1000.0)  # the first call's one-off costs are not any test's upload
    try:
        yield app, stub
    finally:
        channel.close()
        loop.run(app.stop(0))
        loop.close()


def _select_once(stub, sla_ms: float, *, skew_s: float = 0.0, deadline: bool = True, client_id: str = "",
                 **fields):
    sent = stamp(time.time_ns() + int(skew_s * SECOND_NS))
    return stub.Select(selector_pb2.SelectRequest(request_id=f"s-{time.perf_counter_ns()}", sla_ms=sla_ms,
                                                  client_send_time=sent, client_id=client_id, **fields),
                       timeout=sla_ms / 1000.0 if deadline else 5.0)


def _select(stub, sla_ms: float, **kwargs):
    return least_delayed(lambda: _select_once(stub, sla_ms, **kwargs), TRIES)


def _choice(reply):
    return reply.disposition, reply.model.name, reply.reason


def test_a_client_clock_10_s_off_does_not_change_the_choice_when_the_deadline_carries_the_sla(synthetic_selector):
    app, stub = synthetic_selector
    honest = [_select(stub, sla) for sla in SLAS]
    assert [r.model.name for r in honest] == ["fast", "middle", "accurate", "accurate"]
    for skew in (-10.0, 10.0):
        skewed = [_select(stub, sla, skew_s=skew, client_id=f"skewed{skew:+.0f}") for sla in SLAS]
        assert [_choice(r) for r in skewed] == [_choice(r) for r in honest]
        # the same budget, up to what is left of loopback jitter in the least-delayed of the calls
        # (counted twice: the return leg mirrors the upload); a leaked 10 s skew would be off by far
        # more than any SLA here
        for a, b in zip(skewed, honest):
            assert a.budget_ms == pytest.approx(b.budget_ms, abs=30.0)
        # the offset was measured on the way ...
        offset = app.service.budgeter.clocks.offset(f"skewed{skew:+.0f}")
        assert offset == pytest.approx(-skew * 1000.0, abs=50.0)
        # ... so the same client is served even without a deadline (its send time, corrected)
        fallback = [_select(stub, sla, skew_s=skew, deadline=False, client_id=f"skewed{skew:+.0f}") for sla in SLAS]
        assert [_choice(r) for r in fallback] == [_choice(r) for r in honest]
        # an unknown client with that clock and no deadline is refused, naming the field
        with pytest.raises(grpc.RpcError) as err:
            _select_once(stub, SLAS[0], skew_s=skew, deadline=False, client_id="never-seen")
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "client_send_time" in err.value.details()


def test_the_budget_comes_from_the_deadline_not_the_send_time(synthetic_selector):
    _, stub = synthetic_selector
    # stamped "now" but 70 ms of the SLA already spent before the call (the deadline says so)
    replies = answered_in_time(lambda: stub.Select(selector_pb2.SelectRequest(
        request_id=f"spent-{time.perf_counter_ns()}", sla_ms=260.0, client_send_time=stamp(time.time_ns())),
        timeout=0.190), TRIES)
    # from the send time the budget would be ~260 ms; from the deadline it is at most 260 - 2 * 70
    assert all(r.budget_ms < 122.0 for r in replies), [r.budget_ms for r in replies]
    # upload 70 mirrored: 260 - 140 leaves only the middle model. Loopback delay only shrinks the
    # budget (twice: mirrored), so the least-delayed call decides
    best = max(replies, key=lambda r: r.budget_ms)
    assert best.model.name == "middle" and 80.0 < best.budget_ms < 122.0, [r.budget_ms for r in replies]
    # no send time at all is fine with a deadline
    reply = least_delayed(lambda: stub.Select(selector_pb2.SelectRequest(request_id="no-stamp", sla_ms=400.0),
                                              timeout=0.4), TRIES)
    assert reply.model.name == "accurate"


def test_risk_aware_is_the_default_and_modipick_stays_selectable(live_suite):
    from modipick.cli.demo import parse as parse_demo
    from modipick.cli.suite import SuiteSettings
    from modipick.cli.up import parse as parse_up
    from modipick.selector.__main__ import parse_settings
    from modipick.selector.app import SelectorSettings
    from modipick.selector.policies import PolicyBook

    assert SelectorSettings().policy == PolicyBook().default_name == "risk_aware"
    assert parse_settings([], environ={})[0].policy == "risk_aware"
    assert parse_settings(["--policy", "modipick"], environ={})[0].policy == "modipick"
    assert parse_settings([], environ={"MODIPICK_POLICY": "dynamic_greedy"})[0].policy == "dynamic_greedy"
    assert SuiteSettings().policy == "risk_aware" and parse_up([], environ={}).policy == "risk_aware"
    assert parse_demo([], environ={}).policy_list == ["static_greedy", "modipick", "risk_aware"]
    assert live_suite.selector.settings.policy == "risk_aware"


def test_return_legs_are_learned_from_outcome_reports_and_change_the_decision(live_suite, digits):
    """The client sleeps 60 ms after each reply (its return leg) and reports the outcome. Before:
    the mirror prior (R = upload, ~1 ms on loopback) lets a model run at an SLA 25 ms above the
    fastest model; after ~25 reports the client's model puts R near 60 ms, and risk_aware (default)
    answers RUN_ON_DEVICE there, while ModiPick (the paper's R = upload) still serves. The decisions
    are asked of a replica on a frozen clock (the legs reach it through Redis), each
    request stamped 1 ms before that clock: the upload is 1 ms however busy the machine is."""
    images, labels = digits
    service = live_suite.selector.service
    client_id = "loopback/slow-return"
    with FrozenDecider(live_suite) as decider:
        before, set_aside_before = decider.select_over_fastest(25.0, client_id)
        assert before.disposition == selector_pb2.DISPOSITION_SERVED, before
        learned_before = service.learner.learned
        with ModiPickClient(live_suite.selector_target, client_id=client_id) as client:
            client.wait_ready()
            results = [client.infer(images[i], 2000, label=int(labels[i]), return_delay_ms=60.0) for i in range(25)]
        assert not any(r.run_on_device for r in results)
        assert service.learner.learned - learned_before == 25
        # partitioned by default on Redis: the serving replica writes the client's state, the
        # decider reads it with its next decision
        wait_until(lambda: learned_legs(live_suite.loop, live_suite.selector, client_id) == 25, 10.0)
        model = learned_model(live_suite.loop, live_suite.selector, client_id)
        median = model.estimate(1.0).quantile(0.5)
        assert 59.0 <= median <= leg_ceiling_ms(results), median
        after, set_aside_after = decider.select_over_fastest(25.0, client_id)
        assert after.disposition == selector_pb2.DISPOSITION_RUN_ON_DEVICE, after
        assert after.reason == common_pb2.SELECTION_REASON_FALLBACK
        # the learned ~60 ms leg (its low quantile) against the prior's 1 ms
        assert set_aside_after - set_aside_before > 45.0, (set_aside_before, set_aside_after)
        paper, _ = decider.select_over_fastest(25.0, client_id, policy="modipick")
        assert paper.disposition == selector_pb2.DISPOSITION_SERVED
        # another network class has learned nothing: still the prior
        other, _ = decider.select_over_fastest(25.0, "elsewhere/new-client")
        assert other.disposition == selector_pb2.DISPOSITION_SERVED


def test_infer_with_a_skewed_clock_and_a_deadline_is_served(live_suite, digits):
    from modipick.client.inputs import to_input

    images, _ = digits
    with grpc.insecure_channel(live_suite.selector_target, CHANNEL_OPTIONS) as channel:
        stub = selector_pb2_grpc.SelectorServiceStub(channel)
        grpc.channel_ready_future(channel).result(timeout=10)
        for skew in (-10.0, 10.0):
            request = selector_pb2.InferRequest(request_id=f"skew{skew:+.0f}", input=to_input(images[0]),
                                                sla_ms=1000.0, client_id="skewed-phone",
                                                client_send_time=stamp(time.time_ns() + int(skew * SECOND_NS)))
            reply = stub.Infer(request, timeout=1.0)
            assert reply.disposition == selector_pb2.DISPOSITION_SERVED
            # from the deadline, not 10 s (a stall of this busy machine may add a few hundred ms at worst)
            assert 0.0 <= reply.timings.upload_ms < 500.0


def test_the_sdk_deadline_gives_the_selector_each_upload_exactly(live_suite, digits):
    """The SDK sends every timeout as it is: by default HPACK resends an earlier, up to 3 % longer
    timeout on the same connection (here 870 ms would arrive as 890: a 30 ms upload read as 10)."""
    images, _ = digits
    uploads = [10.0, 30.0, 58.0, 90.0, 12.0, 3.0, 31.0, 29.0]
    with ModiPickClient(live_suite.selector_target) as client:
        client.wait_ready()
        results = [client.infer(images[i], 900.0, upload_delay_ms=up) for i, up in enumerate(uploads)]
    seen = [r.timings.upload_ms for r in results]
    errors = [round(s - up, 2) for s, up in zip(seen, uploads)]
    # never below (a stale, longer timeout would read as a shorter upload, e.g. -20 ms); above,
    # at most what this client measured outside the server's time (the upload sleep's overshoot and
    # the loopback hop on a busy machine, and the reply leg): e2e - server_ms, in the same request,
    # plus the server's own time before it read the deadline (a stall there is in both server_ms
    # and the upload it reads; selection_ms covers it)
    assert all(e >= -1.0 for e in errors), list(zip(uploads, errors))
    beyond = [round(s - (r.e2e_ms - r.timings.server_ms) - r.timings.selection_ms, 2) for s, r in zip(seen, results)]
    assert all(b <= 1.0 for b in beyond), list(zip(uploads, errors, beyond))


@pytest.mark.parametrize("floor,disposition", [(0.5, selector_pb2.DISPOSITION_SERVED),
                                               (1.0, selector_pb2.DISPOSITION_RUN_ON_DEVICE)])
def test_below_the_minimum_chance_risk_aware_sends_the_request_to_the_device(floor, disposition):
    """One model of 20 +- 20 ms with 29 ms left: it fits the budget T_U, and meets the SLA with P = 5/6
    (the lower Gauss-Hermite node misses). Served at the default floor, declined at 1.0, where the old
    rule (FALLBACK and slower than T_U) would still have served it. The Selector's clock is injected
    and the request budgeted from its send stamp, 0.5 ms before that clock's reading: the budget is
    the same however busy the machine is."""
    from modipick.selector.app import SelectorSettings, start_selector
    from modipick.stores import InMemoryProfileStore

    store = InMemoryProfileStore()
    store.register(ModelProfile(name="wobbly", version=1, declared_accuracy=60.0, mean_ms=20.0, var_ms2=400.0,
                                samples=100, state="eligible"))
    received_ns = time.time_ns()
    loop = LoopThread()
    app = loop.run(start_selector(SelectorSettings(store_url="memory", executor_target="127.0.0.1:9",
                                                   refresh_ms=600_000.0, min_meet_probability=floor), store=store,
                                  wall_ns=lambda: received_ns))
    try:
        with grpc.insecure_channel(app.target, CHANNEL_OPTIONS) as channel:
            stub = selector_pb2_grpc.SelectorServiceStub(channel)
            reply = stub.Select(selector_pb2.SelectRequest(request_id="wobbly-1", sla_ms=30.0,
                                                           client_send_time=stamp(received_ns - 500_000)),
                                timeout=5.0)  # far beyond the SLA: the budget comes from the send stamp
    finally:
        loop.run(app.stop(0))
        loop.close()
    assert reply.disposition == disposition, reply
    assert reply.model.name == "wobbly" and reply.budget_ms == pytest.approx(29.0), reply
