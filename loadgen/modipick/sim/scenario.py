"""What one simulation is: models, network, return leg, SLA points, requests, seeds, policies and
the knobs the policy report needs (learning, latency drift, cold models, out-of-path re-probes)."""

from __future__ import annotations

import inspect
import math
import re
from dataclasses import dataclass, field
from typing import Any

from modipick.core import ModelProfile, make_policy, policy_names
from modipick.core.policies import Policy
from modipick.sim.errors import SimInputError
from modipick.sim.models import ModelSpec
from modipick.sim.networks import RETURN_LEGS, Network

RETURN_MODELS = ("none", "learned", "uploads", "known")


@dataclass(frozen=True)
class PolicySpec:
    """A policy by registry name plus parameters; `label` names it in every output."""

    label: str
    name: str
    params: tuple[tuple[str, Any], ...] = ()
    # Which return-leg information this policy's budgets carry; None: the scenario's. A simulator
    # knob, not a policy parameter: "none" (paper, 2*T_input), "learned" (online, from past
    # requests' reported return legs), "uploads" (no reports: the return leg is taken to be
    # distributed like the recent uploads), "known" (the true distribution of this scenario's
    # return leg: the best any policy without hindsight can know; for the mirror leg, the upload).
    return_model: str | None = None

    def build(self) -> Policy:
        return make_policy(self.name, **dict(self.params))

    @property
    def is_oracle(self) -> bool:
        return self.name == "oracle"


def parse_policies(text: str, defaults: dict[str, Any] | None = None) -> tuple[PolicySpec, ...]:
    """"modipick,static_greedy,modipick(threshold_ms=30)" -> specs. `defaults` (e.g. the CLI's
    --threshold-ms) apply to every policy that accepts them unless the spec overrides them."""
    specs, seen = [], set()
    for item in split_top_level(text):
        spec = parse_policy(item, defaults or {})
        if spec.label in seen:
            raise SimInputError(f"--policies: {spec.label!r} given twice")
        seen.add(spec.label)
        specs.append(spec)
    if not specs:
        raise SimInputError(f"--policies {text!r}: no policy named")
    return tuple(specs)


def split_top_level(text: str) -> list[str]:
    items, depth, current = [], 0, ""
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += ch
    items.append(current)
    return [i.strip() for i in items if i.strip()]


def parse_policy(item: str, defaults: dict[str, Any]) -> PolicySpec:
    m = re.fullmatch(r"([A-Za-z_]\w*)\s*(?:\((.*)\))?", item)
    if not m:
        raise SimInputError(f"--policies: cannot parse {item!r} (expected NAME or NAME(key=value,...))")
    name, args = m.group(1), m.group(2) or ""
    if name not in policy_names():
        raise SimInputError(f"--policies: unknown policy {name!r} (known: {', '.join(policy_names())})")
    accepted = inspect.signature(type(make_policy(name))).parameters
    params = {k: v for k, v in defaults.items() if k in accepted}
    return_model = None
    for pair in filter(None, (a.strip() for a in args.split(","))):
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if key == "return_model" and sep:
            return_model = raw.strip()
            if return_model not in RETURN_MODELS:
                raise SimInputError(f"--policies {item!r}: return_model {return_model!r}: expected one of "
                                    f"{', '.join(RETURN_MODELS)}")
            continue
        if not sep or key not in accepted:
            raise SimInputError(f"--policies {item!r}: unknown parameter {key!r} "
                                f"(accepted: {', '.join(accepted) or 'none'})")
        try:
            params[key] = float(raw)
        except ValueError:
            params[key] = raw.strip()  # e.g. risk_aware(objective=expected)
    try:
        make_policy(name, **params)
    except (ValueError, TypeError) as e:
        raise SimInputError(f"--policies {item!r}: {e}") from None
    return PolicySpec(item.replace(" ", ""), name, tuple(sorted(params.items())), return_model)


@dataclass(frozen=True)
class Drift:
    """Model `model` runs `factor` times slower for requests start <= i < end."""

    model: str
    factor: float
    start: int
    end: int


@dataclass(frozen=True)
class ColdStart:
    """The policies start with this profile of `model` instead of its warmed-up one.
    mean_ms None: no profile at all (samples=0: the first observation sets the mean)."""

    model: str
    mean_ms: float | None = None
    std_ms: float = 0.0

    def profile(self, spec: ModelSpec) -> ModelProfile:
        if self.mean_ms is None:
            return ModelProfile(name=spec.name, declared_accuracy=spec.accuracy, samples=0)
        return ModelProfile.from_stats(spec.name, spec.accuracy, self.mean_ms, self.std_ms)


