"""Writer processes for the concurrency test (a module, so `spawn` children can import it)."""

from __future__ import annotations

import random

from modipick.stores import make_store

MODELS = [("shared-a", 1), ("shared-b", 1), ("shared-b", 2)]


def write_batches(store, worker: int, batches: int, batch_size: int) -> tuple[int, dict]:
    """Send `batches` random batches; return (accepted, observations sent per model)."""
    rng = random.Random(worker)
    sent = {key: 0 for key in MODELS}
    accepted = 0
    for _ in range(batches):
        batch = [(*rng.choice(MODELS), rng.uniform(1.0, 100.0)) for _ in range(batch_size)]
        for name, version, _ms in batch:
            sent[(name, version)] += 1
        accepted += store.observe_many(batch, alpha=0.1)
    return accepted, sent


def write_process(url: str, worker: int, batches: int, batch_size: int, start, results) -> None:
    store = make_store(url)
    start.wait(timeout=60)  # all writers hit Redis at the same time
    accepted, sent = write_batches(store, worker, batches, batch_size)
    store.close()
    results.put((worker, accepted, sent))
