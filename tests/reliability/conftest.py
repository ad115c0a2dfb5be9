"""The reliability rig: every hop on mutual TLS, Redis with an ACL user, a password and mutual TLS.

    rig_redis   redis-server (TLS port only, ACL user `modipick`), killable and restartable
    rig         Profiler (in-process, admin token) + Executor E1 (`modipick executor` process, the
                digits models plus "flaky", reporting to the Profiler) on rig_redis
    e3          a plain Executor process (no TLS, no Profiler, one execution slot, queue of 4):
                overload and fuzz tests, whose load must not touch the rig's profiles
    figures     where tests write what they measured (docs/reliability.md is built from it)

In-process Selectors are started per test with `rig.start_selector(...)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fixtures_redis import RedisServer
from lag_support import SchedulingLag

from pki_support import Pki, make_pki
from reliability_pool import SWITCH_NAME, assemble_pool
from reliability_support import (ADMIN_TOKEN, E3_MODELS, REDIS_PASSWORD, REDIS_USER, RIG_MODELS, Figures,
                                 LoopThread, ServiceProcess, figures_path, free_port, wait_until)



@pytest.fixture(scope="session")
def figures() -> Figures:
    return Figures(figures_path())


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@dataclass
class RedisRig:
    server: RedisServer
    pki: Pki
    password_file: Path

    @property
    def url(self) -> str:
        return f"rediss://127.0.0.1:{self.server.port}/0"

    def url_db(self, db: int) -> str:
        return f"rediss://127.0.0.1:{self.server.port}/{db}"

    @property
    def store_options(self) -> dict:
        return dict(username=REDIS_USER, password=REDIS_PASSWORD, ca_file=self.pki.ca,
                    cert_file=self.pki.client_cert, key_file=self.pki.client_key)

    def flags(self, db: int = 0) -> list[str]:
        """The services' flags for this Redis: ACL user, password from a file, mutual TLS."""
        return ["--redis-url", self.url_db(db), "--redis-username", REDIS_USER,
                "--redis-password", f"file:{self.password_file}", "--redis-ca", self.pki.ca,
                "--redis-cert", self.pki.client_cert, "--redis-key", self.pki.client_key]

    def store(self, db: int = 0, **overrides):
        from modipick.stores import make_store

        return make_store(self.url_db(db), **{**self.store_options, **overrides})


@pytest.fixture(scope="session")
def rig_redis(tmp_path_factory, pki) -> RedisRig:
    workdir = tmp_path_factory.mktemp("redis")
    port = free_port()
    server = RedisServer(port=port, workdir=str(workdir), extra_args=(
        "--port", "0", "--tls-port", str(port), "--tls-cert-file", pki.server_cert,
        "--tls-key-file", pki.server_key, "--tls-ca-cert-file", pki.ca, "--tls-auth-clients", "yes",
        "--user", "default", "off", "--user", REDIS_USER, "on", f">{REDIS_PASSWORD}", "~modipick:*", "+@all"))
    server.start()
    secret = workdir / "redis-password"
    secret.write_text(REDIS_PASSWORD + "\n")
    yield RedisRig(server, pki, secret)
    server.stop()


@dataclass
class Rig:
    loop: LoopThread
    redis: RedisRig
    pki: Pki
    pool: Path
    workdir: Path
    profiler: object
    e1: ServiceProcess
    store: object
    selectors: list = field(default_factory=list)
    metrics_ports: dict = field(default_factory=dict)  # executor port -> its /metrics port

    def executor_observations(self, proc: ServiceProcess) -> dict[str, float]:
        """modipick_executor_observations_total{result} of an Executor process (reported | dropped)."""
        import re
        import urllib.request

        port = self.metrics_ports[int(proc.target.rsplit(":", 1)[1])]
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        pattern = r'^modipick_executor_observations_total\{result="(\w+)"\} (\S+)$'
        return {m.group(1): float(m.group(2)) for m in re.finditer(pattern, text, re.M)}

    @property
    def switch(self) -> Path:
        return self.workdir / SWITCH_NAME

    def profiles(self) -> dict:
        return {p.name: p for p in self.store.load_all()}

    def eligible(self) -> set[str]:
        return {n for n, p in self.profiles().items() if p.state == "eligible"}

    def executor_args(self, port: int, *extra: str) -> list[str]:
        self.metrics_ports[port] = free_port()
        return ["executor", "--listen", f"127.0.0.1:{port}", "--model-base", str(self.pool),
                "--metrics-port", str(self.metrics_ports[port]),
                "--profiler-target", self.profiler.target, "--max-concurrency", "2", "--max-queue", "16",
                "--grace-s", "2", "--log-json", *self.pki.server_flags(), *self.pki.downstream_flags(), *extra]

    def start_executor(self, name: str, log_dir: Path, *extra: str) -> ServiceProcess:
        port = free_port()
        return ServiceProcess(name, self.executor_args(port, *extra), log_dir / f"{name}.log",
                              f"127.0.0.1:{port}", self.pki, cwd=self.workdir).start()

    def start_selector(self, executor_targets: list[str], **overrides):
        """An in-process Selector on the rig (mutual TLS both ways), stopped with the rig."""
        from modipick.selector.app import SelectorSettings, start_selector

        settings = SelectorSettings(**{**dict(
            store_url=self.redis.url, store_options=self.redis.store_options,
            executor_target=",".join(executor_targets), profiler_target=self.profiler.target,
            refresh_ms=100.0, policy="modipick", policy_params={"threshold_ms": 1.0},
            server_tls=self.pki.server_tls(), downstream_tls=self.pki.client_tls(), grace_s=1.0), **overrides})
        app = self.loop.run(start_selector(settings))
        self.selectors.append(app)
        return app

    def stop_selector(self, app) -> None:
        self.loop.run(app.stop(0.5))
        self.selectors.remove(app)


