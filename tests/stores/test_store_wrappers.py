"""The wrappers around a store (error counting, the Profiler's recovery, the Selector's guard) write
out every call of the awaited store contract and forward it to the store they wrap; `awaited` gives
a blocking store's awaited form."""

from __future__ import annotations

import asyncio
import inspect

import pytest

from modipick.core import ModelProfile
from modipick.profiler.recovery import RecoveringStore
from modipick.selector.health import EmptiedStoreGuard
from modipick.stores import (AsyncInMemoryProfileStore, AsyncProfileLegStore, AsyncRedisProfileStore,
                             ErrorCountingStore, InMemoryProfileStore, RedisProfileStore, ReturnLegSample,
                             StoreConfigError, StoreUnavailable, awaited)

CONTRACT = sorted(name for name, member in inspect.getmembers(AsyncProfileLegStore, inspect.isfunction)
                  if not name.startswith("_"))
WRAPPERS = [lambda store: ErrorCountingStore(store, lambda: None), RecoveringStore, EmptiedStoreGuard]


@pytest.mark.parametrize("wrap", WRAPPERS, ids=["counting", "recovering", "guard"])
def test_every_call_of_the_contract_is_written_out_and_reaches_the_store(wrap):
    assert CONTRACT == ["append_return_legs", "close", "deregister", "load_all", "observe_many",
                        "read_return_legs", "record_outcome", "register", "reseed", "set_state"]
    inner = InMemoryProfileStore()
    wrapped = wrap(AsyncInMemoryProfileStore(inner))
    for name in CONTRACT:
        assert getattr(type(wrapped), name) is not getattr(AsyncProfileLegStore, name), name
        assert inspect.iscoroutinefunction(getattr(wrapped, name)), name

    async def calls() -> None:
        assert await wrapped.register(ModelProfile(name="m", state="eligible")) is True
        assert await wrapped.observe_many([("m", 1, 4.0)], alpha=0.5, now=1.0) == 1
        assert await wrapped.record_outcome("m", 1, True) is True
        assert await wrapped.reseed("m", 1, 3.0, 1.0, 2.0) is True
        assert await wrapped.set_state("m", 1, "warming") is True
        (profile,) = await wrapped.load_all()
        assert (profile.mean_ms, profile.served, profile.state) == (3.0, 1, "warming")
        assert await wrapped.append_return_legs([ReturnLegSample("c", 10.0, 20.0)], keep=10) == 1
        assert [s.return_ms for _, s in (await wrapped.read_return_legs("0", 10)).entries] == [20.0]
        assert await wrapped.deregister("m", 1) is True
        await wrapped.close()

    asyncio.run(calls())
    assert inner.load_all() == []  # every call reached the one store


def test_failed_calls_are_counted_and_raised():
    class Down(InMemoryProfileStore):
        def load_all(self):
            raise StoreUnavailable("down")

        def read_return_legs(self, after, count):
            raise StoreUnavailable("down")

    failures = []
    store = ErrorCountingStore(AsyncInMemoryProfileStore(Down()), lambda: failures.append(1))

    async def calls() -> None:
        for call in (store.load_all, lambda: store.read_return_legs("0", 1)):
            with pytest.raises(StoreUnavailable):
                await call()
        assert await store.register(ModelProfile(name="m")) is True

    asyncio.run(calls())
    assert len(failures) == 2


def test_a_blocking_store_has_an_awaited_form_on_the_same_data(redis_url):
    memory = InMemoryProfileStore()
    view, opened = awaited(memory)
    assert isinstance(view, AsyncInMemoryProfileStore) and view.store is memory and not opened
    blocking = RedisProfileStore(redis_url)
    twin, opened = awaited(blocking)
    assert isinstance(twin, AsyncRedisProfileStore) and opened
    assert (twin.layout, twin.options) == (blocking.layout, blocking.options)

    async def through_the_twin() -> list[ModelProfile]:
        await twin.register(ModelProfile(name="m", declared_accuracy=60.0))
        try:
            return await twin.load_all()
        finally:
            await twin.close()

    try:
        assert asyncio.run(through_the_twin()) == blocking.load_all()
        assert awaited(twin) == (twin, False)
        with pytest.raises(StoreConfigError, match="neither an awaited profile store"):
            awaited(object())  # type: ignore[arg-type]
    finally:
        blocking.close()
