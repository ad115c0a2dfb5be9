"""The pieces behind the Redis fault tests, on the real in-memory store: the Profiler's registry
copy and journal (RecoveringStore), the Selector's guard against a store that comes back empty,
and the failure tracker's rules."""

from __future__ import annotations

import asyncio

import pytest

from modipick.core import ModelProfile
from modipick.profiler.failures import FailureTracker
from modipick.profiler.recovery import RecoveringStore
from modipick.selector.health import EmptiedStoreGuard
from modipick.stores import AsyncInMemoryProfileStore, InMemoryProfileStore, StoreUnavailable


@pytest.fixture
def run():
    """Awaits the wrappers' calls one at a time, on one loop for the whole test."""
    loop = asyncio.new_event_loop()
    yield loop.run_until_complete
    loop.close()


def wipe(store: InMemoryProfileStore) -> None:
    """What a restarted Redis without persistence looks like: nothing registered."""
    for p in store.load_all():
        store.deregister(p.name, p.version)


def test_a_lost_registry_is_restored_with_the_journal_written_on_top(run):
    inner = InMemoryProfileStore()
    store = RecoveringStore(AsyncInMemoryProfileStore(inner))
    run(store.register(ModelProfile(name="m", declared_accuracy=90.0, state="eligible")))
    run(store.observe_many([("m", 1, 4.0)] * 10, alpha=0.5, now=1.0))
    run(store.load_all())  # the snapshot: 10 samples
    run(store.observe_many([("m", 1, 8.0)] * 5, alpha=0.5, now=2.0))  # journaled since
    expected = inner.load_all()[0]
    wipe(inner)
    assert run(store.observe_many([("m", 1, 8.0)] * 3, alpha=0.5, now=3.0)) == 3  # rejected, restored, rewritten
    (restored,) = inner.load_all()
    assert restored.samples == expected.samples + 3 == 18 and restored.state == "eligible"
    # the same EWMA as if Redis had never restarted: 10 x 4 ms, then 8 x 8 ms at alpha 0.5
    assert expected.mean_ms == pytest.approx(8 - 4 * 0.5**5) and restored.mean_ms == pytest.approx(8 - 4 * 0.5**8)
    assert store.restored_models == 1 and store.rewritten == 5 + 3


def test_a_model_deregistered_elsewhere_stays_deregistered(run):
    inner = InMemoryProfileStore()
    store = RecoveringStore(AsyncInMemoryProfileStore(inner))
    for name in ("a", "b"):
        run(store.register(ModelProfile(name=name, state="eligible")))
    run(store.load_all())
    inner.deregister("a", 1)  # another Profiler, in normal operation
    assert {p.name for p in run(store.load_all())} == {"b"}
    assert run(store.observe_many([("a", 1, 1.0)], alpha=0.1)) == 0  # not ours any more: rejected
    assert {p.name for p in inner.load_all()} == {"b"}


def test_after_an_outage_the_first_call_restores_first(run):
    class Flaky(InMemoryProfileStore):
        down = False

        def load_all(self):
            if self.down:
                raise StoreUnavailable("down")
            return super().load_all()

    inner = Flaky()
    store = RecoveringStore(AsyncInMemoryProfileStore(inner))
    run(store.register(ModelProfile(name="m", state="eligible")))
    run(store.load_all())
    inner.down = True
    with pytest.raises(StoreUnavailable):
        run(store.load_all())
    inner.down = False
    wipe(inner)
    assert run(store.set_state("m", 1, "failing")) is True  # restored before the call, not after it failed
    assert inner.load_all()[0].state == "failing"


def test_the_selector_keeps_last_known_profiles_while_the_store_is_suspiciously_empty(run):
    now = [0.0]
    inner = InMemoryProfileStore()
    inner.register(ModelProfile(name="m", state="eligible"))
    guard = EmptiedStoreGuard(AsyncInMemoryProfileStore(inner), grace_s=30.0, clock=lambda: now[0])
    assert len(run(guard.load_all())) == 1
    wipe(inner)
    with pytest.raises(StoreUnavailable, match="restarted empty"):
        run(guard.load_all())
    now[0] = 10.0
    inner.register(ModelProfile(name="m", state="eligible"))  # the Profiler restored it
    assert len(run(guard.load_all())) == 1
    wipe(inner)
    with pytest.raises(StoreUnavailable):
        run(guard.load_all())
    now[0] = 45.0  # empty for longer than the grace: believed
    assert run(guard.load_all()) == []


def test_only_failures_of_the_model_itself_make_it_failing():
    store = InMemoryProfileStore()
    store.register(ModelProfile(name="m", state="eligible"))
    tracker = FailureTracker(AsyncInMemoryProfileStore(store), threshold=3)
    for code in ("DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "CANCELLED", "INVALID_ARGUMENT") * 3:
        tracker.saw("m", 1, failed=True, error_code=code)
    assert asyncio.run(tracker.apply()) == []
    tracker.saw("m", 1, failed=True, error_code="INTERNAL")
    tracker.saw("m", 1, failed=True, error_code="INTERNAL")
    tracker.saw("m", 1, failed=False)  # a success in between: the streak starts again
    for _ in range(3):
        tracker.saw("m", 1, failed=True, error_code="INTERNAL")
    assert asyncio.run(tracker.apply()) == [("m", 1)] and store.load_all()[0].state == "failing"
