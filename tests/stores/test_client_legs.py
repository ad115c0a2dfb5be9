"""Per-client return-leg state in a real Redis: one hash-tagged key per client with a TTL, reports
appended as legs and folded into the state every few, and replicas learning one client's reports
at once lose none of them."""

from __future__ import annotations

import asyncio
import random

import redis
from redis.crc import key_slot

from modipick.core.returnleg_state import encode_leg, from_state, generation_of, pending_legs
from modipick.core.returnleg import ReturnLegModel
from modipick.selector.client_legs import PartitionedLegBook, _Report
from modipick.selector.returnlegs import ReturnLegSettings
from modipick.stores.client_legs import (DEFAULT_FOLD_LEGS, FOLD_LEGS, MAX_PENDING_LEGS, MAX_VALUE_BYTES,
                                        RedisClientLegStore)
from modipick.stores.redis_options import RedisOptions


def leg_store(url: str, **options) -> RedisClientLegStore:
    ttl_s = options.pop("ttl_s", 3600.0)
    fold_legs = options.pop("fold_legs", DEFAULT_FOLD_LEGS)
    return RedisClientLegStore.from_url(url, RedisOptions(**{"namespace": "t", **options}), ttl_s=ttl_s,
                                        fold_legs=fold_legs)


def test_state_key_is_hash_tagged_and_expires(redis_url):
    async def scenario():
        store = leg_store(redis_url, ttl_s=60.0)
        book = PartitionedLegBook(store)
        await book.learn(_Report("lte/phone-1", 50.0, 70.0, None))
        await store.close()

    asyncio.run(scenario())
    sync = redis.Redis.from_url(redis_url)
    keys = [k.decode() for k in sync.keys("t:*")]
    assert keys == ["t:{client:lte/phone-1}:leg"]
    assert 55_000 < sync.pttl(keys[0]) <= 60_000
    # the Cluster slot is the hash tag's: every key of the client would sit on one node
    assert key_slot(keys[0].encode()) == key_slot(b"client:lte/phone-1") == key_slot(b"x{client:lte/phone-1}y")
    assert len(sync.get(keys[0])) <= 1024
    # a namespace hash-tagged for the profile keys' slot does not pull every client into that slot
    assert RedisClientLegStore(sync, namespace="{t}").key("c") == "t:{client:c}:leg"
    sync.close()


def test_two_replicas_learning_one_client_at_once_lose_nothing(redis_url):
    reports_each = 60

    async def scenario():
        stores = [leg_store(redis_url) for _ in range(2)]
        books = [PartitionedLegBook(s, ReturnLegSettings(), cache_ttl_s=60.0) for s in stores]
        rng = random.Random(4)
        for book in books:  # both hold the (empty) state: every write races the other replica's
            await book.prefetch("c-1")

        async def replica(book: PartitionedLegBook) -> None:
            for _ in range(reports_each):
                await book.learn(_Report("c-1", rng.uniform(20, 80), rng.uniform(20, 80), None))

        await asyncio.gather(*(replica(b) for b in books))
        state = await stores[0].load("c-1")
        for s in stores:
            await s.close()
        return state, sum(b.writes for b in books)

    state, writes = asyncio.run(scenario())
    model = from_state(state, ReturnLegModel)
    assert model.samples == 2 * reports_each  # every report learned once (the legs pending included)
    assert writes == 2 * reports_each and len(state) <= MAX_VALUE_BYTES


def _sent(sync: redis.Redis) -> tuple[int, int]:
    """(EVALSHA calls, GET calls): what a replica sends (a script's own GETs count as GET too)."""
    stats = sync.info("commandstats")
    return tuple(stats.get(f"cmdstat_{c}", {}).get("calls", 0) for c in ("evalsha", "get"))


def test_a_report_is_one_script_call_and_every_fourth_folds(own_redis):
    """A replica that holds nothing of the client learns its report with one call and no read;
    the legs wait after the state until fold_legs are pending, and the replica whose append got
    there writes them into a new state."""
    redis_url = own_redis.url  # a server of its own: its command counts are this test's alone
    sync = redis.Redis.from_url(redis_url)
    sync.script_load(FOLD_LEGS)  # as other replicas would have: no NOSCRIPT round in the counts

    async def scenario():
        creator = PartitionedLegBook(leg_store(redis_url))
        await creator.learn(_Report("lte/c-5", 40.0, 60.0, None))  # the first report creates the state
        book = PartitionedLegBook(leg_store(redis_url, fold_legs=4))
        await book.learn(_Report("lte/c-5", 40.0, 61.0, None))  # a registration of the script, once
        seen = []
        for i in range(3):
            before = await asyncio.to_thread(_sent, sync)
            await book.learn(_Report("lte/c-5", 41.0 + i, 62.0 + i, 61.0))
            after = await asyncio.to_thread(_sent, sync)
            value = await book._store.load("lte/c-5")
            seen.append((after[0] - before[0], after[1] - before[1], pending_legs(value)))
        for b in (creator, book):
            await b._store.close()
        return seen, book.folds, book.loads, value

    seen, folds, loads, value = asyncio.run(scenario())
    # per report: scripts called, GETs (each script's own one), legs pending after it
    assert seen == [(1, 1, 2), (1, 1, 3), (2, 2, 0)] and folds == 1 and loads == 0
    model = from_state(value, ReturnLegModel)
    assert model.samples == 5 and model.last_return_ms == 64.0
    sync.close()


