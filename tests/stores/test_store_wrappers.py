"""The wrappers around a store (error counting, the Profiler's recovery, the Selector's guard) write
out every call of the store contract and forward it to the store they wrap."""

from __future__ import annotations

import inspect

import pytest

from modipick.core import ModelProfile
from modipick.profiler.recovery import RecoveringStore
from modipick.selector.health import EmptiedStoreGuard
from modipick.stores import (ErrorCountingStore, InMemoryProfileStore, ProfileLegStore, ReturnLegSample,
                             StoreUnavailable)

CONTRACT = sorted(name for name, member in inspect.getmembers(ProfileLegStore, inspect.isfunction)
                  if not name.startswith("_"))
WRAPPERS = [lambda store: ErrorCountingStore(store, lambda: None), RecoveringStore, EmptiedStoreGuard]


@pytest.mark.parametrize("wrap", WRAPPERS, ids=["counting", "recovering", "guard"])
def test_every_call_of_the_contract_is_written_out_and_reaches_the_store(wrap):
    wrapped = wrap(InMemoryProfileStore())
    assert CONTRACT == ["append_return_legs", "close", "deregister", "load_all", "observe_many",
                        "read_return_legs", "record_outcome", "register", "reseed", "set_state"]
    for name in CONTRACT:
        assert getattr(type(wrapped), name) is not getattr(ProfileLegStore, name), name
    assert wrapped.register(ModelProfile(name="m", state="eligible")) is True
    assert wrapped.observe_many([("m", 1, 4.0)], alpha=0.5, now=1.0) == 1
    assert wrapped.record_outcome("m", 1, True) is True
    assert wrapped.reseed("m", 1, 3.0, 1.0, 2.0) is True
    assert wrapped.set_state("m", 1, "warming") is True
    (profile,) = wrapped.load_all()
    assert (profile.mean_ms, profile.served, profile.state) == (3.0, 1, "warming")
    assert wrapped.append_return_legs([ReturnLegSample("c", 10.0, 20.0)], keep=10) == 1
    assert [s.return_ms for _, s in wrapped.read_return_legs("0", 10).entries] == [20.0]
    assert wrapped.deregister("m", 1) is True
    wrapped.close()


def test_failed_calls_are_counted_and_raised():
    class Down(InMemoryProfileStore):
        def load_all(self):
            raise StoreUnavailable("down")

        def read_return_legs(self, after, count):
            raise StoreUnavailable("down")

    failures = []
    store = ErrorCountingStore(Down(), lambda: failures.append(1))
    for call in (store.load_all, lambda: store.read_return_legs("0", 1)):
        with pytest.raises(StoreUnavailable):
            call()
    assert store.register(ModelProfile(name="m")) is True
    assert len(failures) == 2
