"""Per-request random draws, made once per (scenario, seed) so every policy sees the same ones.

Three independent streams from one seed (numpy SeedSequence.spawn): execution times, upload leg,
return leg. Changing the return leg therefore leaves the upload and execution draws unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from modipick.sim.networks import draw_legs
from modipick.sim.scenario import Scenario


@dataclass(frozen=True, eq=False)
class Draws:
    upload_ms: np.ndarray  # (n,)
    return_ms: np.ndarray  # (n,)
    exec_ms: np.ndarray    # (n, K) real execution time of every model for every request

    @property
    def network_ms(self) -> np.ndarray:
        return self.upload_ms + self.return_ms


def make_draws(scenario: Scenario, seed: int) -> Draws:
    exec_ss, up_ss, ret_ss = np.random.SeedSequence(seed).spawn(3)
    n = scenario.requests
    mu = np.array([m.mean_ms for m in scenario.models])
    sigma = np.array([m.std_ms for m in scenario.models])
    exec_ms = np.random.default_rng(exec_ss).normal(mu, sigma, size=(n, len(mu)))
    np.clip(exec_ms, 0.0, None, out=exec_ms)
    column = {m.name: k for k, m in enumerate(scenario.models)}
    for drift in scenario.drifts:
        exec_ms[drift.start:drift.end, column[drift.model]] *= drift.factor
    upload, ret = draw_legs(scenario.network, scenario.return_leg, n,
                            np.random.default_rng(up_ss), np.random.default_rng(ret_ss))
    return Draws(upload, ret, exec_ms)