def test_a_replica_that_holds_what_is_stored_writes_the_new_state_in_its_place(own_redis):
    """The replica that read the client's value with its decision sends the new state with the leg:
    it replaces the value in the same call (nothing pending, no fold). Once another replica
    appended a leg, what it holds is not what is stored: its next leg is appended, and the fold
    that follows decodes the stored value, so the other replica's leg is in the state."""
    redis_url = own_redis.url  # a server of its own: its command counts are this test's alone
    sync = redis.Redis.from_url(redis_url)

    async def scenario():
        a = PartitionedLegBook(leg_store(redis_url), clock=lambda: 0.0)  # what it holds stays fresh
        b = PartitionedLegBook(leg_store(redis_url))
        await a.learn(_Report("lte/c-8", 40.0, 60.0, None))
        await a.prefetch("lte/c-8")
        before = await asyncio.to_thread(_sent, sync)
        for i in range(3):
            await a.learn(_Report("lte/c-8", 40.0, 61.0 + i, None))
        after = await asyncio.to_thread(_sent, sync)
        replaced = pending_legs(await a._store.load("lte/c-8"))
        await b.learn(_Report("lte/c-8", 40.0, 90.0, None))  # b holds nothing: appended
        for i in range(3):
            await a.learn(_Report("lte/c-8", 40.0, 64.0 + i, None))
        value = await a._store.load("lte/c-8")
        for book in (a, b):
            await book._store.close()
        return (after[0] - before[0], after[1] - before[1]), replaced, a.folds, value

    calls, replaced, folds, value = asyncio.run(scenario())
    assert calls == (3, 3) and replaced == 0  # one script call per leg (its GET inside), nothing pending
    assert folds == 1 and pending_legs(value) == 0
    model = from_state(value, ReturnLegModel)
    assert model.samples == 8  # 1 + 3 + 3 of a and the one of b
    sync.close()


def test_a_fold_that_loses_its_race_loses_no_leg(redis_url):
    """Two replicas read the same value to fold it; a leg is appended in between. The first fold
    keeps that leg after its state; the second finds another generation and writes nothing."""
    async def scenario():
        store = leg_store(redis_url, fold_legs=MAX_PENDING_LEGS)
        book = PartitionedLegBook(store, clock=lambda: 0.0)  # what it holds stays fresh
        for i in range(3):
            await book.learn(_Report("wifi/c-6", 30.0, 50.0 + i, None))
        folding = leg_store(redis_url, fold_legs=1)
        read = (await folding.write_leg("wifi/c-6", encode_leg(30.0, 53.0, None))).value
        await folding.close()
        assert (await store.write_leg("wifi/c-6", encode_leg(30.0, 54.0, None))).stored
        folded = from_state(read, ReturnLegModel)
        first = await store.fold("wifi/c-6", read, _state(folded, generation_of(read) + 1))
        second = await store.fold("wifi/c-6", read, _state(folded, generation_of(read) + 1))
        value = await store.load("wifi/c-6")
        await store.close()
        return first, second, value

    first, second, value = asyncio.run(scenario())
    assert (first, second) == (1, None)  # the first kept the leg appended after its read
    model = from_state(value, ReturnLegModel)
    assert pending_legs(value) == 1 and model.samples == 5 and model.last_return_ms == 54.0


def _state(model: ReturnLegModel, generation: int) -> bytes:
    from modipick.core.returnleg_state import to_state

    return to_state(model, generation)


