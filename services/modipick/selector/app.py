"""Wiring one Selector: store -> cache, downstream channels, servicer, gRPC server. Used by
`modipick selector`, by `modipick up` (in-process with a shared memory store) and by tests."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import grpc
import structlog

from modipick.runtime.channels import DEFAULT_MAX_MESSAGE_BYTES, aio_channel
from modipick.runtime.metrics import SelectorMetrics
from modipick.runtime.tracing import client_interceptors, server_interceptors
from modipick.runtime.server import RunningServer, ServerOptions, service_name, start_server
from modipick.runtime.tls import TlsConfig
from modipick.selector.budget import BudgetRules, ServingOverhead
from modipick.selector.cache import ProfileCache
from modipick.selector.outcomes import OutcomeForwarder
from modipick.selector.policies import PolicyBook, seeded_rng
from modipick.selector.service import SelectorService
from modipick.stores import ProfileStore, make_store
from modipick.v1 import executor_pb2_grpc, profiler_pb2_grpc, selector_pb2, selector_pb2_grpc

log = structlog.get_logger("modipick.selector")
SERVICE_NAME = service_name(selector_pb2, "SelectorService")


@dataclass(frozen=True)
class SelectorSettings:
    address: str = "127.0.0.1:0"
    store_url: str = "memory"
    executor_target: str = "127.0.0.1:50052"
    profiler_target: str = ""            # "" : outcome reports are counted and dropped
    policy: str = "modipick"
    policy_params: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    refresh_ms: float = 500.0
    rules: BudgetRules = BudgetRules()
    serving_overhead_ms: float | None = 0.0  # None: learned per replica ("auto")
    server_tls: TlsConfig | None = None
    downstream_tls: TlsConfig | None = None
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    grace_s: float = 5.0
    outcome_queue: int = 10_000
    store_options: dict[str, Any] = field(default_factory=dict)


class SelectorApp:
    def __init__(self, settings: SelectorSettings, server: RunningServer, service: SelectorService,
                 cache: ProfileCache, outcomes: OutcomeForwarder, channels: list[grpc.aio.Channel],
                 store: ProfileStore, owns_store: bool) -> None:
        self.settings = settings
        self.server = server
        self.service = service
        self.metrics = service.metrics
        self.cache = cache
        self.outcomes = outcomes
        self._channels = channels
        self._store = store
        self._owns_store = owns_store

    @property
    def target(self) -> str:
        return self.server.target

    async def stop(self, grace_s: float | None = None) -> None:
        await self.server.stop(grace_s)
        await self.outcomes.stop()
        await self.cache.stop()
        for channel in self._channels:
            await channel.close()
        if self._owns_store:
            self._store.close()


async def start_selector(settings: SelectorSettings, *, store: ProfileStore | None = None,
                         wall_ns: Callable[[], int] = time.time_ns,
                         metrics: SelectorMetrics | None = None) -> SelectorApp:
    """Start serving; with `store`, share that store (the caller closes it). `wall_ns` is the clock
    request receive times are read from (injected by tests to give replicas identical budgets)."""
    policies = PolicyBook(settings.policy, **settings.policy_params)
    metrics = metrics if metrics is not None else SelectorMetrics()
    owns_store = store is None
    store = store if store is not None else make_store(settings.store_url, **settings.store_options)
    store = metrics.count_store_errors(store)
    cache = ProfileCache(store, refresh_s=settings.refresh_ms / 1000.0)
    metrics.watch_cache(cache)
    await cache.start()
    channels = [aio_channel(settings.executor_target, tls=settings.downstream_tls,
                            max_message_bytes=settings.max_message_bytes, interceptors=client_interceptors())]
    profiler_stub = None
    if settings.profiler_target:
        channels.append(aio_channel(settings.profiler_target, tls=settings.downstream_tls))
        profiler_stub = profiler_pb2_grpc.ProfilerServiceStub(channels[-1])
    outcomes = OutcomeForwarder(profiler_stub, capacity=settings.outcome_queue)
    outcomes.start()
    service = SelectorService(cache, executor_pb2_grpc.ExecutorServiceStub(channels[0]), policies, outcomes,
                              rng_for=seeded_rng(settings.seed), rules=settings.rules,
                              overhead=ServingOverhead(settings.serving_overhead_ms), wall_ns=wall_ns,
                              metrics=metrics)
    server = await start_server(
        [(selector_pb2_grpc.add_SelectorServiceServicer_to_server, service)], [SERVICE_NAME],
        ServerOptions(address=settings.address, tls=settings.server_tls,
                      max_message_bytes=settings.max_message_bytes, grace_s=settings.grace_s),
        interceptors=server_interceptors())
    log.info("selector started", target=server.target, policy=settings.policy, seed=settings.seed,
             executor=settings.executor_target, profiler=settings.profiler_target or None,
             models=len(cache.snapshot.candidates), refresh_ms=settings.refresh_ms)
    return SelectorApp(settings, server, service, cache, outcomes, channels, store, owns_store)
