"""Outcome reports that carry their request's ticket (real gRPC, real Redis, the live suite's
Executor and Profiler): a report reaching a replica that never served the request still teaches
every replica the return leg, a changed ticket is refused, a report without one still needs the
serving replica; the return-leg counters show on both services' metrics endpoints; and the
Profiler's --return-leg-keep."""

from __future__ import annotations

import time
import urllib.request

import grpc
import pytest

from suite_support import (CHANNEL_OPTIONS, FrozenDecider, client_samples, least_delayed, leg_ceiling_ms, on_loop,
                           select, wait_until)
from modipick.client import ModiPickClient
from modipick.runtime.metrics import start_metrics_server
from modipick.selector.returnlegs import ReturnLegSettings
from modipick.v1 import common_pb2, selector_pb2, selector_pb2_grpc






def _report(result, client_id: str, ticket=None) -> selector_pb2.ReportOutcomeRequest:
    report = selector_pb2.ReportOutcomeRequest(
        request_id=result.request_id, model=common_pb2.ModelRef(name=result.model, version=result.version),
        e2e_ms=result.e2e_ms, sla_ms=result.sla_ms, client_id=client_id, predicted_label=result.label)
    if ticket is not None:
        report.ticket.CopyFrom(ticket)
    return report


def _scrape(registry) -> str:
    server = start_metrics_server(0, registry, addr="127.0.0.1")
    try:
        with urllib.request.urlopen(server.url, timeout=5) as reply:
            return reply.read().decode()
    finally:
        server.stop()


def test_a_report_through_a_replica_that_did_not_serve_the_request_teaches_every_replica(live_suite, digits):
    """Requests served by A, their outcomes (with the echoed tickets) reported through B only, the
    client sleeping 60 ms after each reply: B derives each leg from the ticket, the Profiler's
    stream brings it to A too, and both budget ~60 ms for the client's return leg. The SLA is 40 ms
    above the fastest model each replica knows (the 60 ms leg leaves no room: served before, on the
    device after). B decides on a frozen clock (services_support.FrozenDecider); A, the suite's
    Selector, from its deadlines."""
    images, labels = digits
    stream = ReturnLegSettings(sharing="store")  # what is tested is the stream, chosen by name
    a = live_suite.start_selector(return_legs=stream)
    client_id = "ticketclass/phone-a"
    learned_a, from_tickets_a = a.service.learner.learned, a.service.learner.from_tickets
    appended = live_suite.profiler.legs.stats.appended
    with grpc.insecure_channel(a.target, CHANNEL_OPTIONS) as ch_a, FrozenDecider(live_suite, return_legs=stream) as decider:
        b, stub_a = decider.app, selector_pb2_grpc.SelectorServiceStub(ch_a)

        def select_a(tries: int):
            sla = a.cache.snapshot.fastest_ms + 40.0
            reply = least_delayed(lambda: select(stub_a, sla, client_id, prefix="t"), tries)
            return reply, sla - reply.budget_ms

        # A's upload is what its deadline left, stall included: its least-delayed call decides (a
        # call stalled past the ~40 ms deadline shows nothing)
        before = {"a": select_a(5), "b": decider.select_over_fastest(40.0, client_id, prefix="t")}
        assert all(r.disposition == selector_pb2.DISPOSITION_SERVED for r, _ in before.values()), before
        with ModiPickClient(a.target, client_id=client_id) as served_by_a, \
                ModiPickClient(b.target, client_id=client_id) as reports_to_b:
            served_by_a.wait_ready()
            results = [served_by_a.infer(images[i], 2000, return_delay_ms=60.0) for i in range(25)]
            assert all(not r.run_on_device and r.outcome_ticket is not None for r in results)
            assert results[0].outcome_ticket.request_id == results[0].request_id
            for i, result in enumerate(results):
                assert reports_to_b.report_outcome(result, int(labels[i]))
        assert b.service.learner.from_tickets == b.service.learner.learned == 25
        assert b.service.learner.unmatched == 0
        wait_until(lambda: all(on_loop(live_suite.loop, lambda: client_samples(app, client_id)) == 25
                               for app in (a, b)), 10.0)
        after = {"a": select_a(5), "b": decider.select_over_fastest(40.0, client_id, prefix="t")}
    for name, (reply, _) in after.items():
        assert reply.disposition == selector_pb2.DISPOSITION_RUN_ON_DEVICE, (name, reply)
    # what the budget sets aside of the SLA grows by the learned leg (its low quantile, ~60 ms) less
    # the mirror prior: on B's frozen clock 1 ms; on A, `before`'s least-delayed upload (up to
    # several ms on a busy machine). A leg not learned: ~0
    assert after["b"][1] - before["b"][1] > 50.0, (before["b"], after["b"])
    assert after["a"][1] - before["a"][1] > 30.0, (before["a"], after["a"])
    assert (a.service.learner.learned, a.service.learner.from_tickets) == (learned_a, from_tickets_a)
    book = b.service.budgeter.returns
    median = on_loop(live_suite.loop, lambda: book.estimate(client_id, 1.0).estimate.quantile(0.5))
    assert 59.0 <= median <= leg_ceiling_ms(results), median

    # the counters behind it, on the metrics endpoints
    reports = lambda app, result: app.metrics.registry.get_sample_value(  # noqa: E731
        "modipick_outcome_reports_total", {"result": result})
    assert reports(b, "learned_ticket") == 25 and reports(b, "learned_memory") == 0
    # B did not serve them: it does not know their policy
    assert b.metrics.registry.get_sample_value("modipick_e2e_seconds_count", {"policy": "unknown"}) == 25
    stream = lambda app, result: app.metrics.registry.get_sample_value(  # noqa: E731
        "modipick_return_leg_stream_total", {"result": result})
    assert stream(b, "applied") >= 25 and stream(a, "applied") >= 25 and stream(b, "skipped") is not None
    profiler_registry = live_suite.profiler.metrics.registry
    assert profiler_registry.get_sample_value("modipick_return_legs_total", {"result": "appended"}) - appended >= 25
    page_b = _scrape(b.metrics.registry)
    assert 'modipick_outcome_reports_total{result="learned_ticket"} 25.0' in page_b
    assert "modipick_return_leg_stream_read_failures_total 0.0" in page_b
    page_profiler = _scrape(profiler_registry)
    for line in ('modipick_return_legs_total{result="rejected"}', 'modipick_return_legs_total{result="dropped"} 0.0',
                 "modipick_return_leg_write_failures_total 0.0", "modipick_return_legs_pending"):
        assert line in page_profiler, line


