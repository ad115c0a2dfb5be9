"""Which policy serves a request: the configured default, or a per-request override by name.
Policy objects are built once (same parameters as the default) and reused."""

from __future__ import annotations

import hashlib
import random
from typing import Any, Callable

from modipick.core import Policy, make_policy
from modipick.core.policies import LIVE_POLICIES, Oracle
from modipick.selector.budget import RequestInvalid


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


def seeded_rng(seed: int) -> Callable[[str], random.Random]:
    """One RNG per request, drawn from (seed, request id): replicas with the same seed and the same
    profiles choose the same model for the same request, whatever order requests arrive in."""
    key = hashlib.blake2b(str(seed).encode(), digest_size=16).digest()

    def rng_for(request_id: str) -> random.Random:
        digest = hashlib.blake2b(request_id.encode(), digest_size=8, key=key).digest()
        return random.Random(int.from_bytes(digest, "big"))

    return rng_for
