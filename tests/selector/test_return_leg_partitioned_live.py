"""Return legs partitioned by client (real gRPC, real Redis, the live suite's Executor): a client's
reports through replica A teach its model in Redis; a replica started afterwards decides for the
client with that model from its first request (the reply says so), having replayed nothing."""

from __future__ import annotations

import grpc

from suite_support import CHANNEL_OPTIONS, FrozenDecider, digit_tensor
from modipick.client import ModiPickClient
from modipick.selector.returnlegs import ReturnLegSettings
from modipick.v1 import selector_pb2, selector_pb2_grpc

PARTITIONED = ReturnLegSettings(sharing="partitioned")


def test_a_new_replica_decides_with_the_model_a_client_taught_another(live_suite, digits):
    images, labels = digits
    a = live_suite.start_selector(return_legs=PARTITIONED)
    assert a.client_legs is not None and a.legs_feed is None  # nothing replayed
    client_id = "partclass/phone-1"
    with ModiPickClient(a.target, client_id=client_id) as client:
        client.wait_ready()
        results = []
        for i in range(25):
            results.append(client.infer(images[i], 2000, label=int(labels[i]), return_delay_ms=60.0))
            assert not results[-1].run_on_device
            live_suite.loop.run(a.client_legs.drain())
        learned = client.infer(images[0], 2000)
    assert a.client_legs.writes == 25 and a.client_legs.write_failures == 0
    # the SDK's results carry the decision's provenance: the prior first, the client's own model at last
    assert results[0].return_leg_source == "prior" and 0.5 < results[0].meet_probability <= 1.0
    assert learned.return_leg_source == "client" and 0.5 < learned.meet_probability <= 1.0, learned
    with grpc.insecure_channel(a.target, CHANNEL_OPTIONS) as channel:
        reply = selector_pb2_grpc.SelectorServiceStub(channel).Infer(selector_pb2.InferRequest(
            request_id="p-infer", sla_ms=2000.0, client_id=client_id, input=digit_tensor(images[0])), timeout=2.0)
    assert reply.disposition == selector_pb2.DISPOSITION_SERVED
    assert reply.return_leg_source == selector_pb2.RETURN_LEG_SOURCE_CLIENT and 0.5 < reply.meet_probability <= 1.0

    # a NEW replica with the default settings: it never saw a report. On a frozen clock (services_support.FrozenDecider), at an
    # SLA 25 ms above its fastest model: the stranger and the client get the same upload however busy
    # the machine is, so only the return leg model (the prior, or the one the client taught A) tells
    # their chances apart
    with FrozenDecider(live_suite) as decider:  # the default settings
        b = decider.app
        assert b.client_legs is not None and b.legs_feed is None  # partitioned: the default on Redis
        decider.select(2000.0, "warmup/phone-0", prefix="w")  # B's connections (Redis too) opened
        stranger, _ = decider.select_over_fastest(25.0, "otherclass/phone-9", prefix="p")
        after, _ = decider.select_over_fastest(25.0, client_id, prefix="p")
    assert b.service.learner.learned == 0 and b.client_legs.writes == 0
    assert after.return_leg_source == selector_pb2.RETURN_LEG_SOURCE_CLIENT, after
    assert stranger.return_leg_source == selector_pb2.RETURN_LEG_SOURCE_PRIOR, stranger
    # the learned 60 ms return leg leaves no room for the model: the device answers
    assert after.disposition == selector_pb2.DISPOSITION_RUN_ON_DEVICE, after
    assert 0.0 <= after.meet_probability < 0.5 <= stranger.meet_probability <= 1.0, (after, stranger)
    counted = b.metrics.registry.get_sample_value("modipick_selector_decisions_by_return_leg_source_total",
                                                  {"return_leg_source": "client"})
    assert counted == 1.0
    assert b.metrics.registry.get_sample_value("modipick_client_return_legs_total", {"event": "load"}) >= 1.0
