"""What only the Redis store has: round trips, namespaces, exact floats, faults, configuration."""

from __future__ import annotations

import random
import time

import pytest
import redis

from modipick.core import ModelProfile, ewma_update
from modipick.stores import (InMemoryProfileStore, RedisOptions, RedisProfileStore, StoreConfigError,
                             StoreDataError, StoreError, StoreUnavailable, Timeouts, make_store)


def round_trips(monkeypatch, action) -> int:
    """Requests the client wrote to its Redis connections while running action."""
    sent = []
    original = redis.connection.Connection.send_packed_command

    def counting(self, command, check_health=True):
        packed = b"".join(command) if isinstance(command, (list, tuple)) else command
        # connection set-up (HELLO, CLIENT SETINFO, AUTH, SELECT) and health PINGs are not the store's
        # round trips; a slow machine may open a fresh connection in the middle of the test
        if not any(word in packed[:64].upper() for word in (b"PING", b"CLIENT", b"HELLO", b"AUTH", b"SELECT")):
            sent.append(command)
        return original(self, command, check_health)

    monkeypatch.setattr(redis.connection.Connection, "send_packed_command", counting)
    action()
    monkeypatch.undo()
    return len(sent)


def test_load_all_and_a_whole_batch_are_one_round_trip_each(redis_url, monkeypatch):
    store = RedisProfileStore(redis_url)
    for i in range(20):
        store.register(ModelProfile(name=f"m{i}", declared_accuracy=50.0))
    store.load_all()  # the first call of a script may have to load it (NOSCRIPT) after a flush
    store.observe_many([("m0", 1, 1.0)], alpha=0.5)
    # best of three: a reconnect or a retried timeout on a busy machine resends the one command
    assert min(round_trips(monkeypatch, store.load_all) for _ in range(3)) == 1
    batch = [(f"m{i % 20}", 1, float(i)) for i in range(2_000)]
    store.observe_many(batch, alpha=0.1)  # one EVALSHA; not counted: a reconnect mid-test adds commands
    assert sum(p.samples for p in store.load_all()) == 2_001
    store.close()


def test_batches_larger_than_max_batch_are_split_and_all_applied(redis_url):
    store = RedisProfileStore(redis_url, RedisOptions(max_batch=7))
    store.register(ModelProfile(name="m"))
    want = ModelProfile(name="m")
    values = [float(v) for v in range(1, 51)]
    for v in values:
        want = ewma_update(want, v, alpha=0.2, now=3.0)
    assert store.observe_many([("m", 1, v) for v in values], alpha=0.2, now=3.0) == 50
    assert store.load_all() == [want]
    store.close()


def test_lua_ewma_is_bit_identical_to_python(redis_url):
    rng = random.Random(11)
    store, memory = RedisProfileStore(redis_url), InMemoryProfileStore()
    for target in (store, memory):
        target.register(ModelProfile(name="m", declared_accuracy=1.0))
    for _ in range(30):
        batch = [("m", 1, rng.uniform(0.001, 5_000.0)) for _ in range(rng.randint(1, 30))]
        alpha, now = rng.uniform(0.01, 1.0), rng.uniform(0, 2e9)
        store.observe_many(batch, alpha=alpha, now=now)
        memory.observe_many(batch, alpha=alpha, now=now)
    assert store.load_all() == memory.load_all()
    store.close()


def test_namespaces_are_isolated(redis_url):
    a, b = make_store(redis_url, namespace="team-a"), make_store(redis_url, namespace="team-b")
    a.register(ModelProfile(name="m"))
    assert b.load_all() == [] and b.observe_many([("m", 1, 1.0)], alpha=0.5) == 0
    assert [p.name for p in a.load_all()] == ["m"]
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    assert sorted(client.keys("*")) == ["team-a:models", "team-a:profile:m:1"]
    client.close()
    a.close()
    b.close()


def test_corrupt_or_wrongly_typed_data_is_a_store_data_error(redis_url):
    store = RedisProfileStore(redis_url)
    store.register(ModelProfile(name="m"))
    client = redis.Redis.from_url(redis_url)
    client.hset("modipick:profile:m:1", "mean_ms", "fast")
    with pytest.raises(StoreDataError, match="unreadable profile m:1"):
        store.load_all()
    client.delete("modipick:models")
    client.set("modipick:models", "not a set")
    with pytest.raises(StoreDataError, match="wrong type"):
        store.load_all()
    client.close()
    store.close()


def test_server_down_raises_store_unavailable_and_the_store_recovers(own_redis):
    store = make_store(own_redis.url, retries=0, timeouts=Timeouts(connect=1.0, read=1.0))
    store.register(ModelProfile(name="m"))
    idle = make_store(own_redis.url)  # default retries; its pooled connection goes stale in the restart
    idle.load_all()
    own_redis.stop()
    calls = [store.load_all, lambda: store.register(ModelProfile(name="n")), lambda: store.deregister("m", 1),
             lambda: store.observe_many([("m", 1, 1.0)], alpha=0.5), lambda: store.record_outcome("m", 1, True),
             lambda: store.set_state("m", 1, "failing")]
    for call in calls:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable) as caught:
            call()
        assert not isinstance(caught.value, redis.RedisError)
        assert time.monotonic() - started < 3.0
    own_redis.start()  # same port, empty (no persistence) and without our scripts loaded
    assert idle.load_all() == []  # reconnects on the first call
    idle.close()
    assert store.load_all() == []
    store.register(ModelProfile(name="m"))
    assert store.observe_many([("m", 1, 2.0)], alpha=0.5, now=1.0) == 1
    assert store.load_all()[0].samples == 1
    store.close()


def test_unreachable_port_is_unavailable_with_the_password_redacted():
    store = make_store("redis://:hunter2@127.0.0.1:1/0", retries=0)
    with pytest.raises(StoreUnavailable) as caught:
        store.load_all()
    assert "hunter2" not in str(caught.value) and "hunter2" not in repr(store)
    assert isinstance(caught.value, StoreError)


@pytest.mark.parametrize("target, message", [
    ("", "unknown profile store ''"),
    ("postgres://u:pw@db/0", "unknown profile store 'postgres://u:\\*\\*\\*@db/0'"),
    ("redis://127.0.0.1:notaport/0", "bad Redis URL"),
])
def test_make_store_names_the_bad_target(target, message):
    with pytest.raises(StoreConfigError, match=message):
        make_store(target)


def test_make_store_options():
    memory = make_store("memory")
    assert isinstance(memory, InMemoryProfileStore)
    with pytest.raises(StoreConfigError, match="no options"):
        make_store("memory", namespace="x")
    with pytest.raises(StoreConfigError, match="unknown Redis store option"):
        make_store("redis://127.0.0.1:1/0", colour="blue")
    with pytest.raises(StoreConfigError, match="namespace"):
        make_store("redis://127.0.0.1:1/0", namespace="has space")
    with pytest.raises(StoreConfigError, match="timeout"):
        Timeouts(connect=0)
    store = make_store("redis://127.0.0.1:1/0", options=RedisOptions(namespace="x"), password="pw", timeouts=0.5)
    assert store.options.namespace == "x" and store.options.timeouts == Timeouts(0.5, 0.5)
    assert "pw" not in repr(store.options)
    store.close()
