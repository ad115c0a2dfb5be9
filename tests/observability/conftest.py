"""An observed suite for the metrics and tracing tests: the TF Serving double on the digits pool,
an Executor (tfserving backend), a Profiler and a Selector, all in this process on one background
event loop, on the session's redis-server (its own logical database). Each service has its own
Prometheus registry served over HTTP on loopback, and tracing is on with an in-memory exporter.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pytest
from fixtures_suite import LoopThread, free_port, wait_until, with_db
from observability_support import Scrape, scrape

OBSERVED_DB = 5
SELECTOR_REFRESH_MS = 100.0


@dataclass
class ObservedSuite:
    loop: LoopThread
    store: object
    tfserving: object
    executor: object
    profiler: object
    selector: object
    metrics_urls: dict[str, str]
    spans: object  # InMemorySpanExporter
    models: list[str] = field(default_factory=list)

    def scrape(self, role: str) -> Scrape:
        return scrape(self.metrics_urls[role])

    def scrape_all(self) -> dict[str, Scrape]:
        return {role: self.scrape(role) for role in self.metrics_urls}


def _wait_eligible(store, names: list[str], timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        profiles = {p.name: p for p in store.load_all()}
        if all(n in profiles and profiles[n].state == "eligible" for n in names):
            return
        time.sleep(0.1)
    raise AssertionError(f"models not eligible after {timeout_s:g} s: {store.load_all()}")


def _test_tracer_provider(exporter):
    """The process's SDK TracerProvider with `exporter` attached (OpenTelemetry allows one global)."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def _forget_global_tracer_provider() -> None:
    """Later tests' clients must not trace into this exporter: undo the global provider (what
    OpenTelemetry's own test utilities do; there is no public API to unset it)."""
    from opentelemetry import trace
    from opentelemetry.util._once import Once

    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None


@pytest.fixture(scope="package")
def observed_suite(redis_server, digits_pool, request):
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from tfserving_double.server import TFServingDouble

    from modipick.executor.app import ExecutorSettings, start_executor
    from modipick.profiler.app import ProfilerSettings, start_profiler
    from modipick.profiler.lifecycle import LifecycleSettings
    from modipick.runtime.metrics import start_metrics_server
    from modipick.runtime.tracing import configure_tracing, shutdown_tracing
    from modipick.selector.app import SelectorSettings, start_selector
    from modipick.stores import make_store
    from modipick.zoo.manifest import read_manifest

    import redis

    url = with_db(request.config.getoption("--redis-url") or redis_server.url, OBSERVED_DB)
    redis.Redis.from_url(url).flushdb()
    store = make_store(url)
    spans = InMemorySpanExporter()
    configure_tracing(provider=_test_tracer_provider(spans))
    double = TFServingDouble(digits_pool).start()
    loop = LoopThread()
    apps: list = []
    servers: list = []
    try:
        profiler_address = f"127.0.0.1:{free_port()}"
        executor = loop.run(start_executor(ExecutorSettings(
            backend="tfserving", tfserving_target=double.target, model_base=str(digits_pool),
            profiler_target=profiler_address, max_concurrency=2, max_queue=32, grace_s=0.5)))
        apps.append(executor)
        profiler = loop.run(start_profiler(ProfilerSettings(
            address=profiler_address, store_url=url, executor_target=executor.target,
            lifecycle=LifecycleSettings(warmup_runs=1, probe_runs=3, reprobe_after_s=3600,
                                        discovery_interval_s=0.3))))
        apps.append(profiler)
        selector = loop.run(start_selector(SelectorSettings(
            store_url=url, executor_target=executor.target, profiler_target=profiler.target,
            refresh_ms=SELECTOR_REFRESH_MS, seed=0, policy_params={"threshold_ms": 1.0})))
        apps.append(selector)
        shutdown_tracing()  # the servers keep their interceptors; nothing started later traces
        urls = {}
        for role, app in (("selector", selector), ("executor", executor), ("profiler", profiler)):
            server = start_metrics_server(0, app.metrics.registry, addr="127.0.0.1")
            servers.append(server)
            urls[role] = server.url
        models = [m.name for m in read_manifest(digits_pool).models]
        suite = ObservedSuite(loop, store, double, executor, profiler, selector, urls, spans, models)
        _wait_eligible(store, models)
        wait_until(lambda: set(models) <= {c.name for c in selector.cache.snapshot.candidates}, timeout_s=30,
                   what="the Selector's copy shows them eligible too")
        yield suite
    finally:
        shutdown_tracing()
        for server in servers:
            server.stop()
        for app in reversed(apps):
            loop.run(app.stop(0.5))
        loop.close()
        double.stop()
        store.close()
        spans.shutdown()
        _forget_global_tracer_provider()
