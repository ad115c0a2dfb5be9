"""Per-client return-leg state behind Sentinel and on a Redis Cluster (real redis-server and
redis-sentinel processes): the store's client comes from the profile store's factory, so it follows
the same URLs; a client's key lives on the node of its own hash tag; a failover keeps the states
the replica held and learning resumes on the new primary."""

from __future__ import annotations

import asyncio
import time

import redis

from modipick.core.returnleg import ReturnLegModel
from modipick.core.returnleg_state import from_state
from modipick.selector.client_legs import PartitionedLegBook, _Report, open_partitioned_book
from modipick.selector.returnlegs import ReturnLegSettings
from modipick.stores.client_legs import RedisClientLegStore
from modipick.stores.errors import StoreError
from modipick.stores.redis_options import RedisOptions

from fixtures_redis_ha import SentinelGroup, wait_until


def _learn_and_read_elsewhere(url: str, client_id: str, options: RedisOptions) -> tuple[str, float, int]:
    """Replica A learns 25 legs of ~60 ms; a replica B opened on the same URL decides with them."""
    async def scenario():
        a = PartitionedLegBook(RedisClientLegStore.from_url(url, options))
        b = PartitionedLegBook(RedisClientLegStore.from_url(url, options))
        for i in range(25):
            await a.learn(_Report(client_id, 40.0 + i, 60.0 + (i % 5), None))
        await b.prefetch(client_id)
        decided = b.estimate(client_id, 50.0)
        for book in (a, b):
            await book._store.close()
        return decided.source, decided.estimate.quantile(0.5), b.load_failures

    return asyncio.run(scenario())


def test_client_state_through_sentinel_lives_on_the_primary(redis_sentinel):
    redis_sentinel.flush()
    try:
        source, median, failures = _learn_and_read_elsewhere(redis_sentinel.url, "lte/s-1", RedisOptions(namespace="t"))
        assert (source, failures) == ("client", 0) and 60.0 <= median <= 64.0
        with redis.Redis(port=redis_sentinel.primary_port()) as primary:
            state = primary.get("t:{client:lte/s-1}:leg")
            assert primary.info("replication")["role"] == "master"
        assert from_state(state, ReturnLegModel).samples == 25
    finally:
        redis_sentinel.flush()


def test_client_states_on_a_cluster_sit_on_their_own_slots_nodes(redis_cluster):
    """A profile store's namespace is hash-tagged on a Cluster ({modipick}); the client keys are not
    pulled into that slot: each one's tag is its client's, so clients spread over the primaries."""
    redis_cluster.flush()
    clients = [f"wifi/c-{i}" for i in range(12)]
    seed = redis_cluster.servers[-1].port  # any node: the client follows MOVED

    async def scenario():
        book = open_partitioned_book(f"redis+cluster://127.0.0.1:{seed}", {"namespace": "t"}, ReturnLegSettings())
        for client_id in clients:
            book.observe(client_id, 30.0, 45.0, None, "client")
        await book.drain()
        other = PartitionedLegBook(RedisClientLegStore.from_url(redis_cluster.url, RedisOptions(namespace="{t}")))
        states = [await other._store.load(c) for c in clients]
        writes, failures = book.writes, book.write_failures
        await book.stop()
        await other._store.close()
        return states, writes, failures

    try:
        states, writes, failures = asyncio.run(scenario())
        assert (writes, failures) == (len(clients), 0)
        assert all(from_state(s, ReturnLegModel).samples == 1 for s in states)
        by_node = redis_cluster.keys_by_node()
        for client_id in clients:
            key = f"t:{{client:{client_id}}}:leg"
            assert key in by_node[redis_cluster.slot_owner(key)]
        assert sum(1 for keys in by_node.values() if keys) >= 2  # spread, not one hot slot
    finally:
        redis_cluster.flush()


def test_a_class_pooled_on_a_cluster_sits_on_its_own_slots_node(redis_cluster):
    """Two replicas on a Cluster pool a class's legs (one script call on the class's slot each),
    and both decide with the pooled model."""
    redis_cluster.flush()

    async def scenario():
        books = [open_partitioned_book(redis_cluster.url, {"namespace": "t"}, ReturnLegSettings()) for _ in range(2)]
        for i in range(30):
            books[i % 2].observe(f"wifi/c-{i % 6}", 30.0, 45.0 + i % 3, None, "client")
        for book in (*books, books[0]):
            await book.share_classes()
        sources = [b.estimate("wifi/new", 30.0).source for b in books]
        for book in books:
            await book.stop()
        return sources, [b.class_share_failures for b in books]

    try:
        sources, failures = asyncio.run(scenario())
        assert sources == ["class", "class"] and failures == [0, 0]
        key = "t:{class:wifi}:legs"
        assert key in redis_cluster.keys_by_node()[redis_cluster.slot_owner(key)]
    finally:
        redis_cluster.flush()


def test_a_sentinel_failover_keeps_client_states_and_learning_resumes(tmp_path):
    """25 legs learned and replicated; the primary fails over. The new primary holds the 25; the
    same book keeps learning and its writes reach the new primary (the old one takes writes until
    Sentinel demotes it, ~10-15 s: those are lost with it, the documented price of asynchronous
    writes); from then on every confirmed leg is there."""
    group = SentinelGroup(tmp_path).start()
    client_id = "lte/failover"
    options = RedisOptions(namespace="t", timeouts=1.0, retries=2)
    key = "t:{client:lte/failover}:leg"

    def samples_on_primary() -> int:
        with redis.Redis(port=group.primary_port(), socket_timeout=2) as primary:
            state = primary.get(key)
        return 0 if state is None else from_state(state, ReturnLegModel).samples

    async def learn_until(book, done, timeout_s: float = 60.0) -> tuple[int, int]:
        sent = confirmed = 0
        deadline = time.monotonic() + timeout_s
        while not await asyncio.to_thread(done, confirmed):
            assert time.monotonic() < deadline, (sent, confirmed)
            sent += 1
            try:
                await book.learn(_Report(client_id, 40.0, 61.0, None))
                confirmed += 1
            except StoreError:
                await asyncio.sleep(0.1)
        return sent, confirmed

    async def scenario():
        book = PartitionedLegBook(RedisClientLegStore.from_url(group.url, options))
        for i in range(25):
            await book.learn(_Report(client_id, 40.0, 60.0 + (i % 5), None))
        with redis.Redis(port=group.primary_port()) as primary:
            assert primary.wait(1, 5000) == 1  # the replica holds them before the failover
        old_primary = group.primary_port()
        await asyncio.to_thread(group.failover)
        await asyncio.to_thread(wait_until, lambda: group.primary_port() != old_primary,
                                "the sentinel to name the new primary", 60)
        promoted = await asyncio.to_thread(samples_on_primary)
        await learn_until(book, lambda _: samples_on_primary() > promoted)  # writes reach the new primary
        base = await asyncio.to_thread(samples_on_primary)
        sent, confirmed = await learn_until(book, lambda confirmed: confirmed >= 10)
        reader = RedisClientLegStore.from_url(group.url, options)
        final = from_state(await reader.load(client_id), ReturnLegModel).samples
        await reader.close()
        await book._store.close()
        return promoted, base, sent, confirmed, final

    try:
        promoted, base, sent, confirmed, final = asyncio.run(scenario())
        assert promoted == 25
        assert base + confirmed <= final <= base + sent, (base, sent, confirmed, final)
    finally:
        group.stop()
