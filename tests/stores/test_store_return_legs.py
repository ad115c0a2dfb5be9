"""The return-leg stream contract (ReturnLegLog), on the in-memory store and a real redis-server."""

from __future__ import annotations

import math

import pytest
import redis

from modipick.stores import RedisProfileStore, ReturnLegLog, ReturnLegSample


def legs(n: int, start: int = 0, client: str = "lte/phone-1") -> list[ReturnLegSample]:
    owners = ("", "client", "class")
    return [ReturnLegSample(client, 10.0 + i / 3, 40.0 + i * 0.1, None if i % 3 == 0 else 35.0 + i / 7, owners[i % 3])
            for i in range(start, start + n)]


def read_all(store, after: str = "0", page: int = 7) -> tuple[list[ReturnLegSample], str]:
    got = []
    while True:
        result = store.read_return_legs(after, page)
        got += [sample for _, sample in result.entries]
        after = result.last_id
        if result.read < page:
            return got, after


def test_both_stores_implement_the_stream(store):
    assert isinstance(store, ReturnLegLog)


def test_appended_legs_read_back_in_order_bit_exact(store):
    written = legs(20)
    written[1] = ReturnLegSample("", 0.0, 0.1 + 0.2, 1e-300, "client")  # anonymous, awkward floats
    assert store.append_return_legs(written[:12], keep=1000) == 12
    assert store.append_return_legs(written[12:], keep=1000) == 8
    got, last = read_all(store)
    assert got == written
    assert store.read_return_legs(last, 10).entries == []  # nothing after the last id
    assert store.read_return_legs(last, 10).last_id == last


def test_reading_after_an_id_pages_through_without_gaps_or_repeats(store):
    store.append_return_legs(legs(10), keep=1000)
    first = store.read_return_legs("0", 4)
    assert (first.read, len(first.entries)) == (4, 4)
    ids = [entry_id for entry_id, _ in first.entries]
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-")))) and len(set(ids)) == 4
    rest, _ = read_all(store, first.last_id, page=3)
    assert [s for _, s in first.entries] + rest == legs(10)
    store.append_return_legs(legs(2, start=10), keep=1000)  # a reader that was done sees only the new ones
    assert [s for _, s in store.read_return_legs(first.last_id, 100).entries] == legs(12)[4:]


def test_keep_bounds_the_stream_and_keeps_the_newest(store):
    for start in range(0, 3000, 300):
        store.append_return_legs(legs(300, start=start), keep=500)
    got, _ = read_all(store, page=1000)
    # Redis trims approximately (whole macro nodes): never fewer than `keep`, far fewer than written
    assert 500 <= len(got) < 3000
    assert got == legs(3000)[-len(got):]


def test_a_bad_sample_rejects_the_whole_batch(store):
    for bad in (ReturnLegSample("c", 1.0, math.nan), ReturnLegSample("c", -1.0, 2.0),
                ReturnLegSample("c", 1.0, 2.0, math.inf), ReturnLegSample("c", 1.0, 2.0, owner="server"),
                ReturnLegSample("x" * 300, 1.0, 2.0)):
        with pytest.raises(ValueError):
            store.append_return_legs([*legs(2), bad], keep=100)
    with pytest.raises(ValueError):
        store.append_return_legs(legs(1), keep=0)
    assert store.read_return_legs("0", 10).entries == []


def test_an_empty_stream_reads_empty(store):
    page = store.read_return_legs("0", 10)
    assert (page.entries, page.last_id, page.read, page.skipped) == ([], "0", 0, 0)
    assert store.append_return_legs([], keep=10) == 0


def test_redis_skips_entries_that_are_not_return_legs_and_reads_on(redis_url):
    store = RedisProfileStore(redis_url)
    raw = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        store.append_return_legs(legs(2), keep=100)
        raw.xadd(store.legs_key, {"c": "x", "u": "not a number", "r": "1"})
        raw.xadd(store.legs_key, {"hello": "world"})
        store.append_return_legs(legs(1, start=2), keep=100)
        page = store.read_return_legs("0", 3)  # the page ends on garbage: last_id still moves past it
        assert ([s for _, s in page.entries], page.read, page.skipped) == (legs(2), 3, 1)
        page = store.read_return_legs(page.last_id, 10)
        assert ([s for _, s in page.entries], page.read, page.skipped) == (legs(3)[2:], 2, 1)
        assert raw.type(store.legs_key) == "stream" and store.legs_key == "modipick:return_legs"
    finally:
        raw.close()
        store.close()
