"""The whole suite on one machine: Executor (embedded TensorFlow, its own process), Profiler and
Selector, on Redis when there is one, else on the in-memory store (then Profiler and Selector share
this process, since a memory store cannot be shared between processes). Used by `modipick up` and
`modipick demo`; TensorFlow never enters this process (the pool is built by a `modipick zoo`
subprocess).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import grpc
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc

log = structlog.get_logger("modipick.up")

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def modipick_command(*args: str) -> list[str]:
    """`modipick ARGS...` run by this interpreter (no console script or PATH needed)."""
    return [sys.executable, "-c", "import sys; from modipick.cli import main; sys.exit(main(sys.argv[1:]))", *args]


class SuiteError(RuntimeError):
    """The suite could not be brought up; the message says which part and why."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def default_model_base(pool: str, environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    root = env.get("MODIPICK_ZOO_CACHE") or str(Path.home() / ".cache" / "modipick" / "zoo")
    return Path(root) / pool


@dataclass
class SuiteSettings:
    host: str = "127.0.0.1"
    selector_port: int = 50051          # 0: any free port
    executor_port: int = 50052
    profiler_port: int = 50053
    redis_url: str = DEFAULT_REDIS_URL  # tried first; "memory" forces the in-memory store
    start_redis: bool = True            # when redis_url is unreachable and redis-server is installed
    pool: str = "digits"
    model_base: Path | None = None
    build: bool = True
    build_args: tuple[str, ...] = ()    # more `modipick zoo build` flags (--models, --input-size)
    policy: str = "risk_aware"
    threshold_ms: float = 20.0
    seed: int = 0
    profile_refresh_ms: float = 200.0
    serving_overhead: str = "auto"      # the Selector's --serving-overhead-ms
    execute_socket: bool = True         # the Selector calls the Executor over a Unix socket (unix:PATH)
    warmup_runs: int = 5
    probe_runs: int = 20
    log_level: str = "info"
    child_output: IO[Any] | None = None  # where the children's logs go (None: inherit stderr)
    start_timeout_s: float = 180.0
    extra_env: dict[str, str] = field(default_factory=dict)


