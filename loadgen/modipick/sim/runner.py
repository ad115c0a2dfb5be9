"""Runs every policy of a scenario over the same draws; only policy.choose is a Python loop.

e2e = upload + exec(chosen) + return; met = e2e <= SLA; accuracy = declared accuracy of the
chosen model; effective accuracy counts a miss as 0.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from modipick.core import Budget, Hindsight, ModelProfile, Reason, ewma_update
from modipick.core.returnleg import ReturnLegEstimate
from modipick.sim.draws import Draws, make_draws
from modipick.sim.driftstats import drift_metrics
from modipick.sim.scenario import PolicySpec, Scenario

REASONS = tuple(r.value for r in Reason)  # base, explored, fallback, oracle
_REASON_CODE = {r: i for i, r in enumerate(Reason)}
TIMELINE_WINDOW = 100  # requests per window in drift timelines


@dataclass
class PointResult:
    """One (scenario, policy, SLA) point pooled over all seeds."""

    scenario: str
    policy: str
    sla_ms: float
    requests: int
    attainment_pct: float
    mean_accuracy_pct: float
    effective_accuracy_pct: float
    mean_e2e_ms: float
    p95_e2e_ms: float
    e2e_std_ms: float
    accuracy_std_pct: float
    models: tuple[str, ...]
    usage: np.ndarray        # (K,) requests per model
    reasons: np.ndarray      # (K, len(REASONS)) requests per model and reason
    timeline: list[dict] = field(default_factory=list)  # drift scenarios only
    drift: list[dict] = field(default_factory=list)     # per seed and drift: driftstats.drift_metrics

    def share_pct(self, model: str) -> float:
        return 100.0 * float(self.usage[self.models.index(model)]) / self.requests


def initial_profiles(scenario: Scenario) -> list[ModelProfile]:
    cold = {c.model: c for c in scenario.cold}
    return [cold[m.name].profile(m) if m.name in cold else
            ModelProfile.from_stats(m.name, m.accuracy, m.mean_ms, m.std_ms) for m in scenario.models]


class _ReturnInfo:
    """What the budgets of one policy's run know about the return leg (PolicySpec.return_model)."""

    def __init__(self, mode: str, scenario: Scenario, draws: Draws) -> None:
        self.mode = mode
        self.model = self.known = None
        self.lag = scenario.report_lag
        self.pending: deque[tuple[float, float, float | None]] = deque()
        self.basis: float | None = None
        if mode in ("learned", "uploads"):
            from modipick.core.returnleg import ReturnLegModel

            self.model = ReturnLegModel(prior="uploads" if mode == "uploads" else "mirror")
        elif mode == "known" and scenario.return_leg != "mirror":
            # The true distribution: the return legs of this very run, as a distribution (not per request).
            self.known = ReturnLegEstimate(tuple(sorted(draws.return_ms.tolist())), 0.0)

    def budget(self, sla_ms: float, upload: float) -> Budget:
        if self.model is not None:
            estimate = self.model.estimate(upload)
            self.basis = estimate.basis_ms
            return Budget(sla_ms, upload, return_leg=estimate)
        if self.mode == "known":
            return Budget(sla_ms, upload, return_leg=self.known or ReturnLegEstimate.exact(upload))
        return Budget(sla_ms, upload)

    def observe(self, upload: float, return_ms: float) -> None:
        """Request i's return leg, known `report_lag` requests later (0: before the next decision)."""
        if self.model is None:
            return
        if self.mode == "uploads":  # no outcome reports: only the uploads are known
            self.model.observe_upload(upload)
            return
        self.pending.append((upload, return_ms, self.basis))
        if len(self.pending) > self.lag:
            self.model.observe(*self.pending.popleft())


