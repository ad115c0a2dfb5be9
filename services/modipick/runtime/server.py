"""grpc.aio server lifecycle shared by the Selector, Profiler and Executor.

Every server carries grpc.health.v1 health and reflection. Shutdown is graceful: health turns
NOT_SERVING first (load balancers stop sending), then the server stops accepting RPCs and lets
in-flight ones finish within the grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import stat
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Sequence

import grpc
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from modipick.runtime.channels import DEFAULT_MAX_MESSAGE_BYTES
from modipick.runtime.decoding import DecodeGuardRegistrar
from modipick.runtime.event_loop import loop_name
from modipick.runtime.rpc_interceptor import RpcInterceptor
from modipick.runtime.tls import TlsConfig

log = structlog.get_logger("modipick.server")

Registration = tuple[Callable[[Any, grpc.aio.Server], None], Any]


@dataclass(frozen=True, slots=True)
class ServerOptions:
    address: str = "127.0.0.1:0"
    tls: TlsConfig | None = None
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    grace_s: float = 5.0
    drain_delay_s: float = 0.0  # time between NOT_SERVING and stop, for load balancers to notice
    max_concurrent_rpcs: int | None = None
    # After this long a connection gets GOAWAY: clients reconnect and re-resolve their target, so
    # replicas started since (a scale-out, a rollout) get calls. None: connections live forever.
    max_connection_age_s: float | None = None
    max_connection_age_grace_s: float | None = None  # in-flight calls' time to finish after GOAWAY
    unix_socket: str = ""       # also serve on this Unix socket path (unix:PATH) for a co-located caller


@dataclass
class RunningServer:
    server: grpc.aio.Server
    port: int
    health: HealthServicer
    service_names: tuple[str, ...]
    options: ServerOptions
    # told when stopping, after drain_delay_s and before calls are refused: long streams end here
    on_drain: list[Callable[[], None]] = field(default_factory=list)
    _stopped: bool = field(default=False, repr=False)

    @property
    def target(self) -> str:
        host = self.options.address.rsplit(":", 1)[0] or "127.0.0.1"
        host = "127.0.0.1" if host in ("0.0.0.0", "[::]", "") else host
        return f"{host}:{self.port}"

    async def set_serving(self, serving: bool, service: str | None = None) -> None:
        status = (health_pb2.HealthCheckResponse.SERVING if serving
                  else health_pb2.HealthCheckResponse.NOT_SERVING)
        for name in ((service,) if service is not None else ("", *self.service_names)):
            await self.health.set(name, status)

    async def stop(self, grace_s: float | None = None) -> None:
        if self._stopped:
            return
        self._stopped = True
        await self.health.enter_graceful_shutdown()
        if self.options.drain_delay_s:
            await asyncio.sleep(self.options.drain_delay_s)
        for drain in self.on_drain:
            drain()
        await self.server.stop(self.options.grace_s if grace_s is None else grace_s)
        if self.options.unix_socket:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.options.unix_socket)


def connection_age_arguments(options: ServerOptions) -> list[tuple[str, int]]:
    if not options.max_connection_age_s:
        return []
    arguments = [("grpc.max_connection_age_ms", round(options.max_connection_age_s * 1000))]
    if options.max_connection_age_grace_s is not None:
        arguments.append(("grpc.max_connection_age_grace_ms", round(options.max_connection_age_grace_s * 1000)))
    return arguments


async def start_server(registrations: Sequence[Registration], service_names: Sequence[str],
                       options: ServerOptions = ServerOptions(), *,
                       interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
                       serving: bool = True) -> RunningServer:
    if options.unix_socket:
        refuse_socket_in_use(options.unix_socket)
    interceptors = list(interceptors)
    wrap = None
    if interceptors and isinstance(interceptors[-1], RpcInterceptor):  # built into the handlers instead
        wrap = interceptors.pop().wrap_handler
    server = grpc.aio.server(
        interceptors=interceptors or None,
        options=[("grpc.max_send_message_length", options.max_message_bytes),
                 ("grpc.max_receive_message_length", options.max_message_bytes),
                 ("grpc.so_reuseport", 0), *connection_age_arguments(options)],
        maximum_concurrent_rpcs=options.max_concurrent_rpcs)
    for add, servicer in registrations:
        add(servicer, DecodeGuardRegistrar(server, wrap))  # undecodable -> INVALID_ARGUMENT
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    names = tuple(service_names)
    reflection.enable_server_reflection(
        (*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), server)
    if options.tls is not None and options.tls.enabled:
        port = server.add_secure_port(options.address, options.tls.server_credentials())
    else:
        port = server.add_insecure_port(options.address)
    if port == 0:
        raise OSError(f"cannot listen on {options.address}")
    if options.unix_socket:
        unix = f"unix:{options.unix_socket}"
        added = (server.add_secure_port(unix, options.tls.server_credentials())
                 if options.tls is not None and options.tls.enabled else server.add_insecure_port(unix))
        if added == 0:
            raise OSError(f"cannot listen on {unix}")
    await server.start()
    running = RunningServer(server, port, health, names, options)
    await running.set_serving(serving)
    return running


async def run_until_signal(running: RunningServer, *,
                           on_shutdown: Callable[[], Awaitable[None]] | None = None) -> None:
    """Serve until SIGTERM/SIGINT, then shut down gracefully."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("serving", target=running.target, services=list(running.service_names), loop=loop_name(loop))
    await stop.wait()
    log.info("shutting down", grace_s=running.options.grace_s)
    await running.stop()
    if on_shutdown is not None:
        await on_shutdown()
    log.info("stopped")


class SocketInUse(OSError):
    """Another process listens on the Unix socket path (or the path is not a socket)."""


def refuse_socket_in_use(path: str) -> None:
    """gRPC replaces a socket file at its path; one a live process listens on must not be taken over.
    A file left by a process that died is left for gRPC to replace."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise SocketInUse(f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        return
    finally:
        probe.close()
    raise SocketInUse(f"{path}: another process is listening on it")


def service_name(pb2_module: Any, service: str) -> str:
    return pb2_module.DESCRIPTOR.services_by_name[service].full_name
