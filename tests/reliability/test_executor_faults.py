"""Executor faults under load: a hung Executor (SIGSTOP) and a killed one (SIGKILL) cost retries on
the other replica, not requests; with no other replica, requests end by their deadline with a
clear DEADLINE_EXCEEDED; a model that keeps failing (the real "flaky" SavedModel, its switch file
removed) leaves the eligible set until a probe passes again."""

from __future__ import annotations

import time

import grpc
import pytest

from modipick.v1 import selector_pb2, selector_pb2_grpc
from lag_support import SchedulingLag
from reliability_support import Load, channel, digit_input, request_figures, stamp, wait_until

SLA_MS = 300.0
# past the gRPC deadline itself: the client's wakeup after it, beyond what SchedulingLag measured of
# this process's scheduling in the same test
LATE_SLACK_MS = 50.0


@pytest.fixture(scope="module")
def e2(rig, tmp_path_factory):
    """A second Executor replica like E1 (same pool, mutual TLS, reporting to the Profiler)."""
    from modipick.v1 import executor_pb2, executor_pb2_grpc

    proc = rig.start_executor("e2", tmp_path_factory.mktemp("e2"))
    proc.wait_serving(120)

    def loaded() -> bool:
        try:  # a busy machine may take longer than 2 s to answer while the models load: ask again
            with channel(proc.target, rig.pki) as ch:
                models = executor_pb2_grpc.ExecutorServiceStub(ch).ListModels(executor_pb2.ListModelsRequest(),
                                                                              timeout=2).models
        except grpc.RpcError:
            return False
        return len(models) == 5 and all(m.state == 3 for m in models)

    wait_until(loaded, 120, 0.2, what=lambda: proc.tail())
    yield proc
    proc.stop()


def assert_all_answered_in_time(outcomes, lag: SchedulingLag, *, may_expire: float = 0.0) -> None:
    """None late (`lag`: how late this process ran meanwhile); none failed, except (up to the share
    `may_expire`) DEADLINE_EXCEEDED ones."""
    late = [o for o in outcomes if o.elapsed_ms > o.deadline_ms + LATE_SLACK_MS + lag.max_ms]
    assert not late, (lag.max_ms, late[:3])
    failed = [o for o in outcomes if o.result not in ("served", "run_on_device")]
    expired = [o for o in failed if o.result == "DEADLINE_EXCEEDED"]
    # a request in flight while the machine stalled this very process is not held against the code
    unexplained = [o for o in expired if not lag.stalled_during(o.started, o.started + o.elapsed_ms / 1000.0)]
    assert len(failed) == len(expired) and len(unexplained) <= may_expire * len(outcomes), failed[:5]


def test_a_hung_executor_costs_a_retry_not_the_request(rig, e2, figures):
    selector = rig.start_selector([rig.e1.target, e2.target])
    load = Load(selector.target, rig.pki, sla_ms=SLA_MS, threads=3).start()
    try:
        time.sleep(1.0)
        hung_at = time.monotonic()
        e2.pause()
        time.sleep(2.0)
        e2.resume()
        resumed_at = time.monotonic()
        wait_until(lambda: selector.pool.replicas[1].stats.get("OK", 0) > 0 and
                   not selector.pool.replicas[1].ejected(time.monotonic()), 10, what="E2 back in the rotation")
        served_before = selector.pool.replicas[1].stats.get("OK", 0)
        time.sleep(1.0)
    finally:
        e2.resume()
        outcomes = load.stop()
    during = [o for o in outcomes if hung_at <= o.started < resumed_at]
    figures.record("executor_hung", sla_ms=SLA_MS, replicas=2, hung_s=2.0, **request_figures(outcomes),
                   during_hang=request_figures(during), retries=selector.pool.retries,
                   served_by_a_retry=selector.pool.rescued)
    # a retry gets what the first attempt left of the SLA: on two cores busy with other work the
    # healthy replica may now and then need more than that (0 in quiet runs; a few in ~700 on a busy one)
    assert_all_answered_in_time(outcomes, load.lag, may_expire=0.01)
    assert during and selector.pool.rescued > 0  # the hang was felt, and retried around
    assert selector.pool.replicas[1].stats.get("OK", 0) > served_before  # E2 serves again once resumed
    rig.stop_selector(selector)


