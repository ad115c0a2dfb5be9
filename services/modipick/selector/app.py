"""Wiring one Selector: store -> cache, downstream channels, servicer, gRPC server. Used by
`modipick selector`, by `modipick up` (in-process with a shared memory store) and by tests."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import grpc
import structlog

from modipick.runtime.channels import DEFAULT_MAX_MESSAGE_BYTES, aio_channel
from modipick.selector.metrics import SelectorMetrics
from modipick.runtime.tracing import client_interceptors, server_interceptors
from modipick.runtime.server import RunningServer, ServerOptions, service_name, start_server
from modipick.runtime.tls import TlsConfig
from modipick.selector.budget import Budgeter, BudgetRules, ServingOverhead
from modipick.selector.cache import ProfileCache
from modipick.selector.clocks import ClockOffsets
from modipick.selector.executors import ExecutorPool, PoolSettings, split_targets
from modipick.selector.health import EmptiedStoreGuard, profiles_health
from modipick.selector.leg_stream import ReturnLegFeed, resolve_sharing
from modipick.selector.outcomes import OutcomeForwarder, OutcomeLearner
from modipick.selector.policies import PolicyBook, seeded_rng
from modipick.selector.returnlegs import ReturnLegBook, ReturnLegSettings
from modipick.selector.service import SelectorService
from modipick.stores import ProfileStore, make_store
from modipick.v1 import profiler_pb2_grpc, selector_pb2, selector_pb2_grpc

log = structlog.get_logger("modipick.selector")
SERVICE_NAME = service_name(selector_pb2, "SelectorService")


@dataclass(frozen=True)
class SelectorSettings:
    address: str = "127.0.0.1:0"
    store_url: str = "memory"
    executor_target: str = "127.0.0.1:50052"
    profiler_target: str = ""            # "" : outcome reports are counted and dropped
    policy: str = "risk_aware"
    policy_params: dict[str, Any] = field(default_factory=dict)
    # risk_aware: a request whose best model has a lower chance of meeting its SLA is answered
    # RUN_ON_DEVICE at once (the policy's own default, 0, is the simulator's: every chance counts)
    min_meet_probability: float = 0.5
    seed: int = 0
    refresh_ms: float = 500.0
    rules: BudgetRules = BudgetRules()
    serving_overhead_ms: float | None = 0.0  # None: learned per replica ("auto")
    server_tls: TlsConfig | None = None
    downstream_tls: TlsConfig | None = None
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    grace_s: float = 5.0
    outcome_queue: int = 10_000
    return_legs: ReturnLegSettings = ReturnLegSettings()  # learned per client from ReportOutcome
    clock_offset_alpha: float = 0.1
    outcome_memory: int = 100_000        # served requests remembered for their outcome reports
    store_options: dict[str, Any] = field(default_factory=dict)
    # reliability (docs/reliability.md): executor replicas and retries, store outages, shutdown
    executor_pool: PoolSettings = PoolSettings()  # executor_target may list replicas: "a:50052,b:50052"
    empty_store_grace_s: float = 30.0    # a store that comes back without eligible models: keep last-known
    drain_delay_s: float = 0.0           # NOT_SERVING this long before refusing new calls on shutdown
    max_inflight: int | None = None      # concurrent RPCs; beyond: RESOURCE_EXHAUSTED


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
        self.pool: ExecutorPool | None = None
        self.legs_feed: ReturnLegFeed | None = None  # shared return legs (None: learned locally)
        self.profiles_health = None

    @property
    def target(self) -> str:
        return self.server.target

    async def stop(self, grace_s: float | None = None) -> None:
        await self.server.stop(grace_s)
        await self.outcomes.stop()
        await self.cache.stop()
        if self.profiles_health is not None:
            await self.profiles_health.stop()
        if self.pool is not None:
            await self.pool.close()
        for channel in self._channels:
            await channel.close()
        if self._owns_store:
            self._store.close()


async def start_selector(settings: SelectorSettings, *, store: ProfileStore | None = None,
                         wall_ns: Callable[[], int] = time.time_ns,
                         metrics: SelectorMetrics | None = None) -> SelectorApp:
    """Start serving; with `store`, share that store (the caller closes it). `wall_ns` is the clock
    request receive times are read from (injected by tests to give replicas identical budgets)."""
    policies = PolicyBook(settings.policy, **{"min_probability": settings.min_meet_probability,
                                              **settings.policy_params})
    metrics = metrics if metrics is not None else SelectorMetrics()
    owns_store = store is None
    store = store if store is not None else make_store(settings.store_url, **settings.store_options)
    legs = settings.return_legs
    sharing = resolve_sharing(legs.sharing, learned=legs.mode == "learned", profiler_target=settings.profiler_target,
                              store=store)
    store = EmptiedStoreGuard(metrics.count_store_errors(store), grace_s=settings.empty_store_grace_s)
    cache = ProfileCache(store, refresh_s=settings.refresh_ms / 1000.0)
    metrics.watch_cache(cache)
    book = ReturnLegBook(legs, shared=sharing == "store") if legs.mode == "learned" else None
    legs_feed = None
    if sharing == "store":  # learned from the Profiler's stream, read after every profile refresh
        legs_feed = ReturnLegFeed(store, book)
        cache.follow(legs_feed.pull)
    await cache.start()
    pool = ExecutorPool(split_targets(settings.executor_target), lambda: cache.snapshot.candidates,
                        tls=settings.downstream_tls, max_message_bytes=settings.max_message_bytes,
                        interceptors=client_interceptors(), settings=settings.executor_pool)
    pool.start()
    channels: list[grpc.aio.Channel] = []
    profiler_stub = None
    if settings.profiler_target:
        channels.append(aio_channel(settings.profiler_target, tls=settings.downstream_tls,
                                    max_message_bytes=settings.max_message_bytes))
        profiler_stub = profiler_pb2_grpc.ProfilerServiceStub(channels[-1])
    outcomes = OutcomeForwarder(profiler_stub, capacity=settings.outcome_queue)
    outcomes.start()
    budgeter = Budgeter(settings.rules, ServingOverhead(settings.serving_overhead_ms), returns=book,
                        clocks=ClockOffsets(alpha=settings.clock_offset_alpha),
                        fixed_leg_ms=legs.fixed_ms if legs.mode == "fixed" else None)
    learner = OutcomeLearner(budgeter.returns, budgeter.clocks, capacity=settings.outcome_memory)
    metrics.watch_return_legs(learner, legs_feed)
    service = SelectorService(cache, pool, policies, outcomes,
                              rng_for=seeded_rng(settings.seed), wall_ns=wall_ns, metrics=metrics,
                              budgeter=budgeter, learner=learner)
    server = await start_server(
        [(selector_pb2_grpc.add_SelectorServiceServicer_to_server, service)], [SERVICE_NAME],
        ServerOptions(address=settings.address, tls=settings.server_tls,
                      max_message_bytes=settings.max_message_bytes, grace_s=settings.grace_s,
                      drain_delay_s=settings.drain_delay_s, max_concurrent_rpcs=settings.max_inflight),
        interceptors=server_interceptors())
    health = profiles_health(server, SERVICE_NAME, cache)
    await health.start()
    log.info("selector started", target=server.target, policy=settings.policy, seed=settings.seed,
             executor=settings.executor_target, profiler=settings.profiler_target or None,
             models=len(cache.snapshot.candidates), refresh_ms=settings.refresh_ms, return_leg=legs.mode,
             return_leg_sharing=sharing)
    app = SelectorApp(settings, server, service, cache, outcomes, channels, store, owns_store)
    app.pool, app.profiles_health, app.legs_feed = pool, health, legs_feed
    return app
