"""The profile-store contract every backend implements, and the argument checks they share.

Writes on an unknown (name, version) never create it: observations and outcomes for a model that
is not registered (or was deregistered meanwhile) are rejected and reported through the return value.

Both stores also implement `ReturnLegLog`: the return-leg samples the Profiler appends and every
Selector replica reads, in one order (modipick.selector.leg_stream).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from modipick.core import ModelProfile

STATES = frozenset({"loading", "warming", "eligible", "failing"})

Observation = tuple[str, int, float]  # (model name, version, latency in ms)


@runtime_checkable
class ProfileStore(Protocol):
    def load_all(self) -> list[ModelProfile]:
        """Every registered profile, sorted by (name, version), read in one round trip."""

    def register(self, profile: ModelProfile) -> bool:
        """Create the profile, or update declared accuracy and state keeping learned stats (and the
        input size, unless the profile states one). Returns True when it was created."""

    def deregister(self, name: str, version: int) -> bool:
        """Remove the profile; True if it existed."""

    def observe_many(self, observations: Iterable[Observation], *, alpha: float,
                     now: float | None = None) -> int:
        """Apply latency observations in order (EWMA, modipick.core.ewma_step), atomically as one
        batch; returns how many were accepted (those for unknown models are rejected)."""

    def record_outcome(self, name: str, version: int, correct: bool) -> bool:
        """Count one served request with known ground truth; False if the model is unknown."""

    def set_state(self, name: str, version: int, state: str) -> bool:
        """Set the lifecycle state; False if the model is unknown."""

    def reseed(self, name: str, version: int, mean_ms: float, var_ms2: float, now: float | None = None) -> bool:
        """Replace the latency mean and variance at once (the Profiler's change detector, after a
        step change), keeping the sample count (at least 1, so the next observation is an EWMA step
        from the new seed); False if the model is unknown."""

    def close(self) -> None:
        """Release connections; the store is unusable afterwards."""


@runtime_checkable
class AsyncProfileStore(Protocol):
    """ProfileStore for code on an event loop: the same calls and contract, awaited (no thread hop)."""

    async def load_all(self) -> list[ModelProfile]: ...

    async def register(self, profile: ModelProfile) -> bool: ...

    async def deregister(self, name: str, version: int) -> bool: ...

    async def observe_many(self, observations: Iterable[Observation], *, alpha: float,
                           now: float | None = None) -> int: ...

    async def record_outcome(self, name: str, version: int, correct: bool) -> bool: ...

    async def set_state(self, name: str, version: int, state: str) -> bool: ...

    async def reseed(self, name: str, version: int, mean_ms: float, var_ms2: float,
                     now: float | None = None) -> bool: ...

    async def close(self) -> None: ...


LEG_OWNERS = ("", "client", "class")
MAX_CLIENT_ID_CHARS = 256


@dataclass(frozen=True, slots=True)
class ReturnLegSample:
    """One reply leg a Selector derived from an outcome report (modipick.selector.outcomes), with
    what its client's return-leg model needs to learn it exactly as the deciding replica would."""

    client_id: str
    upload_ms: float
    return_ms: float
    basis_ms: float | None = None  # the last leg the decision's estimate used (None: a prior decided)
    owner: str = ""                # whose model's leg basis_ms is: "client" | "class" | ""


@dataclass(frozen=True, slots=True)
class ReturnLegPage:
    """What one read of the return-leg stream gave: entries (id, sample) in stream order, the id
    to read after next time (past undecodable entries too), and how many were undecodable."""

    entries: list[tuple[str, ReturnLegSample]]
    last_id: str
    read: int        # stream entries consumed (decoded or not)
    skipped: int = 0


@runtime_checkable
class ReturnLegLog(Protocol):
    """A bounded, append-only stream of return-leg samples with one global order: every reader
    gets the same samples in the same order (the Selectors' shared return-leg models)."""

    def append_return_legs(self, samples: Sequence[ReturnLegSample], *, keep: int) -> int:
        """Append in order, atomically as one batch; keep about the newest `keep` entries (Redis
        trims approximately, never below `keep`). Returns how many were appended."""

    def read_return_legs(self, after: str, count: int) -> ReturnLegPage:
        """Up to `count` entries after id `after` ("0": from the oldest kept), oldest first."""


@runtime_checkable
class AsyncReturnLegLog(Protocol):
    """ReturnLegLog, awaited."""

    async def append_return_legs(self, samples: Sequence[ReturnLegSample], *, keep: int) -> int: ...

    async def read_return_legs(self, after: str, count: int) -> ReturnLegPage: ...


@runtime_checkable
class ProfileLegStore(ProfileStore, ReturnLegLog, Protocol):
    """A profile store with its return-leg stream: what every backend here implements, and what the
    wrappers around one (error counting, recovery, the Selector's guard) forward."""


@runtime_checkable
class AsyncProfileLegStore(AsyncProfileStore, AsyncReturnLegLog, Protocol):
    """ProfileLegStore, awaited."""


def check_leg_samples(samples: Iterable[ReturnLegSample]) -> list[ReturnLegSample]:
    """Validate a whole batch before any of it is appended."""
    checked = list(samples)
    for index, s in enumerate(checked):
        for label, value in (("upload_ms", s.upload_ms), ("return_ms", s.return_ms),
                             ("basis_ms", 0.0 if s.basis_ms is None else s.basis_ms)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"return leg {index}: {label} must be a finite number of ms >= 0, got {value!r}")
        if s.owner not in LEG_OWNERS:
            raise ValueError(f"return leg {index}: owner must be one of {LEG_OWNERS}, got {s.owner!r}")
        if len(s.client_id) > MAX_CLIENT_ID_CHARS:
            raise ValueError(f"return leg {index}: client_id longer than {MAX_CLIENT_ID_CHARS} characters")
    return checked


def check_keep(keep: int) -> int:
    if int(keep) < 1:
        raise ValueError(f"keep must be >= 1 entries, got {keep!r}")
    return int(keep)


def check_alpha(alpha: float) -> float:
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha must be in (0, 1], got {alpha!r}")
    return float(alpha)


def check_state(state: str) -> str:
    if state not in STATES:
        raise ValueError(f"unknown model state {state!r}; expected one of {sorted(STATES)}")
    return state


def check_observations(observations: Iterable[Observation]) -> list[tuple[str, int, float]]:
    """Validate a whole batch before any of it is applied, so a bad item never half-applies a batch."""
    checked = []
    for index, (name, version, ms) in enumerate(observations):
        ms = float(ms)
        if not math.isfinite(ms) or ms < 0:
            raise ValueError(f"observation {index} ({name}:{version}): latency must be a finite "
                             f"number of ms >= 0, got {ms!r}")
        checked.append((name, int(version), ms))
    return checked


def check_reseed(mean_ms: float, var_ms2: float) -> tuple[float, float]:
    mean, var = float(mean_ms), float(var_ms2)
    if not (math.isfinite(mean) and mean >= 0):
        raise ValueError(f"re-seeded mean must be a finite number of ms >= 0, got {mean_ms!r}")
    if not (math.isfinite(var) and var >= 0):
        raise ValueError(f"re-seeded variance must be a finite number of ms^2 >= 0, got {var_ms2!r}")
    return mean, var


def sorted_profiles(profiles: Sequence[ModelProfile]) -> list[ModelProfile]:
    return sorted(profiles, key=lambda p: (p.name, p.version))
