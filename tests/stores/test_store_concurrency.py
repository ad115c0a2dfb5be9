"""Many writers on the same profiles lose no update: real processes on Redis (one server and a
3-primary Cluster), threads in memory."""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter

import pytest

from modipick.core import ModelProfile
from modipick.stores import InMemoryProfileStore, RedisProfileStore

from stores_writers import MODELS, write_batches, write_process

WRITERS = 8
BATCHES = 60
BATCH_SIZE = 25


def register_models(store) -> None:
    for name, version in MODELS:
        store.register(ModelProfile(name=name, version=version, declared_accuracy=70.0))


def assert_nothing_lost(store, reports: list[tuple[int, int, dict]]) -> None:
    assert sorted(worker for worker, _, _ in reports) == list(range(WRITERS))
    sent = sum((Counter(report) for _, _, report in reports), Counter())
    accepted = sum(count for _, count, _ in reports)
    assert accepted == sum(sent.values()) == WRITERS * BATCHES * BATCH_SIZE
    profiles = {(p.name, p.version): p for p in store.load_all()}
    assert {key: p.samples for key, p in profiles.items()} == dict(sent)
    for profile in profiles.values():
        assert 1.0 <= profile.mean_ms <= 100.0  # every observation was in [1, 100]


@pytest.mark.parametrize("topology", ["server", "cluster"])
def test_eight_writer_processes_lose_no_update(topology, request):
    if topology == "server":
        redis_url = request.getfixturevalue("redis_url")
    else:
        cluster = request.getfixturevalue("redis_cluster")
        cluster.flush()
        request.addfinalizer(cluster.flush)
        redis_url = cluster.url
    store = RedisProfileStore(redis_url)
    register_models(store)
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Barrier(WRITERS), ctx.Queue()
    writers = [ctx.Process(target=write_process, args=(redis_url, worker, BATCHES, BATCH_SIZE, start, results))
               for worker in range(WRITERS)]
    for process in writers:
        process.start()
    reports = [results.get(timeout=120) for _ in writers]
    for process in writers:
        process.join(timeout=30)
        assert process.exitcode == 0
    assert_nothing_lost(store, reports)
    store.close()


def test_eight_writer_threads_on_the_memory_store_lose_no_update():
    store = InMemoryProfileStore()
    register_models(store)
    start, reports = threading.Barrier(WRITERS), []

    def writer(worker: int) -> None:
        start.wait(timeout=60)
        reports.append((worker, *write_batches(store, worker, BATCHES, BATCH_SIZE)))

    threads = [threading.Thread(target=writer, args=(worker,)) for worker in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert_nothing_lost(store, reports)