@pytest.fixture(scope="session")
def rig(rig_redis, pki, digits_pool, tmp_path_factory):
    from modipick.profiler.app import ProfilerSettings, start_profiler
    from modipick.profiler.lifecycle import LifecycleSettings

    base = tmp_path_factory.mktemp("rig")
    pool = assemble_pool(base / "pool", digits_pool, RIG_MODELS)
    workdir = base / "cwd"
    workdir.mkdir()
    (workdir / SWITCH_NAME).write_text("on\n")
    loop = LoopThread()
    e1_port = free_port()
    store = rig_redis.store()
    profiler = loop.run(start_profiler(ProfilerSettings(
        store_url=rig_redis.url, store_options=rig_redis.store_options, executor_target=f"127.0.0.1:{e1_port}",
        server_tls=pki.server_tls(), downstream_tls=pki.client_tls(), admin_token=ADMIN_TOKEN,
        lifecycle=LifecycleSettings(warmup_runs=2, probe_runs=5, reprobe_after_s=3600, discovery_interval_s=0.5),
        failure_threshold=3, grace_s=1.0)))
    rig = Rig(loop, rig_redis, pki, pool, workdir, profiler, None, store)
    rig.e1 = ServiceProcess("e1", rig.executor_args(e1_port), base / "e1.log", f"127.0.0.1:{e1_port}", pki,
                            cwd=workdir).start()
    try:
        rig.e1.wait_serving(120)
        wait_until(lambda: rig.eligible() >= {*RIG_MODELS, "flaky"}, 180,
                   what=lambda: f"rig models eligible: {rig.profiles()}\n{rig.e1.tail()}")
        yield rig
    finally:
        for app in list(rig.selectors):
            loop.run(app.stop(0.5))
        loop.run(profiler.stop(0.5))
        rig.e1.stop()
        loop.close()
        store.close()


@pytest.fixture(scope="session")
def e3(rig, digits_pool, tmp_path_factory):
    """A plain Executor with one execution slot and a queue of 4, reporting nowhere, serving E3_MODELS."""
    log_dir = tmp_path_factory.mktemp("e3")
    pool = assemble_pool(log_dir / "pool", digits_pool, E3_MODELS, flaky=False)
    port = free_port()
    proc = ServiceProcess("e3", ["executor", "--listen", f"127.0.0.1:{port}", "--model-base", str(pool),
                                 "--max-concurrency", "1", "--max-queue", "4", "--grace-s", "1", "--log-json"],
                          log_dir / "e3.log", f"127.0.0.1:{port}", cwd=rig.workdir).start()
    proc.wait_serving(120)
    from modipick.v1 import executor_pb2, executor_pb2_grpc
    import grpc

    def loaded() -> bool:
        try:  # a busy machine may take longer than 2 s to answer while the models load: ask again
            with grpc.insecure_channel(proc.target) as ch:
                models = executor_pb2_grpc.ExecutorServiceStub(ch).ListModels(executor_pb2.ListModelsRequest(),
                                                                              timeout=2).models
        except grpc.RpcError:
            return False
        return len(models) == len(E3_MODELS) and all(m.state == 3 for m in models)

    wait_until(loaded, 120, 0.2, what=lambda: proc.tail())
    yield proc
    proc.stop()


def pytest_collection_modifyitems(items):
    """The reliability modules in a fixed order (the rig's Redis is killed last); other tests keep
    their places."""
    order = ["test_replicas_agree", "test_transport_security", "test_overload", "test_fuzz_rpcs",
             "test_executor_faults", "test_graceful_shutdown", "test_redis_faults"]
    rank = {name: i for i, name in enumerate(order)}
    slots = [i for i, item in enumerate(items) if Path(str(item.fspath)).parent == Path(__file__).parent]
    mine = sorted((items[i] for i in slots),
                  key=lambda item: rank.get(Path(str(item.fspath)).stem, len(order)))
    for i, item in zip(slots, mine):
        items[i] = item


@pytest.fixture
def lag():
    """This process's own scheduling lag during the test: a stalled test process is not a late answer."""
    with SchedulingLag() as measured:
        yield measured
