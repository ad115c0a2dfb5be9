"""Return legs shared by Selector replicas through the Profiler and Redis (real gRPC, real Redis,
the live suite's Executor): the Profiler writes the legs it is sent; outcome reports sent through
one replica only set another replica's budget; a Redis outage costs learning, never a request."""

from __future__ import annotations

import math

import grpc
import pytest

from fixtures_suite import LoopThread
from suite_support import FrozenDecider, client_samples, leg_ceiling_ms, on_loop, wait_until
from modipick.client import ModiPickClient
from modipick.selector.returnlegs import ReturnLegSettings
from modipick.v1 import common_pb2, profiler_pb2, profiler_pb2_grpc, selector_pb2

STREAM = ReturnLegSettings(sharing="store")  # the replicated stream, by name (the default on Redis partitions)






def _outcome(rid: str, leg: profiler_pb2.ReturnLeg | None, *, version: int = 1, label: int | None = 3):
    report = profiler_pb2.RecordOutcomeRequest(request_id=rid, model=common_pb2.ModelRef(name="nobody", version=version),
                                               e2e_ms=80.0, sla_ms=100.0, predicted_label=3, client_id="ignored",
                                               return_leg=leg)
    if label is not None:
        report.true_label = label
    return report


def test_the_profiler_appends_reported_return_legs_to_the_store(redis_url):
    from modipick.profiler.app import ProfilerSettings, start_profiler
    from modipick.stores import RedisProfileStore, ReturnLegSample

    loop = LoopThread()
    store = RedisProfileStore(redis_url)
    app = loop.run(start_profiler(ProfilerSettings(store_url=redis_url, executor_target="127.0.0.1:9",
                                                   discover=False, grace_s=0.2)))
    try:
        with grpc.insecure_channel(app.target) as channel:
            stub = profiler_pb2_grpc.ProfilerServiceStub(channel)
            good = [profiler_pb2.ReturnLeg(client_id="lte/p1", upload_ms=12.5, return_ms=48.25, basis_ms=40.0,
                                           basis_owner=profiler_pb2.RETURN_LEG_OWNER_CLIENT),
                    profiler_pb2.ReturnLeg(client_id="", upload_ms=0.0, return_ms=0.0),  # anonymous, prior decided
                    profiler_pb2.ReturnLeg(client_id="lte/p2", upload_ms=3.0, return_ms=70.0, basis_ms=66.0,
                                           basis_owner=profiler_pb2.RETURN_LEG_OWNER_CLASS)]
            # the model is unknown (NOT_FOUND) or the label absent: the leg is kept all the same
            with pytest.raises(grpc.RpcError) as err:
                stub.RecordOutcome(_outcome("r1", good[0]), timeout=5)
            assert err.value.code() == grpc.StatusCode.NOT_FOUND
            stub.RecordOutcome(_outcome("r2", good[1], label=None), timeout=5)
            with pytest.raises(grpc.RpcError):
                stub.RecordOutcome(_outcome("r3", good[2], version=0), timeout=5)  # INVALID_ARGUMENT model
            for bad in (profiler_pb2.ReturnLeg(client_id="x", upload_ms=1.0, return_ms=math.nan),
                        profiler_pb2.ReturnLeg(client_id="x", upload_ms=-1.0, return_ms=5.0)):
                stub.RecordOutcome(_outcome("bad", bad, label=None), timeout=5)
            stub.RecordOutcome(_outcome("no-leg", None, label=None), timeout=5)
        assert loop.run(app.legs.flush())
        page = store.read_return_legs("0", 100)
        assert [s for _, s in page.entries] == [ReturnLegSample("lte/p1", 12.5, 48.25, 40.0, "client"),
                                                ReturnLegSample("", 0.0, 0.0, None, ""),
                                                ReturnLegSample("lte/p2", 3.0, 70.0, 66.0, "class")]
        assert app.service.rejected_legs == 2 and app.legs.stats.appended == 3
    finally:
        loop.run(app.stop(0.2))
        loop.close()
        store.close()


