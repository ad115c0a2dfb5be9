"""Selection policies behind one Protocol, chosen by name."""

from __future__ import annotations

from typing import Any, Callable

from modipick.core.policies.base import Decision, Policy, Reason, Rng, fastest, runs_on_device
from modipick.core.policies.baselines import Oracle, PureRandom, RelatedAccurate, RelatedRandom
from modipick.core.policies.greedy import DynamicGreedy, StaticGreedy
from modipick.core.policies.modipick import ModiPick
from modipick.core.policies.risk_aware import RiskAware

_REGISTRY: dict[str, Callable[..., Policy]] = {
    StaticGreedy.name: StaticGreedy,
    DynamicGreedy.name: DynamicGreedy,
    ModiPick.name: ModiPick,
    PureRandom.name: PureRandom,
    RelatedRandom.name: RelatedRandom,
    RelatedAccurate.name: RelatedAccurate,
    Oracle.name: Oracle,
    RiskAware.name: RiskAware,
}

# Policies a live Selector may run (the oracle needs hindsight a server never has).
LIVE_POLICIES = tuple(n for n in _REGISTRY if n != Oracle.name)


def register_policy(name: str, factory: Callable[..., Policy]) -> None:
    _REGISTRY[name] = factory


def policy_names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def make_policy(name: str, **params: Any) -> Policy:
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown policy {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None
    import inspect

    accepted = inspect.signature(factory).parameters
    return factory(**{k: v for k, v in params.items() if k in accepted})


__all__ = ["Decision", "Policy", "Reason", "Rng", "fastest", "runs_on_device", "make_policy", "policy_names",
           "register_policy",
           "LIVE_POLICIES", "ModiPick", "StaticGreedy", "DynamicGreedy", "PureRandom", "RelatedRandom",
           "RelatedAccurate", "Oracle", "RiskAware"]