def test_a_changed_ticket_is_refused_and_a_report_without_one_needs_the_serving_replica(live_suite, digits):
    images, _ = digits
    a = live_suite.selector
    b = live_suite.start_selector()
    client_id = "ticketclass/phone-b"
    with ModiPickClient(a.target, client_id=client_id) as client:
        client.wait_ready()
        results = [client.infer(images[i], 2000) for i in range(3)]
    assert all(r.outcome_ticket is not None for r in results)
    learned_b, unmatched_b = b.service.learner.learned, b.service.learner.unmatched
    with grpc.insecure_channel(b.target, CHANNEL_OPTIONS) as channel:
        stub = selector_pb2_grpc.SelectorServiceStub(channel)
        grpc.channel_ready_future(channel).result(timeout=10)
        first = results[0]
        changes = {"upload_ms": -5.0, "server_ms": float("nan"), "after_decision_ms": 1e9,
                   "request_id": results[1].request_id, "client_id": "ticketclass/someone-else"}
        for field, value in changes.items():
            tampered = selector_pb2.OutcomeTicket()
            tampered.CopyFrom(first.outcome_ticket)
            setattr(tampered, field, value)
            with pytest.raises(grpc.RpcError) as err:
                stub.ReportOutcome(_report(first, client_id, tampered), timeout=5)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, field
            assert err.value.details().startswith(f"ticket.{field}:"), err.value.details()
        # the ticket of another request is not this report's
        with pytest.raises(grpc.RpcError) as err:
            stub.ReportOutcome(_report(first, client_id, results[1].outcome_ticket), timeout=5)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (b.service.learner.learned, b.service.learner.unmatched) == (learned_b, unmatched_b)
        # no ticket (an older client): B never served it, so nothing is learned; A still can
        stub.ReportOutcome(_report(results[1], client_id), timeout=5)
        assert b.service.learner.unmatched == unmatched_b + 1 and b.service.learner.learned == learned_b
    learned_a = a.service.learner.learned
    with grpc.insecure_channel(a.target, CHANNEL_OPTIONS) as channel:
        stub = selector_pb2_grpc.SelectorServiceStub(channel)
        stub.ReportOutcome(_report(results[2], client_id), timeout=5)
    assert a.service.learner.learned == learned_a + 1


def test_the_profiler_flag_sets_how_many_return_legs_the_stream_keeps(capsys):
    from modipick.profiler.__main__ import parse_settings
    from modipick.profiler.return_legs import DEFAULT_KEEP

    assert parse_settings([], environ={})[0].return_leg_keep == DEFAULT_KEEP
    assert parse_settings(["--return-leg-keep", "500"], environ={})[0].return_leg_keep == 500
    assert parse_settings([], environ={"MODIPICK_RETURN_LEG_KEEP": "700"})[0].return_leg_keep == 700
    with pytest.raises(SystemExit) as bad:
        parse_settings(["--return-leg-keep", "0"], environ={})
    assert bad.value.code == 2 and "--return-leg-keep" in capsys.readouterr().err


def test_the_load_generator_echoes_the_ticket_so_another_replica_learns(live_suite, digits):
    import asyncio

    from modipick.client.inputs import to_input
    from modipick.loadgen.grpc_target import GrpcSelectorTarget
    from modipick.loadgen.target import OutgoingRequest

    images, labels = digits
    b = live_suite.start_selector()
    client_id = "ticketclass/loadgen"
    before = b.service.learner.from_tickets

    async def drive() -> list:
        to_a, to_b = GrpcSelectorTarget(live_suite.selector.target), GrpcSelectorTarget(b.target)
        try:
            await to_a.wait_ready()
            await to_b.wait_ready()
            replies = []
            for i in range(3):
                request = OutgoingRequest(f"lg-{time.perf_counter_ns()}", to_input(images[i]), 2000.0, time.time(),
                                          2.0, client_id=client_id)
                reply = await to_a.send(request)
                replies.append(reply)
                await to_b.report_outcome(request, reply, 30.0, int(labels[i]))
            return replies
        finally:
            await to_a.close()
            await to_b.close()

    replies = asyncio.run(drive())
    assert all(r.ok and r.disposition == "served" and r.outcome_ticket is not None for r in replies), replies
    assert b.service.learner.from_tickets - before == 3
