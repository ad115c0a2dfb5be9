"""Wiring one Selector: store -> cache, downstream channels, servicer, gRPC server. Used by
`modipick selector`, by `modipick up` (in-process with a shared memory store) and by tests."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import grpc
import structlog

from modipick.runtime.channels import DEFAULT_MAX_MESSAGE_BYTES, aio_channel
from modipick.runtime.identity_interceptors import ClientAuthSettings, ClientIdentityInterceptor, token_interceptors
from modipick.selector.metrics import SelectorMetrics
from modipick.runtime.rpc_interceptor import RpcInterceptor, RpcMetrics
from modipick.runtime.tracing import client_interceptors, server_interceptors
from modipick.runtime.server import RunningServer, ServerOptions, service_name, start_server
from modipick.runtime.tls import TlsConfig
from modipick.selector.budget import Budgeter, BudgetRules, ServingOverhead
from modipick.selector.cache import ProfileCache
from modipick.selector.client_legs import PartitionedLegBook, open_partitioned_book, watch_client_legs
from modipick.selector.clocks import ClockOffsets
from modipick.selector.executors import ExecutorPool, PoolSettings, split_targets
from modipick.selector.health import EmptiedStoreGuard, profiles_health
from modipick.selector.leg_stream import ReturnLegFeed, resolve_sharing
from modipick.selector import oip
from modipick.selector.outcomes import OutcomeForwarder, OutcomeLearner
from modipick.selector.policies import PolicyBook, seeded_rng
from modipick.selector.returnlegs import ReturnLegBook, ReturnLegSettings
from modipick.selector.report_limits import ReportLimits, ReportRateLimiter
from modipick.selector.service import SelectorService
from modipick.selector.tickets import TicketKeys, TicketSigner
from modipick.stores import AsyncProfileLegStore, ProfileLegStore, awaited, make_async_store
from modipick.v1 import profiler_pb2_grpc, selector_pb2, selector_pb2_grpc

log = structlog.get_logger("modipick.selector")
SERVICE_NAME = service_name(selector_pb2, "SelectorService")
CLIENT_METHODS = frozenset(f"/{SERVICE_NAME}/{m}" for m in ("Infer", "Select", "ReportOutcome"))


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
    max_connection_age_s: float | None = None  # GOAWAY after this long (new replicas get calls)
    max_connection_age_grace_s: float | None = None
    outcome_queue: int = 10_000
    return_legs: ReturnLegSettings = ReturnLegSettings()  # learned per client from ReportOutcome
    client_leg_ttl_s: float = 6 * 3600.0  # partitioned return legs: a client's state expires after this
    client_leg_cache_s: float = 2.0       # partitioned: a ready model read this recently is not read again
    clock_offset_alpha: float = 0.1
    outcome_memory: int = 100_000        # served requests remembered for their outcome reports
    store_options: dict[str, Any] = field(default_factory=dict)
    # reliability (docs/reliability.md): executor replicas and retries, store outages, shutdown
    executor_pool: PoolSettings = PoolSettings()  # executor_target may list replicas: "a:50052,b:50052"
    empty_store_grace_s: float = 30.0    # a store that comes back without eligible models: keep last-known
    drain_delay_s: float = 0.0           # NOT_SERVING this long before refusing new calls on shutdown
    max_inflight: int | None = None      # concurrent RPCs; beyond: RESOURCE_EXHAUSTED
    oip_models: tuple[str, ...] = ()     # the Open Inference Protocol front door's model names; (): off
    # security (docs/security.md): who clients are, signed outcome tickets, report rates, and the
    # token this Selector shows the Profiler when it forwards outcomes
    client_auth: ClientAuthSettings = ClientAuthSettings()
    ticket_keys: TicketKeys = TicketKeys()
    report_limits: ReportLimits = ReportLimits()
    service_token: str | None = field(default=None, repr=False)


class SelectorApp:
    def __init__(self, settings: SelectorSettings, server: RunningServer, service: SelectorService,
                 cache: ProfileCache, outcomes: OutcomeForwarder, channels: list[grpc.aio.Channel],
                 store: AsyncProfileLegStore, owns_store: bool) -> None:
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
        self.client_legs: PartitionedLegBook | None = None  # return legs partitioned by client in Redis
        self.profiles_health = None

    @property
    def target(self) -> str:
        return self.server.target

    async def stop(self, grace_s: float | None = None) -> None:
        await self.server.stop(grace_s)
        await self.outcomes.stop()
        if self.client_legs is not None:
            await self.client_legs.stop()
        await self.cache.stop()
        if self.profiles_health is not None:
            await self.profiles_health.stop()
        if self.pool is not None:
            await self.pool.close()
        for channel in self._channels:
            await channel.close()
        if self._owns_store:
            await self._store.close()


async def start_selector(settings: SelectorSettings, *, store: ProfileLegStore | AsyncProfileLegStore | None = None,
                         wall_ns: Callable[[], int] = time.time_ns,
                         metrics: SelectorMetrics | None = None) -> SelectorApp:
    """Start serving; with `store` (blocking or awaited), share its profiles (the caller closes it). `wall_ns` is the clock
    request receive times are read from (injected by tests to give replicas identical budgets)."""
    policies = PolicyBook(settings.policy, **{"min_probability": settings.min_meet_probability,
                                              **settings.policy_params})
    metrics = metrics if metrics is not None else SelectorMetrics()
    if store is None:  # awaited on this loop: Redis through redis.asyncio, no thread per refresh
        own, owns_store = make_async_store(settings.store_url, **settings.store_options), True
    else:
        own, owns_store = awaited(store)
    legs = settings.return_legs
    sharing = resolve_sharing(legs.sharing, learned=legs.mode == "learned", store_url=settings.store_url,
                              store=own)
    guarded = EmptiedStoreGuard(metrics.count_store_errors(own), grace_s=settings.empty_store_grace_s)
    cache = ProfileCache(guarded, refresh_s=settings.refresh_ms / 1000.0)
    metrics.watch_cache(cache)
    book = ReturnLegBook(legs, shared=sharing == "store") if legs.mode == "learned" else None
    if sharing == "partitioned":  # each client's model in Redis, read with its decisions
        book = open_partitioned_book(settings.store_url, settings.store_options, legs,
                                     ttl_s=settings.client_leg_ttl_s, cache_ttl_s=settings.client_leg_cache_s)
    legs_feed = None
    if sharing == "store":  # learned from the Profiler's stream, read after every profile refresh
        legs_feed = ReturnLegFeed(guarded, book)
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
                                    max_message_bytes=settings.max_message_bytes,
                                    interceptors=token_interceptors(settings.service_token)))
        profiler_stub = profiler_pb2_grpc.ProfilerServiceStub(channels[-1])
    outcomes = OutcomeForwarder(profiler_stub, capacity=settings.outcome_queue)
    outcomes.start()
    budgeter = Budgeter(settings.rules, ServingOverhead(settings.serving_overhead_ms), returns=book,
                        clocks=ClockOffsets(alpha=settings.clock_offset_alpha),
                        fixed_leg_ms=legs.fixed_ms if legs.mode == "fixed" else None)
    learner = OutcomeLearner(budgeter.returns, budgeter.clocks, capacity=settings.outcome_memory,
                             max_leg_slas=legs.max_leg_slas)
    metrics.watch_return_legs(learner, legs_feed)
    service = SelectorService(cache, pool, policies, outcomes,
                              rng_for=seeded_rng(settings.seed), wall_ns=wall_ns, metrics=metrics,
                              budgeter=budgeter, learner=learner,
                              signer=TicketSigner(settings.ticket_keys) if settings.ticket_keys.enabled else None,
                              report_limiter=ReportRateLimiter(settings.report_limits))
    registrations = [(selector_pb2_grpc.add_SelectorServiceServicer_to_server, service)]
    if settings.oip_models:
        registrations.append(oip.registration(service, settings.oip_models, cache, wall_ns))
    interceptors = [*server_interceptors(), RpcInterceptor(RpcMetrics(metrics.registry))]
    identities = None
    if settings.client_auth.enabled:
        identities = ClientIdentityInterceptor(settings.client_auth, CLIENT_METHODS)
        interceptors.append(identities)
    metrics.watch_security(lambda: _refusals(service, identities))
    server = await start_server(
        registrations, [SERVICE_NAME],
        ServerOptions(address=settings.address, tls=settings.server_tls,
                      max_message_bytes=settings.max_message_bytes, grace_s=settings.grace_s,
                      max_connection_age_s=settings.max_connection_age_s,
                      max_connection_age_grace_s=settings.max_connection_age_grace_s,
                      drain_delay_s=settings.drain_delay_s, max_concurrent_rpcs=settings.max_inflight),
        interceptors=interceptors)
    health = profiles_health(server, SERVICE_NAME, cache)
    await health.start()
    log.info("selector started", target=server.target, policy=settings.policy, seed=settings.seed,
             executor=settings.executor_target, profiler=settings.profiler_target or None,
             models=len(cache.snapshot.candidates), refresh_ms=settings.refresh_ms, return_leg=legs.mode,
             return_leg_sharing=sharing, oip_models=",".join(settings.oip_models) or None,
             client_auth=settings.client_auth.mode, signed_tickets=settings.ticket_keys.enabled,
             report_rate_per_s=settings.report_limits.rate_per_s)
    app = SelectorApp(settings, server, service, cache, outcomes, channels, guarded, owns_store)
    app.pool, app.profiles_health, app.legs_feed = pool, health, legs_feed
    app.client_legs = book if isinstance(book, PartitionedLegBook) else None
    if app.client_legs is not None:
        watch_client_legs(metrics.registry, app.client_legs)
    return app


def _refusals(service: SelectorService, identities: ClientIdentityInterceptor | None) -> dict[str, float]:
    refused = identities.refused if identities is not None else {}
    counts: dict[str, float] = {f"client_{code.lower()}": n for code, n in refused.items()}
    if service.signer is not None:
        counts.update({f"ticket_{reason}": n for reason, n in service.signer.refused.items()})
    counts["report_rate_limited"] = service.report_limiter.limited
    return counts
