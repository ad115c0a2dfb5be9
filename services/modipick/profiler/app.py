"""Wiring one Profiler: store, observation sink, Executor channel, life cycle, gRPC server."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import grpc
import structlog

from modipick.profiler.accuracy import AccuracyBounds, LabelGate
from modipick.profiler.drift import ChangeSettings, DriftFollower
from modipick.profiler.failures import FailureTracker
from modipick.profiler.ingest import ObservationSink
from modipick.profiler.lifecycle import LifecycleSettings, ModelLifecycle
from modipick.profiler.probe import Prober
from modipick.profiler.recovery import RecoveringStore
from modipick.profiler.return_legs import DEFAULT_KEEP, ReturnLegSink
from modipick.profiler.service import ProfilerService
from modipick.runtime.identity import ServiceCredentials
from modipick.runtime.identity_interceptors import ServiceIdentityInterceptor
from modipick.runtime.rpc_interceptor import RpcInterceptor, RpcMetrics
from modipick.runtime.channels import DEFAULT_MAX_MESSAGE_BYTES, aio_channel
from modipick.runtime.health_watch import DegradationHealth
from modipick.profiler.metrics import ProfilerMetrics
from modipick.runtime.server import RunningServer, ServerOptions, service_name, start_server
from modipick.runtime.tls import TlsConfig
from modipick.stores import AsyncProfileLegStore, ProfileLegStore, awaited, make_async_store
from modipick.v1 import executor_pb2_grpc, profiler_pb2, profiler_pb2_grpc

log = structlog.get_logger("modipick.profiler")
SERVICE_NAME = service_name(profiler_pb2, "ProfilerService")
ADMIN_METHODS = frozenset(f"/{SERVICE_NAME}/{m}" for m in ("RegisterModel", "DeregisterModel", "ProbeModel"))
# who may call what (docs/security.md); methods not listed are open (profile reads)
METHOD_ROLES = {**{m: "admin" for m in ADMIN_METHODS}, f"/{SERVICE_NAME}/RecordObservations": "executor",
                f"/{SERVICE_NAME}/RecordOutcome": "selector"}
STORE_HEALTH = SERVICE_NAME + "/store"  # NOT_SERVING while observations wait for the store


@dataclass(frozen=True)
class ProfilerSettings:
    address: str = "127.0.0.1:0"
    store_url: str = "memory"
    executor_target: str = "127.0.0.1:50052"
    alpha: float = 0.1
    changes: ChangeSettings = ChangeSettings()  # latency change detector (run=0: off)
    lifecycle: LifecycleSettings = LifecycleSettings()
    discover: bool = True              # follow the Executor's model list
    probe_timeout_s: float = 30.0
    buffer_capacity: int = 100_000
    batch_size: int = 2_000
    server_tls: TlsConfig | None = None
    downstream_tls: TlsConfig | None = None
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    grace_s: float = 5.0
    max_connection_age_s: float | None = None  # GOAWAY after this long (new replicas get calls)
    max_connection_age_grace_s: float | None = None
    seed: int = 0
    store_options: dict[str, Any] = field(default_factory=dict, repr=False)
    # reliability (docs/reliability.md)
    admin_token: str | None = field(default=None, repr=False)  # None: admin RPCs are refused
    failure_threshold: int = 3           # failed executions in a row that make a model "failing"
    registry_refresh_s: float = 1.0      # how fresh the registry copy restored after a store loss is
    drain_delay_s: float = 0.0
    return_leg_keep: int = DEFAULT_KEEP  # return-leg stream entries kept for the Selectors (approximate)
    # security (docs/security.md): Executor/Selector credentials (none: internal writes are open;
    # the admin token above joins them) and the bounds on what outcome labels may do
    service_credentials: ServiceCredentials = field(default_factory=ServiceCredentials, repr=False)
    accuracy: AccuracyBounds = AccuracyBounds()


class ProfilerApp:
    def __init__(self, settings: ProfilerSettings, server: RunningServer, service: ProfilerService,
                 sink: ObservationSink, lifecycle: ModelLifecycle, channel: grpc.aio.Channel,
                 store: AsyncProfileLegStore, owns_store: bool, metrics: ProfilerMetrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics if metrics is not None else ProfilerMetrics()
        self.server = server
        self.service = service
        self.sink = sink
        self.lifecycle = lifecycle
        self._channel = channel
        self.store = store
        self._owns_store = owns_store
        self.store_health: DegradationHealth | None = None
        self.legs: ReturnLegSink | None = None
        self._background: list[asyncio.Task] = []

    @property
    def target(self) -> str:
        return self.server.target

    async def stop(self, grace_s: float | None = None) -> None:
        await self.server.stop(grace_s)
        if self.store_health is not None:
            await self.store_health.stop()
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.lifecycle.stop()
        await self.sink.stop()
        if self.legs is not None:
            await self.legs.stop()
        await self._channel.close()
        if self._owns_store:
            await self.store.close()


async def start_profiler(settings: ProfilerSettings, *, store: ProfileLegStore | AsyncProfileLegStore | None = None,
                         clock: Callable[[], float] = time.time,
                         rng: random.Random | None = None, metrics: ProfilerMetrics | None = None) -> ProfilerApp:
    metrics = metrics if metrics is not None else ProfilerMetrics()
    if store is None:  # awaited on this loop: Redis through redis.asyncio, no thread per call
        own, owns_store = make_async_store(settings.store_url, **settings.store_options), True
    else:
        own, owns_store = awaited(store)
    recovering = RecoveringStore(metrics.count_store_errors(own))
    follower = DriftFollower(settings.changes, alpha=settings.alpha) if settings.changes.enabled else None
    sink = ObservationSink(recovering, alpha=settings.alpha, capacity=settings.buffer_capacity,
                           batch_size=settings.batch_size, clock=clock, follower=follower)
    sink.start()
    channel = aio_channel(settings.executor_target, tls=settings.downstream_tls,
                          max_message_bytes=settings.max_message_bytes)
    executor = executor_pb2_grpc.ExecutorServiceStub(channel)
    prober = Prober(executor, sink, timeout_s=settings.probe_timeout_s, clock=clock)
    lifecycle = ModelLifecycle(recovering, prober, executor, settings.lifecycle, clock=clock,
                               rng=rng or random.Random(settings.seed))
    legs = ReturnLegSink(recovering, keep=settings.return_leg_keep)
    legs.start()
    labels = LabelGate(settings.accuracy) if settings.accuracy.enabled else None
    service = ProfilerService(recovering, sink, lifecycle, prober,
                              FailureTracker(recovering, threshold=settings.failure_threshold), legs=legs, labels=labels)
    credentials = settings.service_credentials
    if settings.admin_token and not credentials.tokens.get("admin"):
        credentials = ServiceCredentials(tokens={**credentials.tokens, "admin": settings.admin_token},
                                         names=credentials.names)
    identities = ServiceIdentityInterceptor(credentials, METHOD_ROLES,
                                            mtls=bool(settings.server_tls and settings.server_tls.ca_file))
    metrics.watch_security(lambda: {**{k.lower().replace(" ", "_"): v for k, v in identities.refused.items()},
                                    **({f"label_{k}": v for k, v in labels.counts.items() if k != "counted"}
                                       if labels is not None else {})})
    metrics.watch(sink, service)
    metrics.watch_return_legs(legs, service)
    server = await start_server(
        [(profiler_pb2_grpc.add_ProfilerServiceServicer_to_server, service)], [SERVICE_NAME],
        ServerOptions(address=settings.address, tls=settings.server_tls,
                      max_message_bytes=settings.max_message_bytes, grace_s=settings.grace_s,
                      max_connection_age_s=settings.max_connection_age_s,
                      max_connection_age_grace_s=settings.max_connection_age_grace_s,
                      drain_delay_s=settings.drain_delay_s),
        interceptors=[RpcInterceptor(RpcMetrics(metrics.registry)), identities])
    store_health = DegradationHealth(server, STORE_HEALTH, lambda: sink.degraded)
    await store_health.start()
    if settings.discover:
        lifecycle.start()
    log.info("profiler started", target=server.target, executor=settings.executor_target, alpha=settings.alpha,
             store=repr(recovering), change_run=settings.changes.run,
             internal_writes_guarded=identities.internal_enforced,
             accuracy_max_shift_pct=settings.accuracy.max_shift_pct)
    app = ProfilerApp(settings, server, service, sink, lifecycle, channel, recovering, owns_store, metrics)
    app.store_health, app.legs = store_health, legs
    app._background.append(asyncio.create_task(recovering.keep_fresh(settings.registry_refresh_s),
                                                name="registry-copy"))
    return app