def test_with_no_other_replica_requests_end_by_their_deadline(rig, e2, figures):
    selector = rig.start_selector([e2.target])
    ends = []
    with channel(selector.target, rig.pki) as ch:
        stub = selector_pb2_grpc.SelectorServiceStub(ch)
        grpc.channel_ready_future(ch).result(timeout=5)
        e2.pause()
        lag = SchedulingLag().start()
        try:
            for i in range(6):
                request = selector_pb2.InferRequest(request_id=f"hung-{i}", input=digit_input(i), sla_ms=200.0,
                                                    client_send_time=stamp())
                began = time.monotonic()
                with pytest.raises(grpc.RpcError) as err:
                    stub.Infer(request, timeout=0.2)
                ends.append(((time.monotonic() - began) * 1000.0, err.value.code(), err.value.details()))
        finally:
            lag.stop()
            e2.resume()
    rig.stop_selector(selector)
    figures.record("executor_hung_single_replica", sla_ms=200.0, requests=len(ends),
                   statuses=sorted({code.name for _, code, _ in ends}),
                   max_elapsed_ms=round(max(ms for ms, _, _ in ends), 1),
                   answered_by_the_selector=sum("budget" in (d or "") for _, _, d in ends),
                   example=next((d for _, _, d in ends if "budget" in (d or "")), ends[-1][2]))
    for elapsed_ms, code, details in ends:
        assert code == grpc.StatusCode.DEADLINE_EXCEEDED and elapsed_ms <= 200.0 + LATE_SLACK_MS + lag.max_ms, \
            (elapsed_ms, lag.max_ms)
    # the Selector's own answer (not the client's timer) says what ran out
    assert any("budget" in (details or "") for _, _, details in ends), ends


def test_a_model_that_keeps_failing_leaves_the_eligible_set_until_a_probe_passes(rig, e2, figures):
    selector = rig.start_selector([rig.e1.target, e2.target])
    wait_until(lambda: "flaky" in {c.name for c in selector.cache.snapshot.candidates}, 10)
    load = Load(selector.target, rig.pki, sla_ms=SLA_MS, threads=3).start()
    try:
        time.sleep(0.5)
        broken_at = time.monotonic()
        rig.switch.unlink()  # TensorFlow now fails every run of "flaky"
        wait_until(lambda: rig.profiles()["flaky"].state == "failing", 15, what="flaky marked failing")
        failing_after_s = time.monotonic() - broken_at
        wait_until(lambda: "flaky" not in {c.name for c in selector.cache.snapshot.candidates}, 5)
        left_at = time.monotonic()
        time.sleep(1.0)
        mended_at = time.monotonic()
        rig.switch.write_text("on\n")
        wait_until(lambda: rig.profiles()["flaky"].state == "eligible", 20, what="flaky probed back")
        eligible_after_s = time.monotonic() - mended_at
        wait_until(lambda: "flaky" in {c.name for c in selector.cache.snapshot.candidates}, 5)
        back_at = time.monotonic()
        time.sleep(0.5)
    finally:
        if not rig.switch.exists():
            rig.switch.write_text("on\n")
        outcomes = load.stop()
    while_out = [o for o in outcomes if left_at + 0.3 <= o.started < mended_at]
    figures.record("failing_model", sla_ms=SLA_MS, **request_figures(outcomes),
                   marked_failing_after_s=round(failing_after_s, 2), eligible_after_fix_s=round(eligible_after_s, 2),
                   served_by_a_retry=selector.pool.rescued,
                   flaky_chosen_while_failing=sum(o.model == "flaky" for o in while_out),
                   flaky_served_after=sum(o.model == "flaky" for o in outcomes if o.started >= back_at))
    assert_all_answered_in_time(outcomes, load.lag)
    assert selector.pool.rescued > 0  # the failures were retried on another model
    assert while_out and not any(o.model == "flaky" for o in while_out)
    rig.stop_selector(selector)


def test_a_killed_executor_costs_a_retry_not_the_request(rig, e2, figures):
    selector = rig.start_selector([rig.e1.target, e2.target])
    load = Load(selector.target, rig.pki, sla_ms=SLA_MS, threads=3).start()
    try:
        time.sleep(1.0)
        killed_at = time.monotonic()
        e2.kill()
        time.sleep(2.0)
    finally:
        outcomes = load.stop()
    after = [o for o in outcomes if o.started >= killed_at]
    figures.record("executor_killed", sla_ms=SLA_MS, replicas=2, **request_figures(outcomes),
                   after_kill=request_figures(after), retries=selector.pool.retries,
                   served_by_a_retry=selector.pool.rescued, e2_ejected=selector.pool.replicas[1].ejected(time.monotonic()))
    assert_all_answered_in_time(outcomes, load.lag)
    assert after and selector.pool.replicas[1].ejected(time.monotonic())
    rig.stop_selector(selector)