def test_reports_through_one_replica_set_another_replicas_budget(live_suite, digits):
    """The clients sleep 60 ms after each reply and report to replica A only. Replica B never sees
    a report, yet after A's 25 from one client it budgets 60 ms for that client's return leg, and,
    once two more clients of its network class reported too, for a sibling that never reported;
    A and B hold the very same models. B decides on a frozen clock (services_support.FrozenDecider)
    at an SLA 25 ms above its fastest model: what its budgets set aside differs by the learned legs
    alone, however busy the machine is."""
    images, labels = digits
    a = live_suite.start_selector(return_legs=STREAM)
    client_id, sibling = "sharedclass/phone-a", "sharedclass/phone-b"
    results = []
    with FrozenDecider(live_suite, return_legs=STREAM) as decider:
        b = decider.app
        assert a.legs_feed is not None and b.legs_feed is not None
        before, set_aside_before = decider.select_over_fastest(25.0, client_id, prefix="s")
        before_sibling, set_aside_before_sibling = decider.select_over_fastest(25.0, sibling, prefix="s")
        assert before.disposition == before_sibling.disposition == selector_pb2.DISPOSITION_SERVED
        for reporter, count in ((client_id, 25), ("sharedclass/phone-c", 10), ("sharedclass/phone-d", 10)):
            with ModiPickClient(a.target, client_id=reporter) as client:
                client.wait_ready()
                for i in range(count):
                    result = client.infer(images[i], 2000, label=int(labels[i]), return_delay_ms=60.0)
                    assert not result.run_on_device
                    if reporter == client_id:
                        results.append(result)
        wait_until(lambda: on_loop(live_suite.loop, lambda: client_samples(b, client_id)) == 25, 10.0)
        wait_until(lambda: on_loop(live_suite.loop, lambda: client_samples(b, "sharedclass/phone-d")) == 10, 10.0)
        assert b.service.learner.learned == 0  # no report reached B
        after, set_aside_after = decider.select_over_fastest(25.0, client_id, prefix="s")
        after_sibling, set_aside_after_sibling = decider.select_over_fastest(25.0, sibling, prefix="s")
    assert after.disposition == selector_pb2.DISPOSITION_RUN_ON_DEVICE, after
    # the learned leg (its low quantile, ~60 ms) in place of the 1 ms mirror prior
    assert set_aside_after - set_aside_before > 50.0, (set_aside_before, set_aside_after)
    assert after_sibling.disposition == selector_pb2.DISPOSITION_RUN_ON_DEVICE, after_sibling  # the class model
    assert set_aside_after_sibling - set_aside_before_sibling > 50.0, (set_aside_before_sibling,
                                                                      set_aside_after_sibling)
    for app in (a, b):  # both replicas have read every report of the three clients
        for reporter, count in ((client_id, 25), ("sharedclass/phone-c", 10), ("sharedclass/phone-d", 10)):
            wait_until(lambda: on_loop(live_suite.loop, lambda: client_samples(app, reporter)) == count, 10.0)

    def models(app):
        book = app.service.budgeter.returns
        return [book.estimate(c, 1.0) for c in (client_id, sibling)]

    # nothing reported since: both replicas have read the same stream to its end
    assert on_loop(live_suite.loop, lambda: models(a)) == on_loop(live_suite.loop, lambda: models(b))
    median = on_loop(live_suite.loop, lambda: models(b)[0].estimate.quantile(0.5))
    assert 59.0 <= median <= leg_ceiling_ms(results), median


def test_a_redis_outage_costs_shared_learning_not_requests(live_suite, digits, own_redis):
    """A Profiler and a sharing Selector on a Redis of their own (the suite's Executor): Redis
    killed, every request and report is still answered; the reads and writes that failed are
    counted; Redis back (empty), the replica learns again from the legs reported since."""
    from modipick.profiler.app import ProfilerSettings, start_profiler
    from modipick.stores import make_store

    images, labels = digits
    store = make_store(own_redis.url)
    for profile in live_suite.profiles().values():
        if profile.state == "eligible":
            store.register(profile)
    profiler = live_suite.loop.run(start_profiler(ProfilerSettings(
        store_url=own_redis.url, executor_target=live_suite.executor_target, discover=False, grace_s=0.2,
        store_options=dict(timeouts=0.5, retries=0))))
    selector = live_suite.start_selector(store_url=own_redis.url, profiler_target=profiler.target,
                                         store_options=dict(timeouts=0.5, retries=0), return_legs=STREAM)
    feed = selector.legs_feed
    served = 0
    try:
        assert feed is not None
        with ModiPickClient(selector.target, client_id="outage/phone") as client:
            client.wait_ready()

            def send(n: int, offset: int) -> None:
                nonlocal served
                for i in range(offset, offset + n):
                    result = client.infer(images[i], 2000, label=int(labels[i]), return_delay_ms=5.0)
                    served += not result.run_on_device

            send(5, 0)
            wait_until(lambda: feed.applied >= 5, 10.0)
            own_redis.stop()
            send(10, 5)  # answered from the last-known profiles; the reports are answered too
            wait_until(lambda: feed.failed_reads >= 1, 10.0)
            wait_until(lambda: profiler.legs.stats.failed_writes >= 1, 10.0)
            assert feed.applied == 5
            own_redis.start()
            send(5, 15)
            # the Profiler's buffered legs and the new ones land in the restarted Redis; new ids
            # sort after the replica's last one, so it reads them
            wait_until(lambda: feed.applied >= 15, 20.0)
    finally:
        live_suite.loop.run(selector.stop(0.2))
        live_suite.extra.remove(selector)
        live_suite.loop.run(profiler.stop(0.2))
        store.close()
    assert served == 20
    assert selector.metrics.dispositions()["served"] == 20
