"""Shared return legs at unit level: shared books, the stream feed, how sharing is chosen, the flag."""

from __future__ import annotations

import asyncio
import random

import pytest

from modipick.selector.leg_stream import ReturnLegFeed, resolve_sharing
from modipick.selector.returnlegs import ReturnLegBook, ReturnLegSettings
from modipick.stores import (AsyncInMemoryProfileStore, AsyncRedisProfileStore, InMemoryProfileStore,
                             RedisProfileStore, ReturnLegSample)
from modipick.stores.redis_options import RedisOptions

CLIENTS = ["lte/a", "lte/b", "wifi/c", "wifi/d", "e"]


def stream(n: int, seed: int = 1) -> list[ReturnLegSample]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        client = CLIENTS[rng.randrange(len(CLIENTS))]
        owner = rng.choice(["", "client", "class"])
        out.append(ReturnLegSample(client, rng.uniform(2, 30), rng.lognormvariate(3.5, 0.5),
                                   None if owner == "" else rng.uniform(20, 60), owner))
    return out


def estimates(book: ReturnLegBook, clients=CLIENTS + ["lte/new", "other/x", ""]) -> list:
    return [(book.estimate(c, 12.0).estimate, book.estimate(c, 12.0).owner) for c in clients]


def test_shared_books_fed_one_stream_agree_whatever_requests_each_served():
    # (the mirror prior: a class of two clients never answers, and the `uploads` prior is each replica's own)
    settings = ReturnLegSettings(min_samples=5, clients=4, classes=2, prior="mirror")
    a, b = ReturnLegBook(settings, shared=True), ReturnLegBook(settings, shared=True)
    rng = random.Random(9)
    for sample in stream(400):
        a.apply(sample)
        b.apply(sample)
        # each replica serves different requests in between: they must not change what was learned
        for _ in range(3):
            a.estimate(rng.choice(CLIENTS + ["lte/zzz", "x/y"]), rng.uniform(1, 50))
        b.estimate("wifi/c", 3.0)
        b.observe("lte/a", 5.0, 500.0, None, "client")  # a local report: ignored by a shared book
    learned = [(e, o) for e, o in estimates(a) if e.offsets != (0.0,)]
    assert estimates(a) == estimates(b) and learned  # LRU eviction and the class cap alike too
    assert a.applied == b.applied == 400 and a.known_clients() == b.known_clients() == 4


def test_a_shared_book_learns_what_a_local_book_learns_from_the_same_reports():
    settings = ReturnLegSettings(min_samples=5)
    local, shared = ReturnLegBook(settings), ReturnLegBook(settings, shared=True)
    for raw in stream(300, seed=4):
        # a local replica: the decision's estimate, then the report's leg with that estimate's basis
        made = local.estimate(raw.client_id, raw.upload_ms)
        local.observe(raw.client_id, raw.upload_ms, raw.return_ms, made.estimate.basis_ms, made.owner)
        # a shared one: the same decision, its leg travels through the stream and comes back
        seen = shared.estimate(raw.client_id, raw.upload_ms)
        assert seen.estimate == made.estimate
        shared.apply(ReturnLegSample(raw.client_id, raw.upload_ms, raw.return_ms, seen.estimate.basis_ms,
                                     seen.owner if seen.estimate.basis_ms is not None else ""))
    assert estimates(local) == estimates(shared)


def test_a_shared_book_uses_the_prior_until_the_stream_taught_it():
    book = ReturnLegBook(ReturnLegSettings(min_samples=3), shared=True)
    assert book.estimate("lte/a", 7.0).estimate.quantile(0.5) == 7.0  # mirror prior
    assert book.known_clients() == 0  # estimating created nothing
    for i in range(30):  # three clients: enough for their class to decide for others
        book.apply(ReturnLegSample(f"lte/{'acd'[i % 3]}", 7.0, 50.0))
    got = book.estimate("lte/b", 7.0)  # a sibling: its class has learned
    assert got.owner == "class" and got.estimate.quantile(0.5) == pytest.approx(50.0)
    assert book.estimate("lte/a", 7.0).owner == "client"