@dataclass(frozen=True)
class Learning:
    """Policies' profiles learn by EWMA from the chosen model's observed time; every
    `reprobe_every` requests (0: never) every model is also observed once, out of the request
    path, as the Profiler's probes do."""

    alpha: float = 0.1
    reprobe_every: int = 0
    # Re-seed a profile after `detect_run` consecutive outliers (modipick.core.changes); 0: plain EWMA.
    detect_run: int = 0

    def detector(self):
        if not self.detect_run:
            return None
        from modipick.core.changes import ChangeDetector

        return ChangeDetector(alpha=self.alpha, run=self.detect_run)


@dataclass(frozen=True)
class Scenario:
    name: str
    models: tuple[ModelSpec, ...]
    network: Network
    return_leg: str
    sla_ms: tuple[float, ...]
    requests: int
    seeds: tuple[int, ...]
    policies: tuple[PolicySpec, ...]
    learning: Learning | None = None
    drifts: tuple[Drift, ...] = ()
    cold: tuple[ColdStart, ...] = ()
    # "learned": every budget carries the return-leg distribution learned online from past
    # requests (modipick.core.returnleg), for policies that use it; "none": the paper's 2*T_input.
    return_model: str = "none"
    # With a learned return model: how many later requests are decided before a request's return
    # leg is reported (live: outcome reports arrive late, clients pipeline). 0: before the next one.
    report_lag: int = 0
    meta: dict[str, Any] = field(default_factory=dict, compare=False)  # e.g. {"cv": 0.5} for plots

    def __post_init__(self) -> None:
        names = {m.name for m in self.models}
        if self.return_leg not in RETURN_LEGS:
            raise SimInputError(f"--return-leg {self.return_leg!r}: expected one of {', '.join(RETURN_LEGS)}")
        for sla in self.sla_ms:
            if not (math.isfinite(sla) and sla > 0):
                raise SimInputError(f"--sla: {sla:g} is not a positive number of ms")
        if self.requests <= 0:
            raise SimInputError(f"--requests {self.requests}: must be >= 1")
        if not self.seeds or not self.policies or not self.sla_ms:
            raise SimInputError(f"scenario {self.name}: needs at least one seed, policy and SLA point")
        for d in self.drifts:
            if d.model not in names:
                raise SimInputError(f"--drift {d.model!r}: no such model")
            if not (d.factor > 0 and 0 <= d.start < d.end):
                raise SimInputError(f"--drift {d.model}: needs factor > 0 and 0 <= start < end")
        for c in self.cold:
            if c.model not in names:
                raise SimInputError(f"--cold {c.model!r}: no such model")
        if self.report_lag < 0:
            raise SimInputError(f"--report-lag {self.report_lag}: must be >= 0")
        if self.return_model not in RETURN_MODELS:
            raise SimInputError(f"--return-model {self.return_model!r}: expected one of {', '.join(RETURN_MODELS)}")
        if self.learning and not 0 < self.learning.alpha <= 1:
            raise SimInputError(f"--alpha {self.learning.alpha}: must be in (0, 1]")


def parse_sla(text: str) -> tuple[float, ...]:
    """"50:300:10" (inclusive range) or "100,150,250"."""
    try:
        if ":" in text:
            parts = [float(p) for p in text.split(":")]
            if len(parts) != 3 or parts[2] <= 0:
                raise SimInputError(f"--sla {text!r}: expected START:STOP:STEP with STEP > 0")
            start, stop, step = parts
            count = int(math.floor((stop - start) / step + 1e-9)) + 1
            values = tuple(round(start + i * step, 6) for i in range(max(count, 0)))
        else:
            values = tuple(float(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise SimInputError(f"--sla {text!r}: not a number, range START:STOP:STEP or list") from None
    if not values:
        raise SimInputError(f"--sla {text!r}: no SLA points")
    for v in values:
        if not (math.isfinite(v) and v > 0):
            raise SimInputError(f"--sla {text!r}: {v:g} is not a positive number of ms")
    return values


def parse_seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise SimInputError(f"--seeds {text!r}: expected integers like 1,2,3") from None
    if not seeds or any(s < 0 for s in seeds):
        raise SimInputError(f"--seeds {text!r}: expected non-negative integers")
    return seeds
