"""Highly available Redis the tests start themselves, on free ports: a Sentinel group (a primary, a
replica, a sentinel) and a 3-primary Redis Cluster. Real redis-server / redis-sentinel processes."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from fixtures_redis import RedisServer, free_port

SERVICE = "modipick-primary"


def wait_until(check, what: str, timeout_s: float = 20.0, every_s: float = 0.05):
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except (redis.RedisError, OSError) as error:
            last = error
        time.sleep(every_s)
    raise RuntimeError(f"timed out waiting for {what}" + (f" (last error: {last})" if last else ""))


def _binary(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.exit(f"{name} is missing: install it (apt-get install {package}) or run `make setup`", 2)
    return path


def cluster_port(rng: random.Random = random.SystemRandom()) -> int:
    """A free port whose cluster bus port (port + 10000) is free and valid too."""
    for _ in range(200):
        port = rng.randrange(20_000, 50_000)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10_000))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port pair for a cluster node")


def _client(port: int) -> redis.Redis:
    return redis.Redis(port=port, decode_responses=True, socket_timeout=2, socket_connect_timeout=2)


@dataclass
class SentinelGroup:
    """A primary, its replicas and one sentinel watching them as SERVICE. After a failover the old
    primary rejoins as a replica of the new one only after ~10-15 s (Sentinel waits before it
    reconfigures a former primary); until then a write that must reach every replica is unconfirmed."""

    workdir: Path
    replicas: int = 1
    down_after_ms: int = 2000
    servers: list[RedisServer] = field(default_factory=list)
    sentinel_port: int = 0
    sentinel: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.sentinel_port}/{SERVICE}/0"

    def start(self) -> "SentinelGroup":
        primary = RedisServer(port=free_port(), workdir=str(self._dir("primary"))).start()
        self.servers = [primary] + [
            RedisServer(port=free_port(), workdir=str(self._dir(f"replica{index}")),
                        extra_args=("--replicaof", "127.0.0.1", str(primary.port))).start()
            for index in range(self.replicas)]
        self.sentinel_port = free_port()
        config = self._dir("sentinel") / "sentinel.conf"
        config.write_text(
            f"port {self.sentinel_port}\nbind 127.0.0.1\ndir {config.parent}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {primary.port} 1\n"
            f"sentinel down-after-milliseconds {SERVICE} {self.down_after_ms}\n"
            f"sentinel failover-timeout {SERVICE} 10000\n")
        self.sentinel = subprocess.Popen([_binary("redis-sentinel", "redis-sentinel"), str(config)],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self._replicas_known, "the sentinel to see the replicas in sync", timeout_s=60)
        return self

    def _dir(self, name: str) -> Path:
        path = self.workdir / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def sentinel_client(self) -> redis.Redis:
        return _client(self.sentinel_port)

    def primary_port(self) -> int:
        with self.sentinel_client() as client:
            return int(client.sentinel_get_master_addr_by_name(SERVICE)[1])

    def _replicas_known(self) -> bool:
        with _client(self.servers[0].port) as primary:
            replication = primary.info("replication")
        if any(replication.get(f"slave{i}", {}).get("state") != "online" for i in range(self.replicas)):
            return False
        with self.sentinel_client() as client:
            replicas = client.sentinel_slaves(SERVICE)
        return sum(r.get("master-link-status") == "ok" and not r.get("is_disconnected")
                   and not r.get("is_sdown") for r in replicas) >= self.replicas

    def failover(self) -> None:
        """SENTINEL FAILOVER (retried while the sentinel still finds no good replica)."""
        def ask() -> bool:
            with self.sentinel_client() as client:
                try:
                    return bool(client.execute_command("SENTINEL FAILOVER", SERVICE))
                except redis.ResponseError as error:
                    if "NOGOODSLAVE" in str(error) or "INPROG" in str(error):
                        return False
                    raise
        wait_until(ask, "the sentinel to accept SENTINEL FAILOVER", timeout_s=60, every_s=0.2)

    def flush(self) -> None:
        with _client(self.primary_port()) as client:
            client.flushdb()

    def stop(self) -> None:
        if self.sentinel is not None:
            self.sentinel.kill()
            self.sentinel.wait(timeout=10)
            self.sentinel = None
        for server in self.servers:
            server.stop()


@dataclass
class RedisClusterGroup:
    """Three primaries, no replicas, slots spread by `redis-cli --cluster create`."""

    workdir: Path
    servers: list[RedisServer] = field(default_factory=list)

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{s.port}" for s in self.servers)

    def start(self) -> "RedisClusterGroup":
        for index in range(3):
            path = self.workdir / f"node{index}"
            path.mkdir(parents=True, exist_ok=True)
            self.servers.append(RedisServer(port=cluster_port(), workdir=str(path), extra_args=(
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", "5000")).start())
        subprocess.run([_binary("redis-cli", "redis-tools"), "--cluster", "create",
                        *(f"127.0.0.1:{s.port}" for s in self.servers), "--cluster-replicas", "0", "--cluster-yes"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        wait_until(self._ready, "the cluster to cover every slot on every node", timeout_s=60)
        return self

    def _ready(self) -> bool:
        for server in self.servers:
            with _client(server.port) as client:
                info = client.cluster("INFO")
                state = info.get("cluster_state") if isinstance(info, dict) else None
                if state != "ok" and "cluster_state:ok" not in str(info):
                    return False
        return True

    def slot_owner(self, key: str) -> int:
        """The port of the primary that serves key's slot."""
        with _client(self.servers[0].port) as client:
            slot = client.cluster("KEYSLOT", key)
            for start, end, primary, *_ in client.cluster("SLOTS"):
                if start <= int(slot) <= end:
                    return int(primary[1])
        raise RuntimeError(f"no node serves {key!r}")

    def keys_by_node(self) -> dict[int, list[str]]:
        found = {}
        for server in self.servers:
            with _client(server.port) as client:
                found[server.port] = sorted(client.keys("*"))
        return found

    def flush(self) -> None:
        for server in self.servers:
            with _client(server.port) as client:
                client.flushall()

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


@pytest.fixture(scope="session")
def redis_sentinel(tmp_path_factory: pytest.TempPathFactory):
    """A shared Sentinel group nobody fails over (fail-over tests start their own)."""
    group = SentinelGroup(tmp_path_factory.mktemp("sentinel"))
    try:
        yield group.start()
    finally:
        group.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory):
    group = RedisClusterGroup(tmp_path_factory.mktemp("cluster"))
    try:
        yield group.start()
    finally:
        group.stop()