def test_a_value_whose_folds_never_came_stays_under_a_kilobyte(redis_url):
    """Legs pending up to the cap (every fold lost, say): the value still takes <= 1 KB of Redis
    memory, and the next report folds before it appends."""
    async def scenario():
        store = leg_store(redis_url, fold_legs=MAX_PENDING_LEGS)
        book = PartitionedLegBook(store, clock=lambda: 0.0)  # what it holds stays fresh
        for i in range(40):  # a full sketch: the longest state
            await book.learn(_Report("3g/c-7", 80.0 + i, 120.0 + i, None))
        for i in range(MAX_PENDING_LEGS):
            assert (await store.write_leg("3g/c-7", encode_leg(80.0, 121.0, None))).pending == i + 1
        full = await store.load("3g/c-7")
        memory = await store._client.memory_usage(store.key("3g/c-7"))
        await book.learn(_Report("3g/c-7", 80.0, 130.0, None))
        value = await store.load("3g/c-7")
        await store.close()
        return full, memory, value, book.folds

    full, memory, value, folds = asyncio.run(scenario())
    assert memory <= 1024 and pending_legs(full) == MAX_PENDING_LEGS
    assert folds == 1 and pending_legs(value) == 0
    model = from_state(value, ReturnLegModel)
    assert model.samples == 40 + MAX_PENDING_LEGS + 1 and model.last_return_ms == 130.0


def test_a_replica_without_the_state_reads_it_with_the_decision(redis_url):
    async def scenario():
        a = PartitionedLegBook(leg_store(redis_url))
        b = PartitionedLegBook(leg_store(redis_url))
        for i in range(25):
            await a.learn(_Report("wifi/c-2", 40.0 + i, 60.0 + (i % 5), None))
        before = b.estimate("wifi/c-2", 50.0).source
        await b.prefetch("wifi/c-2")
        after = b.estimate("wifi/c-2", 50.0)
        for book in (a, b):
            await book._store.close()
        return before, after

    before, after = asyncio.run(scenario())
    assert before == "prior"
    assert after.source == "client" and 60.0 <= after.estimate.quantile(0.5) <= 64.0


def test_after_a_failed_read_decisions_stop_reading_for_a_while():
    """Redis unreachable: the first decision tries and fails; those within READ_PAUSE_S do not try
    (no decision waits for a Redis that hangs), the first one after it tries again."""
    from fixtures_redis import free_port
    from modipick.selector.client_legs import READ_PAUSE_S

    now = [100.0]

    async def scenario():
        store = leg_store(f"redis://127.0.0.1:{free_port()}/0", timeouts=0.5, retries=0)
        book = PartitionedLegBook(store, clock=lambda: now[0])
        tried = []
        for step in (0.0, READ_PAUSE_S / 2, READ_PAUSE_S * 0.6, READ_PAUSE_S + 0.01):
            now[0] = 100.0 + step
            await book.prefetch("lte/c-9")
            tried.append(store.failures.unavailable)
        decided = book.estimate("lte/c-9", 40.0).source
        await store.close()
        return tried, book.load_failures, decided

    tried, failures, decided = asyncio.run(scenario())
    assert tried == [1, 1, 1, 2]  # Redis was asked at the first decision and after the pause only
    assert failures == 4 and decided == "prior"


def test_redis_away_costs_learning_never_a_decision(own_redis):
    """Redis killed: decisions answer from the class model or the prior (reads counted as failed),
    reports are dropped and counted; Redis back (empty), the replica stores the model it holds."""
    async def scenario():
        book = PartitionedLegBook(leg_store(own_redis.url, timeouts=0.5, retries=0))
        book.start()
        for i in range(3):
            book.observe("lte/c-3", 40.0, 60.0 + i, None, "client")
        await book.drain()
        written = book.writes
        own_redis.stop()
        await book.prefetch("lte/c-3")
        away = book.estimate("lte/c-3", 40.0)
        book.observe("lte/c-3", 40.0, 61.0, None, "client")
        await book.drain()
        failures = (book.load_failures, book.write_failures)
        own_redis.start()
        book.observe("lte/c-3", 40.0, 62.0, None, "client")
        await book.drain()
        state = await book._store.load("lte/c-3")
        await book.stop()
        return written, away, failures, state

    written, away, failures, state = asyncio.run(scenario())
    assert written == 3
    assert away.source == "prior" and away.estimate.quantile(0.5) == 40.0  # mirror: R = upload
    assert failures == (1, 1)
    # Redis came back empty: the replica stores the model it holds (the leg whose write failed included)
    assert from_state(state, ReturnLegModel).samples == 5


def test_partitioned_sharing_flags(capsys):
    import pytest

    from modipick.selector.__main__ import parse_settings

    settings = parse_settings(["--return-leg-sharing", "partitioned", "--client-leg-ttl-s", "600",
                               "--client-leg-cache-s", "0.5"], environ={})[0]
    assert (settings.return_legs.sharing, settings.client_leg_ttl_s, settings.client_leg_cache_s) == (
        "partitioned", 600.0, 0.5)
    with pytest.raises(SystemExit) as exit_:
        parse_settings(["--return-leg-sharing", "partitioned", "--redis-url", "memory"], environ={})
    assert exit_.value.code == 2 and "needs a Redis store" in capsys.readouterr().err


