"""A latency change detector on top of the profile EWMA: what the live Profiler must do so a
model's profile follows a slowdown (and its recovery) within a few observations.

The EWMA alone (alpha 0.1) needs ~20 observations to move its mean most of the way after a step
change, and inflates the variance on the way (every step is a huge `delta`). Worse, once a model
is profiled slow no user request runs it, so only the Profiler's re-probes can bring it back, and
each of them moves the mean by just alpha.

Rule (per model, Profiler-side state only): every observation still goes through the EWMA. An
observation x is an *outlier* when |x - ref_mean| > max(k * ref_std, rel * ref_mean, floor_ms),
where (ref_mean, ref_std) is the profile as it was before the current run of outliers began.
After `run` consecutive outliers on the same side, the profile is re-seeded from them: mean =
their mean, variance = max(their variance, (ref_std scaled by the new/old mean ratio)^2). An
inlier ends the run. Isolated spikes therefore only pass through the EWMA (as before), while a
step change re-seeds the profile after `run` observations.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from modipick.core import ModelProfile, ewma_update


@dataclass
class _Run:
    ref_mean: float
    ref_std: float
    side: int
    values: list[float] = field(default_factory=list)


class ChangeDetector:
    def __init__(self, *, alpha: float, k: float = 4.0, rel: float = 0.25, floor_ms: float = 1.0,
                 run: int = 3) -> None:
        if run < 1:
            raise ValueError(f"run must be >= 1, got {run!r}")
        self.alpha, self.k, self.rel, self.floor_ms, self.run = alpha, k, rel, floor_ms, run
        self._runs: dict[str, _Run] = {}
        self.resets = 0

    def _is_outlier(self, x: float, mean: float, std: float) -> int:
        """+1 / -1 for an outlier above / below, 0 for an inlier."""
        limit = max(self.k * std, self.rel * mean, self.floor_ms)
        return 1 if x - mean > limit else -1 if mean - x > limit else 0

    def update(self, profile: ModelProfile, x: float, *, now: float) -> ModelProfile:
        if profile.samples == 0:
            return ewma_update(profile, x, alpha=self.alpha, now=now)
        key = profile.key
        run = self._runs.get(key)
        ref_mean, ref_std = (run.ref_mean, run.ref_std) if run else (profile.mean_ms, profile.std_ms)
        side = self._is_outlier(x, ref_mean, ref_std)
        updated = ewma_update(profile, x, alpha=self.alpha, now=now)
        if side == 0:
            self._runs.pop(key, None)
            return updated
        if run is None or run.side != side:
            run = self._runs[key] = _Run(profile.mean_ms, profile.std_ms, side)
        run.values.append(x)
        if len(run.values) < self.run:
            return updated
        del self._runs[key]
        self.resets += 1
        n = len(run.values)
        mean = sum(run.values) / n
        var = sum((v - mean) ** 2 for v in run.values) / max(n - 1, 1)
        scaled = run.ref_std * (mean / run.ref_mean) if run.ref_mean > 0 else run.ref_std
        return replace(updated, mean_ms=mean, var_ms2=max(var, scaled * scaled))
