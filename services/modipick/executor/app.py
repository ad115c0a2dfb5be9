"""Wiring one Executor: backend, observation reporter, service, gRPC server."""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc
import structlog

from modipick.executor.backends import make_backend
from modipick.executor.backends.base import Backend
from modipick.executor.reporter import NullSink, ObservationSink, ProfilerReporter
from modipick.executor.service import ExecutorService
from modipick.runtime.channels import DEFAULT_MAX_MESSAGE_BYTES, aio_channel
from modipick.runtime.identity_interceptors import token_interceptors
from modipick.executor.metrics import ExecutorMetrics
from modipick.runtime.server import RunningServer, ServerOptions, service_name, start_server
from modipick.runtime.tls import TlsConfig
from modipick.runtime.rpc_interceptor import RpcInterceptor, RpcMetrics
from modipick.runtime.tracing import client_interceptors, server_interceptors
from modipick.v1 import executor_pb2, executor_pb2_grpc

log = structlog.get_logger("modipick.executor")
SERVICE_NAME = service_name(executor_pb2, "ExecutorService")


@dataclass(frozen=True)
class ExecutorSettings:
    address: str = "127.0.0.1:0"
    backend: str = "embedded"
    model_base: str | None = None
    tfserving_target: str = "127.0.0.1:8500"
    oip_target: str = "127.0.0.1:8001"  # an Open Inference Protocol server (Triton, KServe, MLServer)
    oip_models: tuple[str, ...] = ()    # its models; (): those of --model-base
    profiler_target: str = ""          # empty: observations are not reported
    max_concurrency: int = 2
    tf_intra_op_threads: int = 0       # embedded backend; 0: TensorFlow picks (one per core)
    tf_inter_op_threads: int = 0
    max_queue: int = 32
    default_timeout_s: float = 30.0    # for calls that carry no deadline
    report_batch_size: int = 256
    report_buffer: int = 10_000
    server_tls: TlsConfig | None = None
    downstream_tls: TlsConfig | None = None  # to the Profiler
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    grace_s: float = 5.0
    max_connection_age_s: float | None = None  # GOAWAY after this long (new replicas get calls)
    max_connection_age_grace_s: float | None = None
    drain_delay_s: float = 0.0         # NOT_SERVING this long before refusing new calls on shutdown
    unix_socket: str = ""              # also serve gRPC on this Unix socket path (a co-located Selector's unix:PATH)
    service_token: str | None = field(default=None, repr=False)  # shown to the Profiler with observations


class ExecutorApp:
    def __init__(self, settings: ExecutorSettings, server: RunningServer, service: ExecutorService,
                 backend: Backend, sink: ObservationSink, channel: grpc.aio.Channel | None,
                 metrics: ExecutorMetrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics if metrics is not None else ExecutorMetrics()
        self.server = server
        self.service = service
        self.backend = backend
        self.sink = sink
        self._channel = channel

    @property
    def target(self) -> str:
        return self.server.target

    async def stop(self, grace_s: float | None = None) -> None:
        await self.server.stop(grace_s)
        await self.sink.close()
        await self.backend.close()
        if self._channel is not None:
            await self._channel.close()


def build_backend(settings: ExecutorSettings) -> Backend:
    if settings.backend == "embedded":
        if not settings.model_base:
            raise ValueError("the embedded backend needs --model-base (a TF Serving base path)")
        return make_backend("embedded", model_base=settings.model_base, threads=settings.max_concurrency,
                            intra_op_threads=settings.tf_intra_op_threads,
                            inter_op_threads=settings.tf_inter_op_threads)
    interceptors = client_interceptors()  # TF Serving / OIP calls join the request's trace
    remote = ({"target": settings.oip_target, "models": settings.oip_models} if settings.backend == "oip"
              else {"target": settings.tfserving_target})
    return make_backend(settings.backend, **remote, model_base=settings.model_base,
                        channel_factory=(lambda target: aio_channel(target, interceptors=interceptors))
                        if interceptors else None)


async def start_executor(settings: ExecutorSettings, *, backend: Backend | None = None,
                         sink: ObservationSink | None = None, metrics: ExecutorMetrics | None = None) -> ExecutorApp:
    metrics = metrics if metrics is not None else ExecutorMetrics()
    backend = backend if backend is not None else build_backend(settings)
    await backend.start()
    channel = None
    if sink is None and settings.profiler_target:
        channel = aio_channel(settings.profiler_target, tls=settings.downstream_tls,
                              max_message_bytes=settings.max_message_bytes,
                              interceptors=token_interceptors(settings.service_token))
        reporter = ProfilerReporter(channel, batch_size=settings.report_batch_size,
                                    max_buffer=settings.report_buffer)
        reporter.start()
        sink = reporter
    sink = metrics.metered_sink(sink if sink is not None else NullSink())
    service = ExecutorService(backend, sink=sink, max_concurrency=settings.max_concurrency,
                              max_queue=settings.max_queue, default_timeout_s=settings.default_timeout_s)
    try:
        server = await start_server(
            [(executor_pb2_grpc.add_ExecutorServiceServicer_to_server, service)], [SERVICE_NAME],
            ServerOptions(address=settings.address, tls=settings.server_tls,
                          max_message_bytes=settings.max_message_bytes, grace_s=settings.grace_s,
                          max_connection_age_s=settings.max_connection_age_s,
                          max_connection_age_grace_s=settings.max_connection_age_grace_s,
                          drain_delay_s=settings.drain_delay_s, unix_socket=settings.unix_socket),
            interceptors=[*server_interceptors(root_spans=False), RpcInterceptor(RpcMetrics(metrics.registry))])
    except OSError:  # an address or socket path in use
        await sink.close()
        await backend.close()
        if channel is not None:
            await channel.close()
        raise
    log.info("executor started", target=server.target, backend=backend.name, model_base=settings.model_base,
             profiler=settings.profiler_target or None, max_concurrency=settings.max_concurrency,
             max_queue=settings.max_queue, unix_socket=settings.unix_socket or None)
    return ExecutorApp(settings, server, service, backend, sink, channel, metrics)
