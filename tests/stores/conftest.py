"""Store fixtures: the same contract runs on the in-memory store and on a real redis-server."""

from __future__ import annotations

import pytest

from modipick.stores import InMemoryProfileStore, RedisProfileStore


class FakeClock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest, clock: FakeClock):
    if request.param == "memory":
        made = InMemoryProfileStore(clock=clock)
    else:
        made = RedisProfileStore(request.getfixturevalue("redis_url"), clock=clock)
    yield made
    made.close()
