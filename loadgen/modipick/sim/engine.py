"""Runs whole scenarios: every (scenario, SLA point, policy) unit, optionally over worker
processes (each unit is independent: workers redraw from the seeds, so results are identical)."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Sequence

from modipick.sim.progress import NoProgress, Progress
from modipick.sim.runner import PointResult, run_point
from modipick.sim.scenario import Scenario

_SCENARIOS: Sequence[Scenario] = ()  # this process's scenarios (workers get them from _adopt)


def _adopt(scenarios: Sequence[Scenario]) -> None:
    global _SCENARIOS
    _SCENARIOS = scenarios


def _run_unit(unit: tuple[int, int, float]) -> PointResult:
    s, p, sla = unit
    scenario = _SCENARIOS[s]
    return run_point(scenario, scenario.policies[p], sla)


def decisions(scenarios: Sequence[Scenario]) -> int:
    return sum(s.requests * len(s.seeds) * len(s.sla_ms) * len(s.policies) for s in scenarios)


def run_scenarios(scenarios: Sequence[Scenario], *, jobs: int = 1,
                  progress: Progress | None = None) -> list[PointResult]:
    """Results ordered by scenario, then SLA point, then policy (as given)."""
    global _SCENARIOS
    progress = progress or NoProgress()
    units = [(s, p, sla) for s, scenario in enumerate(scenarios) for sla in scenario.sla_ms
             for p in range(len(scenario.policies))]
    weight = {id(sc): sc.requests * len(sc.seeds) for sc in scenarios}
    _SCENARIOS = scenarios
    results: list[PointResult] = []
    try:
        if jobs <= 1 or len(units) == 1:
            for unit in units:
                results.append(_run_unit(unit))
                _advance(progress, scenarios[unit[0]], weight, results[-1])
        else:
            # forkserver, not fork: forking a process that has gRPC threads running (a test run, a
            # notebook with a client open) can kill the child (BrokenProcessPool); each worker
            # receives the scenarios once
            with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("forkserver"),
                                     initializer=_adopt, initargs=(tuple(scenarios),)) as pool:
                for result, unit in zip(pool.map(_run_unit, units, chunksize=1), units):
                    results.append(result)
                    _advance(progress, scenarios[unit[0]], weight, result)
    finally:
        _SCENARIOS = ()
    return results


def _advance(progress: Progress, scenario: Scenario, weight: dict[int, int], result: PointResult) -> None:
    progress.advance(weight[id(scenario)], f"[{result.scenario} {result.policy} sla={result.sla_ms:g}]")
