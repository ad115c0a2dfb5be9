"""A real redis-server per test session, on a free port (never mocks).

`--redis-url URL` points the tests at an existing server instead (as redis-py's suite does);
every test gets a fresh logical database namespace via `redis_url` and is cleaned after.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RedisServer:
    """A redis-server process the tests own: they may kill and restart it (fault tests)."""

    port: int
    workdir: str
    extra_args: tuple[str, ...] = ()
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.exit("redis-server is missing: install it (apt-get install redis-server) or run `make test`", 2)
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.workdir, *self.extra_args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--redis-url", default=None, help="use this Redis instead of starting redis-server")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest):
    if request.config.getoption("--redis-url"):
        yield None
        return
    server = RedisServer(port=free_port(), workdir=str(tmp_path_factory.mktemp("redis"))).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server, request: pytest.FixtureRequest):
    """A Redis URL with an empty database; flushed after the test."""
    import redis

    url = request.config.getoption("--redis-url") or redis_server.url
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture
def own_redis(tmp_path):
    """A private redis-server this test may kill and restart."""
    server = RedisServer(port=free_port(), workdir=str(tmp_path)).start()
    yield server
    server.stop()
