"""Store fixtures: the same contract runs on the in-memory store (called directly and awaited) and,
through the blocking and the asyncio clients, on a real redis-server, a Sentinel-managed primary and
a 3-primary Cluster."""

from __future__ import annotations

import pytest

from modipick.stores import AsyncInMemoryProfileStore, AsyncRedisProfileStore, InMemoryProfileStore, RedisProfileStore

from stores_blocking import BlockingView


class FakeClock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _redis_url(request: pytest.FixtureRequest, topology: str) -> str:
    if topology == "server":
        return request.getfixturevalue("redis_url")  # flushed before and after
    group = request.getfixturevalue(f"redis_{topology}")
    group.flush()
    request.addfinalizer(group.flush)
    return group.url


@pytest.fixture(params=["memory", "memory-async", "redis", "redis-async", "sentinel", "sentinel-async", "cluster", "cluster-async"])
def store(request: pytest.FixtureRequest, clock: FakeClock):
    kind = request.param
    if kind == "memory":
        made = InMemoryProfileStore(clock=clock)
    elif kind == "memory-async":
        made = BlockingView(AsyncInMemoryProfileStore(clock=clock))
    else:
        topology, _, flavour = kind.partition("-")
        url = _redis_url(request, "server" if topology == "redis" else topology)
        if flavour == "async":
            made = BlockingView(AsyncRedisProfileStore(url, clock=clock))
        else:
            made = RedisProfileStore(url, clock=clock)
    yield made
    made.close()
