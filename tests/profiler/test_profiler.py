"""The Profiler on the live suite: EWMA from streamed observations, registry, probes, outcomes."""

from __future__ import annotations

import json
import math
import random
import time

import pytest
import structlog
from structlog.testing import LogCapture

from suite_support import admin_channel, wait_until
from modipick.client import InvalidRequest, ModiPickClient
from modipick.core.profiles import ewma_step
from modipick.profiler.service import MAX_PROBE_RUNS
from modipick.v1 import common_pb2, profiler_pb2, profiler_pb2_grpc

ALPHA = 0.1  # the suite's Profiler


def _obs(name, ms, *, version=1, queue=0.0, failed=False):
    return profiler_pb2.Observation(model=common_pb2.ModelRef(name=name, version=version), queue_ms=queue,
                                    execution_ms=ms, failed=failed)


@pytest.fixture
def profiler(live_suite):
    with admin_channel(live_suite.profiler_target) as channel:
        yield profiler_pb2_grpc.ProfilerServiceStub(channel)


def test_ewma_matches_the_observations_it_was_sent(profiler):
    name = "ewma-check"
    profiler.RegisterModel(profiler_pb2.RegisterModelRequest(
        model=common_pb2.ModelRef(name=name, version=1), declared_accuracy=1.0, skip_warmup=True), timeout=5)
    try:
        # skip_warmup: eligible at once (checked now: no Executor serves this model, so a re-probe,
        # which a slow run may reach before the end, would mark it failing)
        registered = {p.model.name: p for p in profiler.ListProfiles(profiler_pb2.ListProfilesRequest()).profiles}
        assert registered[name].state == common_pb2.MODEL_STATE_ELIGIBLE
        rng = random.Random(3)
        sent = [(rng.uniform(0, 2), rng.lognormvariate(1.5, 0.6)) for _ in range(300)]
        junk = [_obs(name, -1.0), _obs(name, float("nan")), _obs(name, 5.0, failed=True), _obs(name, 5.0, version=0),
                _obs("", 5.0)]
        batches = [profiler_pb2.RecordObservationsRequest(observations=[_obs(name, e, queue=q) for q, e in
                                                                        sent[i:i + 64]]) for i in range(0, 300, 64)]
        batches.insert(2, profiler_pb2.RecordObservationsRequest(observations=junk))
        reply = profiler.RecordObservations(iter(batches), timeout=10)
        assert (reply.accepted, reply.rejected) == (300, len(junk))
        mean = var = 0.0
        for samples, (q, e) in enumerate(sent):
            mean, var = ewma_step(mean, var, samples, q + e, ALPHA)
        profiles = {p.model.name: p for p in profiler.ListProfiles(profiler_pb2.ListProfilesRequest()).profiles}
        got = profiles[name]
        assert got.samples == 300
        assert got.mean_ms == pytest.approx(mean, rel=1e-9)
        assert got.std_ms == pytest.approx(math.sqrt(var), rel=1e-9)
    finally:
        profiler.DeregisterModel(profiler_pb2.DeregisterModelRequest(model=common_pb2.ModelRef(name=name, version=1)),
                                 timeout=5)
    names = [m.model.name for m in profiler.ListRegisteredModels(profiler_pb2.ListRegisteredModelsRequest()).models]
    assert name not in names


def test_observations_for_unregistered_models_are_not_stored(live_suite, profiler):
    reply = profiler.RecordObservations(iter([profiler_pb2.RecordObservationsRequest(
        observations=[_obs("nobody", 3.0)] * 5)]), timeout=5)
    assert reply.accepted == 5  # taken in; the store rejects them as unknown
    assert "nobody" not in live_suite.profiles()
    assert live_suite.profiler.sink.stats.unknown >= 5


