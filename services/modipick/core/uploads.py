"""Choosing what to upload: the input size (and so the payload) that gives a request the best
expected effective accuracy, decided together with the model the Selector will then pick.

A phone can send the same photo at several input sizes (a JPEG of a few KB at 96 px, a few
tens of KB at 224 px, the camera's 330 KB original). A bigger input costs upload time and opens
models that take that size; a smaller one leaves more of the SLA for execution. For each variant
the chooser asks the *same policy object* the Selector runs which model it would pick if the upload
took u ms, and scores that decision:

    value(v, u) = P(E_m + R <= SLA - u) * A(m) + (1 - P) * A_device

where A_device is the accuracy of the app's own model when it answers within the SLA (the SDK
starts it at the latest at SLA - T_D, so it does whenever T_D <= SLA), else 0. The upload time
u is uncertain, and the value is its expectation over a distribution of u, not a point estimate:
the estimate keeps the last `history` measured bandwidths (bytes over measured upload time) and
weighs the upload times they imply as a mixture of two views of the link, its current state (the
last `window`, each older one weighing `decay` times the next) and its spread over the last
minute or so (all `history` alike, `long_weight` of the total). On a steady link both agree; on a
bursty one the long view keeps the stalls and slow spells in the probability of meeting the SLA,
so one fast upload (a small payload landing in a burst) does not buy a size the link carries
only now and then. Without any measurement the chooser sends the menu's default size. Ties go
to the smaller payload.

Pure: no I/O, no clocks; the SDK, the simulator and (where it restricts candidates by input size)
the Selector run this same code.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from modipick.core.budget import Budget
from modipick.core.policies.base import Decision, Policy, runs_on_device
from modipick.core.policies.risk_aware import meet_probability
from modipick.core.profiles import Candidate
from modipick.core.returnleg import ReturnLegEstimate

_SQRT3 = math.sqrt(3.0)
DEFAULT_WINDOW = 4
DEFAULT_DECAY = 0.5  # the last upload counts as much as the three before it together, nearly
# 48 uploads (24 s at a request every 500 ms) weighing 60 %: the most SLA points at or above the
# best fixed size on the LTE, LTE driving, 3G and WiFi traces (docs/mobile.md)
DEFAULT_HISTORY = 48
DEFAULT_LONG_WEIGHT = 0.6
_U_STEP_MS = 0.5  # upload times closer than this share one decision of the policy


@dataclass(frozen=True, slots=True)
class UploadVariant:
    """One way to send the input: at `input_size` px (0: the original, whatever its size), which
    takes `payload_bytes`, and the models the server may run on it."""

    input_size: int
    payload_bytes: int
    models: tuple[Candidate, ...]

    def __post_init__(self) -> None:
        if self.input_size < 0:
            raise ValueError(f"input size must be >= 0 px, got {self.input_size!r}")
        if self.payload_bytes <= 0:
            raise ValueError(f"payload of the {self.input_size} px variant must be > 0 bytes, "
                             f"got {self.payload_bytes!r}")
        if not self.models:
            raise ValueError(f"the {self.input_size} px variant has no model to run")


@dataclass(frozen=True, slots=True)
class UploadMenu:
    variants: tuple[UploadVariant, ...]
    default_size: int  # sent while the client has no bandwidth estimate

    def __post_init__(self) -> None:
        if not self.variants:
            raise ValueError("an upload menu needs at least one variant")
        sizes = [v.input_size for v in self.variants]
        if len(set(sizes)) != len(sizes):
            raise ValueError(f"input sizes must be distinct, got {sizes}")
        if self.default_size not in sizes:
            raise ValueError(f"default size {self.default_size} is not on the menu ({sizes})")

    def variant(self, input_size: int) -> UploadVariant:
        for v in self.variants:
            if v.input_size == input_size:
                return v
        raise KeyError(input_size)

    @property
    def default(self) -> UploadVariant:
        return self.variant(self.default_size)


def models_for_size(models: Iterable[tuple[Candidate, int]], input_size: int) -> tuple[Candidate, ...]:
    """The models a server can run on an input of `input_size` px without upscaling it: those that
    take that size or less (it scales the input down to each model's size). 0 = the original: all."""
    return tuple(m for m, size in models if input_size == 0 or size <= input_size)


@dataclass(frozen=True, slots=True)
class BandwidthEstimate:
    """The last measured upload rates, in bytes per ms, oldest first; immutable (observe returns a
    new estimate). `base_ms` is the part of an upload that does not depend on its size
    (connection, request overhead), subtracted before a rate is taken and added back.

    Each remembered rate weighs (1 - long_weight) x its share of the recent view (the last
    `window`, each older one `decay` times the next) + long_weight x 1/n (all n alike)."""

    rates: tuple[float, ...] = ()
    window: int = DEFAULT_WINDOW
    base_ms: float = 0.0
    decay: float = DEFAULT_DECAY  # weight of each older rate relative to the next newer one (1: all alike)
    history: int = DEFAULT_HISTORY  # rates kept for the long view (at least `window` are)
    long_weight: float = DEFAULT_LONG_WEIGHT  # share of the long view (0: the recent view alone)

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError(f"window must be >= 1, got {self.window!r}")
        if self.history < 1:
            raise ValueError(f"history must be >= 1, got {self.history!r}")
        if not (math.isfinite(self.base_ms) and self.base_ms >= 0):
            raise ValueError(f"base latency must be >= 0 ms, got {self.base_ms!r}")
        if not 0.0 < self.decay <= 1.0:
            raise ValueError(f"decay must be in (0, 1], got {self.decay!r}")
        if not 0.0 <= self.long_weight <= 1.0:
            raise ValueError(f"long weight must be in [0, 1], got {self.long_weight!r}")

    @property
    def known(self) -> bool:
        return bool(self.rates)

    def observe(self, payload_bytes: int, upload_ms: float) -> "BandwidthEstimate":
        """A new estimate with the rate of one measured upload (ignored when it is not usable)."""
        transfer = upload_ms - self.base_ms
        if payload_bytes <= 0 or not math.isfinite(transfer):
            return self
        rate = payload_bytes / max(transfer, 0.1)  # an upload faster than 0.1 ms is a measurement floor
        kept = max(self.window, self.history)
        return BandwidthEstimate((*self.rates, rate)[-kept:], self.window, self.base_ms, self.decay,
                                 self.history, self.long_weight)

    def upload_ms(self, payload_bytes: int) -> tuple[float, ...]:
        """The upload times of `payload_bytes` the remembered rates imply (empty when unknown)."""
        base = self.base_ms
        return tuple(base + payload_bytes / r for r in self.rates)

    def weights(self) -> tuple[float, ...]:
        """Weight of each remembered rate (oldest first), summing to 1."""
        n = len(self.rates)
        recent = min(self.window, n)
        raw = [self.decay ** (recent - 1 - i) for i in range(recent)]
        total = sum(raw)
        long_share = self.long_weight / n if n else 0.0
        head = [long_share] * (n - recent)
        return (*head, *(long_share + (1.0 - self.long_weight) * w / total for w in raw))


@dataclass(frozen=True, slots=True)
class DeviceFallback:
    """The app's own model: its accuracy and its time on this phone, T_D."""

    accuracy: float = 0.0
    latency_ms: float = math.inf

    def value(self, sla_ms: float) -> float:
        """What a request the server does not answer in time is worth: the device's answer, when
        it can arrive within the SLA."""
        return self.accuracy if self.latency_ms <= sla_ms else 0.0


NO_DEVICE = DeviceFallback()


@dataclass(frozen=True, slots=True)
class UploadChoice:
    variant: UploadVariant
    expected_accuracy: float  # nan for the default sent without an estimate
    estimated: bool           # False: no bandwidth estimate yet, the menu's default was sent
    values: tuple[tuple[int, float], ...] = field(default=())  # (input size, expected accuracy) per variant


def decision_value(decision: Decision, budget: Budget, sla_ms: float, device_value: float) -> float:
    """Expected effective accuracy of `decision`: its model meets the SLA with probability P (its
    execution time normal, the return leg as the budget says), else the device answers."""
    if runs_on_device(decision, budget):
        return device_value
    m = decision.model
    ret = budget.return_leg
    left = sla_ms - budget.upload_ms
    x = left - m.mean_ms
    spread = _SQRT3 * m.std_ms
    if ret is None:
        p = meet_probability((0.0,), x, spread, budget.return_ms)
    else:
        p = meet_probability(ret.offsets, x, spread, ret.centre, ret.log_scale)
    return p * m.accuracy + (1.0 - p) * device_value


class ValueMemo:
    """What each variant is worth at each upload time (in steps of 0.5 ms), per setting: the menu,
    the policy, the SLA, the reply leg and the device. A client keeps one between requests so that
    a choice over many remembered uploads costs dictionary look-ups once the steps it meets are
    known. It keeps the tables of the last `settings` settings (an app with a few SLAs keeps them
    all); a new menu or a learned reply leg that moved is a new setting. A randomised policy's
    value at a step is the one it drew first. Not thread-safe."""

    def __init__(self, settings: int = 8, limit: int = 100_000) -> None:
        self.settings = settings
        self.limit = limit  # entries per table before it starts afresh
        # key by identity; the entry holds the objects, so their ids stay theirs while it lives
        self._tables: dict[tuple, tuple[tuple, dict[tuple[int, int], float]]] = {}

    def values(self, menu: "UploadMenu", policy: Policy, sla_ms: float, return_ms: float,
               return_leg: ReturnLegEstimate | None, device: DeviceFallback) -> dict[tuple[int, int], float]:
        """The table for this setting: (input size, step) -> value."""
        key = (id(menu), id(policy), sla_ms, return_ms, id(return_leg), device)
        entry = self._tables.get(key)
        if entry is None:
            if len(self._tables) >= self.settings:
                del self._tables[next(iter(self._tables))]  # the oldest setting
            entry = self._tables[key] = ((menu, policy, return_leg), {})
        table = entry[1]
        if len(table) > self.limit:
            table.clear()
        return table


def variant_value(variant: UploadVariant, upload_ms: Sequence[float], sla_ms: float, policy: Policy, *,
                  return_ms: float, return_leg: ReturnLegEstimate | None = None,
                  device: DeviceFallback = NO_DEVICE, rng: random.Random | None = None,
                  weights: Sequence[float] | None = None,
                  known: dict[tuple[int, int], float] | None = None) -> float:
    """Expected effective accuracy of sending `variant` over the upload times `upload_ms` (each
    with its weight; equal weights by default). Upload times within 0.5 ms share the policy's
    decision; `known` (a `ValueMemo` table) keeps them between calls."""
    rng = rng or random.Random(0)
    device_value = device.value(sla_ms)
    weights = weights or [1.0 / len(upload_ms)] * len(upload_ms)
    known = {} if known is None else known
    size = variant.input_size
    total = 0.0
    for u, w in zip(upload_ms, weights):
        if u >= sla_ms:
            total += w * device_value
            continue
        key = (size, round(u / _U_STEP_MS))
        value = known.get(key)
        if value is None:
            budget = Budget(sla_ms, key[1] * _U_STEP_MS, return_estimate_ms=return_ms, return_leg=return_leg)
            value = decision_value(policy.choose(variant.models, budget, rng), budget, sla_ms, device_value)
            known[key] = value
        total += w * value
    return total


def choose_upload(menu: UploadMenu, bandwidth: BandwidthEstimate | None, sla_ms: float, policy: Policy, *,
                  return_ms: float, return_leg: ReturnLegEstimate | None = None,
                  device: DeviceFallback = NO_DEVICE, seed: int = 0, memo: ValueMemo | None = None) -> UploadChoice:
    """The variant with the best expected effective accuracy for a request with `sla_ms`; the
    menu's default while `bandwidth` knows no rate. A randomised policy draws from a fresh
    `random.Random(seed)` for every variant, so variants are compared on the same draws and the
    choice consumes nobody's stream. `memo` keeps the variants' values between calls."""
    if not (math.isfinite(sla_ms) and sla_ms > 0):
        raise ValueError(f"SLA must be a positive number of ms, got {sla_ms!r}")
    if bandwidth is None or not bandwidth.known:
        return UploadChoice(menu.default, math.nan, False)
    known = memo.values(menu, policy, sla_ms, return_ms, return_leg, device) if memo is not None else {}
    best: UploadVariant | None = None
    best_value = -1.0
    values = []
    weights = bandwidth.weights()
    for v in sorted(menu.variants, key=lambda v: (v.payload_bytes, v.input_size)):
        value = variant_value(v, bandwidth.upload_ms(v.payload_bytes), sla_ms, policy, return_ms=return_ms,
                              return_leg=return_leg, device=device, rng=random.Random(seed), weights=weights,
                              known=known)
        values.append((v.input_size, value))
        if value > best_value + 1e-9:
            best, best_value = v, value
    assert best is not None
    return UploadChoice(best, best_value, True, tuple(values))
