"""The per-request RNG: the same draws as random.Random seeded from (seed, request id), seeded only
when a policy first draws."""

from __future__ import annotations

import random

from modipick.selector.policies import RequestRandom, seeded_rng


def test_draws_repeat_for_the_same_seed_and_request_and_differ_across_requests() -> None:
    first, again, other_seed = seeded_rng(3), seeded_rng(3), seeded_rng(4)
    draws = [first("req-1").random() for _ in range(3)]
    assert draws == [again("req-1").random() for _ in range(3)]  # a fresh RNG per call: the first draw
    assert first("req-1").random() != first("req-2").random()
    assert first("req-1").random() != other_seed("req-1").random()


def test_it_is_random_random_seeded_lazily() -> None:
    seeded = []

    def seed_of(request_id: str) -> int:
        seeded.append(request_id)
        return 12345

    rng = RequestRandom(seed_of, "req-9")
    assert seeded == []  # a decision that draws nothing never pays for seeding
    reference = random.Random(12345)
    assert [rng.random() for _ in range(4)] == [reference.random() for _ in range(4)]
    assert rng.uniform(1, 2) == reference.uniform(1, 2)  # the rest of random.Random, same stream
    assert seeded == ["req-9"]