def test_one_client_alone_never_makes_its_class_decide_for_others():
    book = ReturnLegBook(ReturnLegSettings(min_samples=3), shared=True)
    for _ in range(200):
        book.apply(ReturnLegSample("lte/a", 7.0, 5000.0))
    assert book.estimate("lte/a", 7.0).estimate.quantile(0.5) == pytest.approx(5000.0)  # its own model
    sibling = book.estimate("lte/b", 7.0)
    assert sibling.estimate.quantile(0.5) == 7.0  # still the prior: one client is no class
    assert book.capped() == 200 - ReturnLegSettings().class_cap


def run(coro):
    return asyncio.run(coro)


def test_the_feed_applies_the_stream_in_order_in_bounded_pages():
    store = InMemoryProfileStore()
    samples = stream(1000)
    store.append_return_legs(samples, keep=10_000)
    mine = ReturnLegBook(ReturnLegSettings(min_samples=5), shared=True)
    feed = ReturnLegFeed(AsyncInMemoryProfileStore(store), mine, page=64, max_pages=5, chunk=10)
    assert run(feed.pull()) == 320  # a long backlog is read over several refreshes
    while run(feed.pull()):
        pass
    assert feed.applied == mine.applied == 1000 and feed.last_id == "1000-0"
    reference = ReturnLegBook(ReturnLegSettings(min_samples=5), shared=True)
    for sample in samples:
        reference.apply(sample)
    assert estimates(mine) == estimates(reference)
    store.append_return_legs(stream(3, seed=2), keep=10_000)
    assert run(feed.pull()) == 3 and run(feed.pull()) == 0


def test_an_unreachable_store_is_counted_and_read_on_from_the_same_id():
    from fixtures_redis import free_port

    dead = AsyncRedisProfileStore(f"redis://127.0.0.1:{free_port()}/0", RedisOptions(retries=0, timeouts=0.5))
    feed = ReturnLegFeed(dead, ReturnLegBook(shared=True))
    feed.last_id = "17-0"

    async def two_pulls() -> list[int]:
        try:
            return [await feed.pull(), await feed.pull()]
        finally:
            await dead.close()

    assert run(two_pulls()) == [0, 0]
    assert (feed.failed_reads, feed.last_id, feed.applied) == (2, "17-0", 0) and "unavailable" in feed.last_error


def test_auto_partitions_by_client_on_redis_and_learns_locally_otherwise(redis_url):
    redis_store, memory = RedisProfileStore(redis_url), InMemoryProfileStore()
    sentinel, cluster = "redis+sentinel://127.0.0.1:26379/primary/0", "redis+cluster://127.0.0.1:7000"
    try:
        for url in (redis_url, sentinel, cluster, "REDISS://h:6380/0"):
            assert resolve_sharing("auto", learned=True, store_url=url, store=redis_store) == "partitioned"
        assert resolve_sharing("auto", learned=True, store_url="memory", store=memory) == "local"
        assert resolve_sharing("auto", learned=False, store_url=redis_url, store=redis_store) == "local"
        # the replicated stream and local learning by name
        assert resolve_sharing("store", learned=True, store_url=redis_url, store=redis_store) == "store"
        assert resolve_sharing("store", learned=True, store_url="memory", store=memory) == "store"
        assert resolve_sharing("local", learned=True, store_url=redis_url, store=redis_store) == "local"
        assert resolve_sharing("partitioned", learned=True, store_url=cluster, store=redis_store) == "partitioned"
        with pytest.raises(ValueError, match="return-leg stream"):
            resolve_sharing("store", learned=True, store_url=redis_url, store=object())
        with pytest.raises(ValueError, match="needs a Redis store URL, got 'memory'"):
            resolve_sharing("partitioned", learned=True, store_url="memory", store=memory)
    finally:
        redis_store.close()


def test_the_sharing_flag_and_its_environment_variable():
    from modipick.selector.__main__ import parse_settings

    assert parse_settings([], environ={})[0].return_legs.sharing == "auto"
    assert parse_settings(["--return-leg-sharing", "local"], environ={})[0].return_legs.sharing == "local"
    assert parse_settings([], environ={"MODIPICK_RETURN_LEG_SHARING": "store"})[0].return_legs.sharing == "store"
    with pytest.raises(SystemExit):
        parse_settings(["--return-leg-sharing", "everywhere"], environ={})
    with pytest.raises(ValueError, match="sharing"):
        ReturnLegSettings(sharing="everywhere")
