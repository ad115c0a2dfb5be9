"""The live suite (`live_suite`, a session fixture every test folder may use): a real Executor
(`modipick executor`, embedded TensorFlow, the digits pool's SavedModels) in its own process, a
Profiler and a Selector in this process on a thread's event loop, all on a real redis-server.
Started once per session.

Redis: the session's redis-server, logical database 7, so the per-test `redis_url` fixture's
FLUSHDB (database 0) never wipes the suite's profiles mid-session.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

SUITE_DB = 7
ADMIN_TOKEN = "suite-admin-token"  # the Profiler's admin RPCs (RegisterModel, ...) need it
PROBE_RUNS = 10
THRESHOLD_MS = 1.0


def wait_until(predicate, timeout_s: float = 10.0, interval_s: float = 0.05, what: str = ""):
    """Poll `predicate` until it returns something truthy (returned), or fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"not within {timeout_s:g} s: {what or predicate}")


def learned_model(loop: "LoopThread", app, client_id: str):
    """The return-leg model a Selector app has learned for `client_id` (None before any): with
    partitioned return legs (the default on Redis) the client's state in Redis, else the app's own
    book's model (read on the app's loop)."""
    if getattr(app, "client_legs", None) is not None:
        from modipick.core.returnleg import ReturnLegModel
        from modipick.core.returnleg_state import from_state

        state = loop.run(app.client_legs._store.load(client_id))
        return None if state is None else from_state(state, ReturnLegModel)

    async def held():
        return app.service.budgeter.returns._clients.get(client_id)
    return loop.run(held())


def learned_legs(loop: "LoopThread", app, client_id: str) -> int:
    model = learned_model(loop, app, client_id)
    return 0 if model is None else model.samples


class LoopThread:
    """An event loop on a thread: servers live there, sync clients call from the test thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="suite-loop", daemon=True)
        self._thread.start()

    def run(self, coro, timeout: float = 60.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        async def cancel_rest() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.run(cancel_rest(), 10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def with_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))


@dataclass
class LiveSuite:
    loop: LoopThread
    redis_url: str
    pool: Path
    executor_target: str
    executor_log: Path
    profiler: object
    selector: object
    store: object
    extra: list = field(default_factory=list)

    @property
    def selector_target(self) -> str:
        return self.selector.target

    @property
    def profiler_target(self) -> str:
        return self.profiler.target

    def profiles(self) -> dict[str, object]:
        return {p.name: p for p in self.store.load_all()}

    def pool_models(self) -> list[str]:
        from modipick.zoo.manifest import read_manifest

        return [m.name for m in read_manifest(self.pool).models]

    def start_selector(self, wall_ns=time.time_ns, **overrides):
        """Another Selector replica on the same Redis (stopped with the suite)."""
        from modipick.selector.app import SelectorSettings, start_selector

        settings = SelectorSettings(**{**dict(
            store_url=self.redis_url, executor_target=self.executor_target,
            profiler_target=self.profiler_target, refresh_ms=100.0,
            policy_params={"threshold_ms": THRESHOLD_MS}), **overrides})
        app = self.loop.run(start_selector(settings, wall_ns=wall_ns))
        self.extra.append(app)
        return app

    def wait_eligible(self, names: list[str], timeout_s: float = 240.0) -> None:
        """Until the store holds `names` eligible and the suite's Selector has read them so (it
        refreshes every 100 ms: a request sent in between would find them warming). Replicas a test
        starts read the store as they start; some tests stop theirs, so they are not waited for."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            profiles = self.profiles()
            if all(n in profiles and profiles[n].state == "eligible" for n in names) and (
                    set(names) <= {c.name for c in self.selector.cache.snapshot.candidates}):
                return
            time.sleep(0.05)
        raise AssertionError(f"models not eligible after {timeout_s:g} s: {self.profiles()}\n"
                             f"executor log tail:\n{self.executor_log.read_text()[-3000:]}")


def _wait_serving(target: str, timeout_s: float, proc: subprocess.Popen, log: Path) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"executor exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
            try:
                if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.2)
    raise RuntimeError(f"executor at {target} not SERVING after {timeout_s:g} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def live_suite(redis_server, digits_pool, request, tmp_path_factory):
    from modipick.profiler.app import ProfilerSettings, start_profiler
    from modipick.profiler.lifecycle import LifecycleSettings
    from modipick.selector.app import SelectorSettings, start_selector
    from modipick.stores import make_store

    base_url = request.config.getoption("--redis-url") or redis_server.url
    url = with_db(base_url, SUITE_DB)
    store = make_store(url)
    import redis

    redis.Redis.from_url(url).flushdb()
    workdir = tmp_path_factory.mktemp("suite")
    executor_target = f"127.0.0.1:{free_port()}"
    loop = LoopThread()
    profiler = loop.run(start_profiler(ProfilerSettings(
        store_url=url, executor_target=executor_target, alpha=0.1, admin_token=ADMIN_TOKEN,
        lifecycle=LifecycleSettings(warmup_runs=4, probe_runs=PROBE_RUNS, reprobe_after_s=3600,
                                    discovery_interval_s=0.3))))
    log = workdir / "executor.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODIPICK_")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", "import sys; from modipick.cli import main; sys.exit(main(sys.argv[1:]))",
             "executor", "--listen", executor_target, "--model-base", str(digits_pool),
             "--profiler-target", profiler.target, "--log-level", "debug", "--log-json"],
            stdout=out, stderr=subprocess.STDOUT, env=env)
    selector = suite = None
    try:
        _wait_serving(executor_target, 180, proc, log)
        selector = loop.run(start_selector(SelectorSettings(
            store_url=url, executor_target=executor_target, profiler_target=profiler.target, refresh_ms=100.0,
            seed=0, policy_params={"threshold_ms": THRESHOLD_MS})))
        suite = LiveSuite(loop, url, digits_pool, executor_target, log, profiler, selector, store)
        suite.wait_eligible(suite.pool_models())
        yield suite
    finally:
        for app in [*(suite.extra if suite else []), selector, profiler]:
            if app is not None:
                loop.run(app.stop(0.5))
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        loop.close()
        store.close()
