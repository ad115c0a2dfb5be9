"""Profiler internals against real parts: re-probing stale models on the live Executor, and
observations surviving a real redis-server outage."""

from __future__ import annotations

import asyncio

from modipick.core import ModelProfile
from modipick.profiler.app import ProfilerSettings, start_profiler
from modipick.profiler.ingest import ObservationSink
from modipick.profiler.lifecycle import LifecycleSettings
from modipick.stores import make_store


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_models_not_observed_lately_are_reprobed_and_missing_ones_fail(live_suite):
    clock = FakeClock(1_000_000.0)
    store = make_store("memory")
    for name in live_suite.pool_models():
        stale = name == "cnn-small"
        store.register(ModelProfile(name=name, version=1, declared_accuracy=90.0, mean_ms=1.0, samples=5,
                                    updated_at=clock.now - (7200 if stale else 10), state="eligible"))
    store.register(ModelProfile(name="ghost", version=1, declared_accuracy=99.0, mean_ms=1.0, samples=5,
                                updated_at=clock.now - 7200, state="eligible"))
    settings = ProfilerSettings(executor_target=live_suite.executor_target, discover=False,
                                lifecycle=LifecycleSettings(reprobe_after_s=600, reprobe_runs=3))
    app = live_suite.loop.run(start_profiler(settings, store=store, clock=clock))
    try:
        live_suite.loop.run(app.lifecycle.sync_once())
        live_suite.loop.run(app.lifecycle.wait_idle(60))
    finally:
        live_suite.loop.run(app.stop(0.5))
    profiles = {p.name: p for p in store.load_all()}
    assert profiles["cnn-small"].samples == 8 and profiles["cnn-small"].updated_at == clock.now
    assert all(p.samples == 5 for n, p in profiles.items() if n not in ("cnn-small", "ghost"))
    # not served by the Executor: the probe fails and the model leaves the eligible set
    assert profiles["ghost"].state == "failing" and profiles["ghost"].samples == 5


def test_observations_wait_out_a_redis_outage(own_redis):
    store = make_store(own_redis.url, timeouts=0.5, retries=0)
    model = ModelProfile(name="m", version=1, declared_accuracy=50.0, state="eligible")
    store.register(model)

    async def scenario() -> ObservationSink:
        # the background replay retries every 3 s: long enough to restart Redis and re-register the
        # model (the registry went with the old server) before it tries again; flush() replays now
        writer = store.asyncio_twin()  # the Profiler's sink writes on redis.asyncio
        sink = ObservationSink(writer, alpha=0.5, capacity=50, batch_size=7, retry_s=3.0)
        sink.start()
        assert await sink.submit([("m", 1, 1.0)] * 10) == 10
        assert (sink.stats.stored, sink.stats.buffered) == (10, 0)
        own_redis.stop()
        await sink.submit([("m", 1, 2.0)] * 30)
        await sink.submit([("m", 1, 3.0)] * 30)
        assert sink.degraded and sink.stats.buffered == 50 and sink.stats.dropped == 10
        await asyncio.sleep(0.3)  # the background replay failed meanwhile; nothing lost beyond the bound
        assert sink.stats.buffered == 50 and sink.last_error
        own_redis.start()
        await asyncio.to_thread(store.register, model)
        assert await sink.flush(timeout_s=10)
        await sink.stop()
        await writer.close()
        return sink

    sink = asyncio.run(scenario())
    assert sink.stats.stored == 60 and sink.stats.dropped == 10 and not sink.degraded
    profile = store.load_all()[0]
    assert profile.samples == 50
    # the oldest were dropped: 20 x 2 ms then 30 x 3 ms were replayed in order (EWMA, alpha 0.5)
    assert 2.99 < profile.mean_ms <= 3.0
    store.close()
