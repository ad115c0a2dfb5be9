"""Loadgen fixtures: a trivial Selector on loopback (real gRPC) in its own thread and event loop,
so tests can drive it from asyncio.run() or through the CLI's main()."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Callable, Iterator

import pytest

from modipick.loadgen.trivial import start_trivial_server


class ServerThread:
    def __init__(self, **options) -> None:
        self._options = options
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="trivial-selector")
        self._thread.start()
        self.server, self.port, self.selector = asyncio.run_coroutine_threadsafe(
            start_trivial_server("127.0.0.1:0", **options), self._loop).result(timeout=30)
        self.address = f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(None), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


@pytest.fixture
def trivial_factory() -> Iterator[Callable[..., ServerThread]]:
    started: list[ServerThread] = []

    def start(**options) -> ServerThread:
        server = ServerThread(**options)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def trivial(trivial_factory) -> ServerThread:
    """A trivial Selector answering at once."""
    return trivial_factory()


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str], Path]:
    """write(name, text) -> path of a small trace file in the test's tmp dir."""
    def write_file(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path
    return write_file