def _class_reports(books: list[PartitionedLegBook], reports: int, clients: int = 6) -> None:
    """`reports` legs of ~60 ms from `clients` lte clients, round robin over the replicas `books`."""
    for i in range(reports):
        books[i % len(books)].observe(f"lte/c-{i % clients}", 40.0 + i % 7, 60.0 + i % 5, None, "client")


def test_replicas_pool_a_class_and_are_ready_when_one_replica_alone_would_be(redis_url):
    """28 reports over 4 replicas (7 each, a class needs 25): apart, no replica's class model is ready;
    sharing their legs, every one of them is after two exchanges, and a replica started afterwards
    is after its first exchange once it decided for the class."""
    async def scenario(share_s: float):
        books = [PartitionedLegBook(leg_store(redis_url), class_share_s=share_s) for _ in range(4)]
        _class_reports(books, 28)
        for _ in range(2):
            for book in books:
                if share_s:
                    await book.share_classes()
        late = PartitionedLegBook(leg_store(redis_url), class_share_s=share_s)
        late.estimate("lte/c-0", 45.0)  # its first decision for the class: from now on it exchanges its legs
        if share_s:
            await late.share_classes()
        sources = [b.estimate("lte/new-phone", 45.0) for b in [*books, late]]
        for book in [*books, late]:
            await book._store.close()
        return sources, [b.class_models_taken for b in [*books, late]], books[0].class_legs_shared

    apart, _, _ = asyncio.run(scenario(0.0))
    assert {s.source for s in apart} == {"prior"}
    sync = redis.Redis.from_url(redis_url)
    assert sync.keys("t:{class:*") == []  # nothing shared when sharing is off
    pooled, taken, shared = asyncio.run(scenario(0.5))
    assert {s.source for s in pooled} == {"class"}
    assert taken == [1, 1, 1, 1, 1] and shared == 7
    assert all(60.0 <= s.estimate.quantile(0.5) <= 64.0 for s in pooled)
    key = "t:{class:lte}:legs"
    assert sync.llen(key) == 28 and 3_500_000 < sync.pttl(key) <= 3_600_000
    assert key_slot(key.encode()) == key_slot(b"class:lte")
    sync.close()


def test_a_ready_class_shares_a_few_legs_and_the_list_keeps_the_newest(redis_url):
    from modipick.selector.client_legs import CLASS_LEGS_WHEN_READY

    window = ReturnLegSettings().window

    async def scenario():
        book = PartitionedLegBook(leg_store(redis_url))
        _class_reports([book], 30)  # ready on its own
        await book.share_classes()
        first = book.class_legs_shared
        _class_reports([book], 10)
        await book.share_classes()
        legs = [bytes([1]) + bytes(24) + b"lte/x"] * (window + 50)
        await book._store.push_class_legs("lte", legs, keep=window)
        await book._store.close()
        return first, book.class_legs_shared - first

    first, then = asyncio.run(scenario())
    assert first == 24  # every leg while the class was not ready (the 25th made it ready), then none
    assert then == CLASS_LEGS_WHEN_READY
    sync = redis.Redis.from_url(redis_url)
    assert sync.llen("t:{class:lte}:legs") == window
    sync.close()


def test_unreadable_class_legs_are_counted_and_skipped(redis_url):
    sync = redis.Redis.from_url(redis_url)
    sync.rpush("t:{class:lte}:legs", b"\x09garbage-from-another-version", b"short")

    async def scenario():
        books = [PartitionedLegBook(leg_store(redis_url)) for _ in range(2)]
        _class_reports(books, 30)
        for book in books:
            await book.share_classes()
        await books[0].share_classes()
        for book in books:
            await book._store.close()
        return [b.estimate("lte/new", 45.0).source for b in books], books[0].undecodable

    sources, undecodable = asyncio.run(scenario())
    assert sources == ["class", "class"]
    assert undecodable == 4  # the two bad entries, at each of the first replica's two reads
    sync.close()


def test_class_sharing_with_redis_away_is_counted_and_learning_goes_on(own_redis):
    """Redis stopped: the exchange fails and is counted (its legs are not shared), the class is
    learned from this replica's reports; Redis back, the next exchanges share again."""
    async def until(done) -> None:
        for _ in range(250):
            if done():
                return
            await asyncio.sleep(0.02)

    async def scenario():
        book = PartitionedLegBook(leg_store(own_redis.url, timeouts=0.5, retries=0), class_share_s=0.05)
        own_redis.stop()
        book.start()
        _class_reports([book], 30)
        await until(lambda: book.class_share_failures)
        source = book.estimate("lte/new", 45.0).source
        own_redis.start()
        _class_reports([book], 3)
        await until(lambda: book.class_legs_shared)
        await book.stop()
        return book.class_share_failures, source, book.class_legs_shared

    failures, source, shared = asyncio.run(scenario())
    assert failures >= 1 and source == "class" and shared == 3