class Suite:
    """`async with Suite(settings) as suite:` -> suite.selector_target etc.; torn down on exit."""

    def __init__(self, settings: SuiteSettings) -> None:
        self.settings = settings
        self.mode = ""                    # "redis" | "local-redis" | "memory"
        self.redis_url = ""
        self.model_base = settings.model_base or default_model_base(settings.pool)
        h = settings.host
        self.selector_target = f"{h}:{settings.selector_port or free_port(h)}"
        self.executor_target = f"{h}:{settings.executor_port or free_port(h)}"
        self.profiler_target = f"{h}:{settings.profiler_port or free_port(h)}"
        self._procs: list[tuple[str, subprocess.Popen]] = []
        self._redis: subprocess.Popen | None = None
        self._redis_dir: tempfile.TemporaryDirectory | None = None
        self._socket_dir = tempfile.TemporaryDirectory(prefix="modipick-") if settings.execute_socket else None
        self.execute_socket = os.path.join(self._socket_dir.name, "executor.sock") if self._socket_dir else ""
        self._in_process: list[Any] = []
        self._store = None

    async def __aenter__(self) -> "Suite":
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- bring-up ---------------------------------------------------------------------------------
    async def start(self) -> None:
        s = self.settings
        if s.build:
            await asyncio.to_thread(self._build_pool)
        self.redis_url, self.mode = await asyncio.to_thread(self._choose_store)
        if self.mode == "memory":
            log.warning("no Redis reachable and no redis-server installed: in-memory profile store, "
                        "Profiler and Selector in this process (a single Selector replica)")
        self._spawn("executor", self._executor_args())
        if self.mode == "memory":
            await self._start_in_process()
        else:
            self._spawn("profiler", self._profiler_args())
            self._spawn("selector", self._selector_args())
        await asyncio.gather(
            self._wait_serving("executor", self.executor_target, "modipick.v1.ExecutorService"),
            self._wait_serving("profiler", self.profiler_target, "modipick.v1.ProfilerService"),
            self._wait_serving("selector", self.selector_target, "modipick.v1.SelectorService"))

    async def add_selector(self, *extra_args: str) -> str:
        """Another Selector process on the suite's store and Executor, with `extra_args` on its command
        line (benchmarks compare settings side by side); stopped with the suite. Returns its target."""
        h = self.settings.host
        target = f"{h}:{free_port(h)}"
        args = self._selector_args()
        args[args.index("--listen") + 1] = target
        self._spawn("selector", [*args, *extra_args])
        await self._wait_serving("selector", target, "modipick.v1.SelectorService")
        return target

    def _build_pool(self) -> None:
        from modipick.zoo.manifest import try_read_manifest

        if try_read_manifest(self.model_base) is not None:
            return
        log.info("building the model pool (once; cached)", pool=self.settings.pool, out=str(self.model_base))
        cmd = modipick_command("zoo", "build", "--pool", self.settings.pool, "--out", str(self.model_base),
                               *self.settings.build_args)
        result = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=self.settings.child_output or None)
        if result.returncode != 0 or try_read_manifest(self.model_base) is None:
            raise SuiteError(f"building the {self.settings.pool} pool into {self.model_base} failed "
                             f"(exit {result.returncode}); run `modipick zoo build --pool {self.settings.pool}`")

    def _choose_store(self) -> tuple[str, str]:
        url = self.settings.redis_url
        if url == "memory":
            return "memory", "memory"
        if _redis_reachable(url):
            return url, "redis"
        log.info("Redis not reachable", url=_redact(url))
        binary = shutil.which("redis-server")
        if not (self.settings.start_redis and binary):
            return "memory", "memory"
        self._redis_dir = tempfile.TemporaryDirectory(prefix="modipick-redis-")
        port = free_port()
        self._redis = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self._redis_dir.name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        local = f"redis://127.0.0.1:{port}/0"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if _redis_reachable(local):
                log.info("started a local redis-server", url=local)
                return local, "local-redis"
            time.sleep(0.05)
        raise SuiteError(f"the local redis-server on port {port} did not start")

    @property
    def selector_executor_target(self) -> str:
        """How the Selector reaches the Executor: its Unix socket when co-located, else its address."""
        return f"unix:{self.execute_socket}" if self.execute_socket else self.executor_target

    def _common(self) -> list[str]:
        return ["--log-level", self.settings.log_level]

    def _executor_args(self) -> list[str]:
        return ["executor", "--listen", self.executor_target, "--model-base", str(self.model_base),
                "--profiler-target", self.profiler_target, "--listen-unix", self.execute_socket,
                *self._common()]

    def _profiler_args(self) -> list[str]:
        s = self.settings
        return ["profiler", "--listen", self.profiler_target, "--redis-url", self.redis_url,
                "--executor-target", self.executor_target, "--warmup-runs", str(s.warmup_runs),
                "--probe-runs", str(s.probe_runs), "--discovery-interval-s", "1", *self._common()]

    def _selector_args(self) -> list[str]:
        s = self.settings
        return ["selector", "--listen", self.selector_target, "--redis-url", self.redis_url,
                "--executor-target", self.selector_executor_target, "--profiler-target", self.profiler_target,
                "--policy", s.policy, "--threshold-ms", repr(s.threshold_ms), "--seed", str(s.seed),
                "--profile-refresh-ms", repr(s.profile_refresh_ms), "--serving-overhead-ms", s.serving_overhead,
                *self._common()]

    def _spawn(self, name: str, args: list[str]) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODIPICK_") or k == "MODIPICK_ZOO_CACHE"}
        env.update(self.settings.extra_env)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        out = self.settings.child_output
        proc = subprocess.Popen(modipick_command(*args), env=env, stdin=subprocess.DEVNULL,
                                stdout=out or None, stderr=out or None, start_new_session=True)
        self._procs.append((name, proc))

    async def _start_in_process(self) -> None:
        from modipick.profiler.app import ProfilerSettings, start_profiler
        from modipick.profiler.lifecycle import LifecycleSettings
        from modipick.selector.app import SelectorSettings, start_selector
        from modipick.selector.budget import parse_overhead
        from modipick.stores import make_async_store

        s = self.settings
        self._store = make_async_store("memory")  # one store, shared by both
        profiler = await start_profiler(ProfilerSettings(
            address=self.profiler_target, executor_target=self.executor_target,
            lifecycle=LifecycleSettings(warmup_runs=s.warmup_runs, probe_runs=s.probe_runs,
                                        discovery_interval_s=1.0)), store=self._store)
        self._in_process.append(profiler)
        selector = await start_selector(SelectorSettings(
            address=self.selector_target, executor_target=self.selector_executor_target,
            profiler_target=self.profiler_target, policy=s.policy, policy_params={"threshold_ms": s.threshold_ms},
            seed=s.seed, refresh_ms=s.profile_refresh_ms, serving_overhead_ms=parse_overhead(s.serving_overhead)),
            store=self._store)
        self._in_process.insert(0, selector)

    async def _wait_serving(self, name: str, target: str, service: str) -> None:
        deadline = time.monotonic() + self.settings.start_timeout_s
        async with grpc.aio.insecure_channel(target) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while True:
                proc = next((p for n, p in self._procs if n == name), None)
                if proc is not None and proc.poll() is not None:
                    raise SuiteError(f"the {name} exited with code {proc.returncode} while starting "
                                     f"(see its log above)")
                try:
                    reply = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=1.0)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.aio.AioRpcError:
                    pass
                if time.monotonic() > deadline:
                    raise SuiteError(f"the {name} at {target} was not SERVING within "
                                     f"{self.settings.start_timeout_s:g} s")
                await asyncio.sleep(0.2)

    # -- tear-down --------------------------------------------------------------------------------
    async def stop(self) -> None:
        for app in self._in_process:
            await app.stop(1.0)
        self._in_process.clear()
        order = {"selector": 0, "profiler": 1, "executor": 2}
        for name, proc in sorted(self._procs, key=lambda np_: order.get(np_[0], 9)):
            await asyncio.to_thread(_terminate, proc)
        self._procs.clear()
        if self._store is not None:
            await self._store.close()
            self._store = None
        if self._redis is not None:
            await asyncio.to_thread(_terminate, self._redis)
            self._redis = None
        if self._redis_dir is not None:
            self._redis_dir.cleanup()
            self._redis_dir = None
        if self._socket_dir is not None:
            self._socket_dir.cleanup()
            self._socket_dir = None

    def describe(self) -> list[str]:
        store = {"redis": f"Redis at {_redact(self.redis_url)}",
                 "local-redis": f"a local redis-server at {self.redis_url} (stopped with the suite)",
                 "memory": "the in-memory store (single replica; Profiler and Selector in this process)"}[self.mode]
        return [f"selector  {self.selector_target}   <- clients: modipick infer IMAGE --target {self.selector_target}",
                f"executor  {self.executor_target}   (embedded TensorFlow, models from {self.model_base})"
                + (f"\n          {self.execute_socket}   (the Selector's way in: gRPC on a Unix socket)" if self.execute_socket else ""),
                f"profiler  {self.profiler_target}",
                f"profiles  {store}"]


def _terminate(proc: subprocess.Popen, timeout_s: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def _redis_reachable(url: str) -> bool:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError):
        return False


def _redact(url: str) -> str:
    from modipick.stores import redact

    return redact(url)
