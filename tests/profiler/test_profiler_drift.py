"""The Profiler's change detector (modipick.profiler.drift): after a step change in a model's latency
its profile follows within the detector's run length, over real gRPC into a real Redis."""

from __future__ import annotations

import asyncio
import random

import grpc
import pytest

from modipick.core import ModelProfile
from modipick.profiler.app import ProfilerSettings, start_profiler
from modipick.profiler.drift import ChangeSettings
from modipick.stores import make_store
from modipick.v1 import common_pb2, profiler_pb2, profiler_pb2_grpc

MODEL = "drifting"
ALPHA = 0.1


def _batch(values):
    return profiler_pb2.RecordObservationsRequest(observations=[
        profiler_pb2.Observation(model=common_pb2.ModelRef(name=MODEL, version=1), queue_ms=0.5,
                                 execution_ms=v - 0.5) for v in values])


async def _profile_after(redis_url: str, batches: list[list[float]], changes: ChangeSettings) -> list[ModelProfile]:
    """Start a Profiler (no discovery) on `redis_url`, stream each batch as its own call, and return
    the model's profile after each one."""
    store = make_store(redis_url)
    store.register(ModelProfile(name=MODEL, version=1, declared_accuracy=90.0, state="eligible"))
    app = await start_profiler(ProfilerSettings(store_url=redis_url, executor_target="127.0.0.1:9", alpha=ALPHA,
                                                discover=False, changes=changes), store=store)
    seen = []
    try:
        async with grpc.aio.insecure_channel(app.target) as channel:
            stub = profiler_pb2_grpc.ProfilerServiceStub(channel)
            for values in batches:
                reply = await stub.RecordObservations(iter([_batch(values)]), timeout=10)
                assert reply.accepted == len(values)
                (profile,) = [p for p in store.load_all() if p.name == MODEL]
                seen.append(profile)
    finally:
        await app.stop(0)
        store.deregister(MODEL, 1)
        store.close()
    return seen


def _steady(rng: random.Random, n: int, mean: float) -> list[float]:
    return [rng.gauss(mean, 0.02 * mean) for _ in range(n)]


def test_profile_follows_a_3x_slowdown_and_the_recovery_within_the_run_length(redis_url):
    rng = random.Random(5)
    run = ChangeSettings().run
    assert run == 3
    batches = [_steady(rng, 40, 10.0),        # profiled at ~10 ms
               [30.0, 30.6, 29.4],            # 3x slower: one run of outliers
               _steady(rng, 5, 30.0),
               [10.1, 9.9, 10.0, 10.2, 9.8]]  # recovered: re-seeded after the third, then the EWMA
    base, slowed, settled, recovered = asyncio.run(_profile_after(redis_url, batches, ChangeSettings()))
    assert base.mean_ms == pytest.approx(10.0, abs=0.3)
    assert slowed.mean_ms == pytest.approx(30.0, abs=0.01)        # the mean of the run
    # re-seeded spread: the run's own (0.6 ms), not the EWMA's inflation by a 20 ms step (~6 ms)
    assert 0.55 < slowed.std_ms < 1.0
    assert slowed.samples == 43                                   # every observation counted once
    assert settled.mean_ms == pytest.approx(30.0, abs=1.0)
    assert recovered.mean_ms == pytest.approx(10.0, abs=0.2)
    assert recovered.samples == 53


def test_without_the_detector_the_ewma_alone_lags_far_behind(redis_url):
    rng = random.Random(5)
    batches = [_steady(rng, 40, 10.0), [30.0, 30.6, 29.4]]
    _, slowed = asyncio.run(_profile_after(redis_url, batches, ChangeSettings(run=0)))
    assert 14.0 < slowed.mean_ms < 17.0  # 1 - 0.9^3 = 27 % of the way


def test_isolated_spikes_only_pass_through_the_ewma(redis_url):
    rng = random.Random(6)
    batches = [_steady(rng, 40, 10.0), [30.0, 10.0, 31.0, 10.1, 29.0]]  # never 3 in a row
    base, spiked = asyncio.run(_profile_after(redis_url, batches, ChangeSettings()))
    assert spiked.mean_ms < 16.0 and spiked.samples == 45