def test_probe_runs_are_recorded_once(live_suite, profiler):
    """The Profiler records probes itself; the Executor does not report them (probe=True)."""
    before = live_suite.profiles()["cnn-small"].samples
    reply = profiler.ProbeModel(profiler_pb2.ProbeModelRequest(
        model=common_pb2.ModelRef(name="cnn-small", version=1), runs=4), timeout=30)
    assert len(reply.observations) == 4 and all(o.probe for o in reply.observations)
    assert all(o.execution_ms > 0 and o.model.version == 1 for o in reply.observations)
    assert reply.profile.samples == before + 4
    time.sleep(1.5)  # anything the Executor would report arrives within its flush interval
    assert live_suite.profiles()["cnn-small"].samples == before + 4
    assert MAX_PROBE_RUNS >= 4


def test_deregistered_model_stays_out_until_registered_again(live_suite, profiler):
    ref = common_pb2.ModelRef(name="mlp-tiny", version=1)
    declared = live_suite.profiles()["mlp-tiny"].declared_accuracy
    profiler.DeregisterModel(profiler_pb2.DeregisterModelRequest(model=ref), timeout=5)
    try:
        time.sleep(1.5)  # five discovery rounds: the Executor still lists it, yet it is not re-added
        assert "mlp-tiny" not in live_suite.profiles()
        wait_until(lambda: "mlp-tiny" not in {c.name for c in live_suite.selector.cache.snapshot.candidates})
    finally:
        reply = profiler.RegisterModel(profiler_pb2.RegisterModelRequest(model=ref, declared_accuracy=declared),
                                       timeout=5)
    assert reply.profile.state == common_pb2.MODEL_STATE_WARMING and reply.profile.samples == 0
    live_suite.wait_eligible(["mlp-tiny"], timeout_s=60)
    assert live_suite.profiles()["mlp-tiny"].samples >= 10
    # the request stated no input size: the one the Executor lists is registered, not 0 ("any size")
    assert live_suite.profiles()["mlp-tiny"].input_size == 8


def test_outcomes_with_labels_reach_the_profile(live_suite, digits):
    images, labels = digits
    live_suite.loop.run(live_suite.selector.outcomes.drain(5))
    before = {n: (p.served, p.correct) for n, p in live_suite.profiles().items()}
    with ModiPickClient(live_suite.selector_target) as client:
        client.wait_ready()
        results = [client.infer(images[i], 1000, label=int(labels[i])) for i in range(12)]
    assert not any(r.run_on_device for r in results)
    expected = {n: [0, 0] for n in before}
    for r, label in zip(results, labels):
        expected[r.model][0] += 1
        expected[r.model][1] += int(r.label == label)
    want = {n: (before[n][0] + served, before[n][1] + correct) for n, (served, correct) in expected.items()}
    live_suite.loop.run(live_suite.selector.outcomes.drain(5))
    wait_until(lambda: {n: (p.served, p.correct) for n, p in live_suite.profiles().items()} == want)
    assert sum(r.label == label for r, label in zip(results, labels)) >= 9  # real models, real digits


def test_request_id_is_carried_to_the_executor_and_the_profiler(live_suite, digits):
    images, labels = digits
    capture = LogCapture()
    structlog.reset_defaults()  # no level filter left by an earlier configuration: the events below are debug
    structlog.configure(processors=[structlog.contextvars.merge_contextvars, capture])
    try:
        with ModiPickClient(live_suite.selector_target) as client:
            client.wait_ready()
            with pytest.raises(InvalidRequest):
                client.infer(b"\x89PNG\r\n\x1a\nnot really", 2000, request_id="rid-undecodable-1234")
            client.infer(images[0], 1000, label=int(labels[0]), request_id="rid-outcome-5678")
        live_suite.loop.run(live_suite.selector.outcomes.drain(5))
        wait_until(lambda: any(e.get("request_id") == "rid-outcome-5678" and e["event"] == "outcome recorded"
                               for e in capture.entries))
    finally:
        structlog.reset_defaults()

    def executor_logged() -> bool:
        for line in live_suite.executor_log.read_text().splitlines():
            if line.startswith("{") and "rid-undecodable-1234" in line:
                return json.loads(line).get("request_id") == "rid-undecodable-1234"
        return False

    wait_until(executor_logged)
