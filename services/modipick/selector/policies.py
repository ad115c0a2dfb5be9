"""Which policy serves a request: the configured default, or a per-request override by name.
Policy objects are built once (same parameters as the default) and reused."""

from __future__ import annotations

import hashlib
import random
from typing import Any, Callable, Sequence, TypeVar

from modipick.core import Policy, make_policy
from modipick.core.policies import LIVE_POLICIES, Oracle, Rng
from modipick.selector.budget import RequestInvalid

T = TypeVar("T")


class PolicyBook:
    def __init__(self, default: str = "risk_aware", **params: Any) -> None:
        if default not in LIVE_POLICIES:
            raise ValueError(self._unknown(default))
        self._params = params
        self._policies: dict[str, Policy] = {name: make_policy(name, **params) for name in LIVE_POLICIES}
        self.default_name = default
        self.default = self._policies[default]

    def get(self, name: str) -> Policy:
        if not name:
            return self.default
        policy = self._policies.get(name)
        if policy is None:
            raise RequestInvalid("policy", self._unknown(name))
        return policy

    @staticmethod
    def _unknown(name: str) -> str:
        if name == Oracle.name:
            return (f"{name!r} needs hindsight and runs only in simulation; "
                    f"live policies: {', '.join(LIVE_POLICIES)}")
        shown = name if len(name) <= 64 else name[:64] + "..."  # echoed back: keep the message short
        return f"unknown policy {shown!r}; live policies: {', '.join(LIVE_POLICIES)}"


def seeded_rng(seed: int) -> Callable[[str], "RequestRandom"]:
    """One RNG per request, drawn from (seed, request id): replicas with the same seed and the same
    profiles choose the same model for the same request, whatever order requests arrive in."""
    key = hashlib.blake2b(str(seed).encode(), digest_size=16).digest()

    def seed_of(request_id: str) -> int:
        return int.from_bytes(hashlib.blake2b(request_id.encode(), digest_size=8, key=key).digest(), "big")

    def rng_for(request_id: str) -> RequestRandom:
        return RequestRandom(seed_of, request_id)

    return rng_for


class RequestRandom(Rng):
    """A request's `random.Random(seed_of(request_id))`, seeded at its first draw: most decisions
    draw nothing (one base model, or the fallback), and seeding costs more than the rest of a
    decision on a CPU that idled since the last request. Every draw is random.Random's own, on
    that one stream."""

    __slots__ = ("_seed_of", "_request_id", "_rng")

    def __init__(self, seed_of: Callable[[str], int], request_id: str) -> None:
        self._seed_of = seed_of
        self._request_id = request_id
        self._rng: random.Random | None = None

    def _seeded(self) -> random.Random:
        if self._rng is None:
            self._rng = random.Random(self._seed_of(self._request_id))
        return self._rng

    def random(self) -> float:
        return self._seeded().random()

    def uniform(self, a: float, b: float) -> float:
        return self._seeded().uniform(a, b)

    def choice(self, seq: Sequence[T]) -> T:
        return self._seeded().choice(seq)

    def randrange(self, start: int, stop: int | None = None, step: int = 1) -> int:
        return self._seeded().randrange(start, stop, step)