def decide(spec: PolicySpec, scenario: Scenario, draws: Draws, sla_ms: float,
           seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The model index and reason code the policy picks for every request."""
    policy = spec.build()
    choose = policy.choose
    rng = random.Random(seed)
    names = [m.name for m in scenario.models]
    index = {name: k for k, name in enumerate(names)}
    profiles = initial_profiles(scenario)
    # One tuple per profile refresh, as the Selector's profile cache hands it to the policy.
    candidates = tuple(p.candidate() for p in profiles)
    uploads = draws.upload_ms.tolist()
    returns = draws.return_ms.tolist()
    learning, oracle = scenario.learning, spec.is_oracle
    exec_rows = draws.exec_ms.tolist() if (learning or oracle) else None
    alpha = learning.alpha if learning else 0.0
    reprobe = learning.reprobe_every if learning else 0
    detector = learning.detector() if learning else None
    info = _ReturnInfo(spec.return_model or scenario.return_model, scenario, draws)
    choices: list[int] = []
    reasons: list[int] = []
    code = _REASON_CODE
    for i, upload in enumerate(uploads):
        if oracle:
            budget = Budget(sla_ms, upload, hindsight=Hindsight(returns[i], dict(zip(names, exec_rows[i]))))
        else:
            budget = info.budget(sla_ms, upload)
            info.observe(upload, returns[i])
        decision = choose(candidates, budget, rng)
        k = index[decision.model.name]
        choices.append(k)
        reasons.append(code[decision.reason])
        if learning:
            row = exec_rows[i]
            observed = [k] if not (reprobe and i % reprobe == reprobe - 1) else range(len(names))
            for j in observed:
                if detector is not None:
                    profiles[j] = detector.update(profiles[j], row[j], now=float(i))
                else:
                    profiles[j] = ewma_update(profiles[j], row[j], alpha=alpha, now=float(i))
            candidates = tuple(p.candidate() for p in profiles)
    return np.asarray(choices, dtype=np.intp), np.asarray(reasons, dtype=np.int8)


@lru_cache(maxsize=8)
def cached_draws(scenario: Scenario, seed: int) -> Draws:
    return make_draws(scenario, seed)


def run_point(scenario: Scenario, spec: PolicySpec, sla_ms: float) -> PointResult:
    accuracy = np.array([m.accuracy for m in scenario.models])
    k_models = len(scenario.models)
    e2e_parts, acc_parts, timeline, drift = [], [], [], []
    usage = np.zeros(k_models, dtype=np.int64)
    reason_counts = np.zeros((k_models, len(REASONS)), dtype=np.int64)
    for seed in scenario.seeds:
        draws = cached_draws(scenario, seed)
        choices, reasons = decide(spec, scenario, draws, sla_ms, seed)
        rows = np.arange(len(choices))
        e2e = draws.upload_ms + draws.exec_ms[rows, choices] + draws.return_ms
        e2e_parts.append(e2e)
        acc_parts.append(accuracy[choices])
        usage += np.bincount(choices, minlength=k_models)
        np.add.at(reason_counts, (choices, reasons), 1)
        if scenario.drifts:
            timeline += drift_timeline(scenario, spec, sla_ms, seed, choices, e2e <= sla_ms)
            column = {m.name: k for k, m in enumerate(scenario.models)}
            for d in scenario.drifts:
                drift.append({"scenario": scenario.name, "policy": spec.label, "sla_ms": sla_ms, "seed": seed,
                              "drift_model": d.model,
                              **drift_metrics(choices, e2e <= sla_ms, column[d.model], d.start, d.end)})
    e2e = np.concatenate(e2e_parts)
    acc = np.concatenate(acc_parts)
    met = e2e <= sla_ms
    return PointResult(
        scenario=scenario.name, policy=spec.label, sla_ms=sla_ms, requests=len(e2e),
        attainment_pct=100.0 * float(met.mean()), mean_accuracy_pct=float(acc.mean()),
        effective_accuracy_pct=float(np.where(met, acc, 0.0).mean()), mean_e2e_ms=float(e2e.mean()),
        p95_e2e_ms=float(np.percentile(e2e, 95)), e2e_std_ms=float(e2e.std()),
        accuracy_std_pct=float(acc.std()), models=tuple(m.name for m in scenario.models),
        usage=usage, reasons=reason_counts, timeline=timeline, drift=drift)


def drift_timeline(scenario: Scenario, spec: PolicySpec, sla_ms: float, seed: int, choices: np.ndarray,
                   met: np.ndarray) -> list[dict]:
    """Per window of requests: attainment, and which share of requests / of misses went to each
    drifting model (drift target: misses caused by the slowed model must return to pre-drift level)."""
    rows = []
    column = {m.name: k for k, m in enumerate(scenario.models)}
    for start in range(0, len(choices), TIMELINE_WINDOW):
        window = slice(start, start + TIMELINE_WINDOW)
        c, ok = choices[window], met[window]
        misses = int((~ok).sum())
        for drift in scenario.drifts:
            on_model = c == column[drift.model]
            rows.append({
                "scenario": scenario.name, "policy": spec.label, "sla_ms": sla_ms, "seed": seed,
                "window_start": start, "requests": len(c), "drift_model": drift.model,
                "drift_active": int(drift.start <= start < drift.end),
                "attainment_pct": 100.0 * float(ok.mean()),
                "drift_model_share_pct": 100.0 * float(on_model.mean()),
                "misses_on_drift_model_pct_of_requests": 100.0 * float((on_model & ~ok).mean()),
                "misses_on_drift_model_pct_of_misses":
                    100.0 * float((on_model & ~ok).sum()) / misses if misses else 0.0,
            })
    return rows
