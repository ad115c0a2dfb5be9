"""The default policy's simulation targets, checked on PointResults (same draws for every policy).

Every check returns a `Check`: which target, met or not, the worst number against its bar, and a
one-line detail. `evaluate` runs all that apply to the scenarios present.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from modipick.sim.runner import PointResult

INDEPENDENT = ("indep_campus_table2", "indep_home_table2", "indep_lte_table2",
               "indep_campus_c5", "indep_home_c5", "indep_lte_c5")
PAPER_SETUP = ("paper_campus_table2", "nasnet_fictional")  # return leg = upload leg
NASNET = "nasnet_fictional"
HEADLINE = ("indep_campus_table2", 150.0)
DRIFT = ("drift_campus_table2", "drift_probes_campus_table2", "drift_detect_campus_table2")

MIN_RATIO = 0.85       # of the oracle's effective accuracy, at every point where the oracle attains >= 50 %
MEAN_RATIO = 0.90      # ... averaged over those points
ORACLE_ATTAINMENT = 50.0
HEADLINE_GAIN = 10.0   # points of effective accuracy over ModiPick
NASNET_GAP = 1.0       # points of accuracy below the oracle
PAPER_SLACK = 0.5      # points below ModiPick (attainment, accuracy)


@dataclass(frozen=True)
class Check:
    target: str
    scenario: str
    met: bool
    value: float       # the number that decides (worst case)
    bar: str           # what it had to be, e.g. ">= 0.85"
    detail: str


def points(results: Sequence[PointResult], scenario: str) -> dict[float, dict[str, PointResult]]:
    by_sla: dict[float, dict[str, PointResult]] = {}
    for r in results:
        if r.scenario == scenario:
            by_sla.setdefault(r.sla_ms, {})[r.policy] = r
    return dict(sorted(by_sla.items()))


def oracle_ratios(results: Sequence[PointResult], scenario: str, policy: str) -> list[tuple[float, float]]:
    """(SLA, policy effective accuracy / oracle's) where the oracle attains >= 50 %."""
    out = []
    for sla, pt in points(results, scenario).items():
        oracle = pt["oracle"]
        if oracle.attainment_pct >= ORACLE_ATTAINMENT and oracle.effective_accuracy_pct > 0:
            out.append((sla, pt[policy].effective_accuracy_pct / oracle.effective_accuracy_pct))
    return out


def check_independent(results: Sequence[PointResult], scenario: str, policy: str) -> list[Check]:
    ratios = oracle_ratios(results, scenario, policy)
    if not ratios:
        return [Check("independent: >= 85 % of oracle at every point", scenario, False, 0.0, ">= 0.85",
                      "no SLA point where the oracle attains >= 50 %")]
    worst_sla, worst = min(ratios, key=lambda r: r[1])
    mean = sum(r for _, r in ratios) / len(ratios)
    span = f"{len(ratios)} points, SLA {ratios[0][0]:g}..{ratios[-1][0]:g} ms"
    return [Check("independent: >= 85 % of oracle at every point", scenario, worst >= MIN_RATIO, worst,
                  f">= {MIN_RATIO:.2f}", f"worst {worst:.3f} at SLA {worst_sla:g} ms ({span})"),
            Check("independent: >= 90 % of oracle on average", scenario, mean >= MEAN_RATIO, mean,
                  f">= {MEAN_RATIO:.2f}", f"mean of per-point ratios {mean:.3f} ({span})")]


def check_headline(results: Sequence[PointResult], policy: str) -> list[Check]:
    scenario, sla = HEADLINE
    pt = points(results, scenario).get(sla)
    if not pt:
        return []
    gain = pt[policy].effective_accuracy_pct - pt["modipick"].effective_accuracy_pct
    return [Check("campus WiFi, table2, SLA 150: >= ModiPick + 10 points", scenario, gain >= HEADLINE_GAIN, gain,
                  f">= {HEADLINE_GAIN:g}", f"{pt[policy].effective_accuracy_pct:.1f} vs ModiPick "
                  f"{pt['modipick'].effective_accuracy_pct:.1f} (oracle {pt['oracle'].effective_accuracy_pct:.1f})")]


def check_nasnet(results: Sequence[PointResult], policy: str) -> list[Check]:
    pts = points(results, NASNET)
    if not pts:
        return []
    gaps = [(sla, pt["oracle"].mean_accuracy_pct - pt[policy].mean_accuracy_pct) for sla, pt in pts.items()]
    sla, worst = max(gaps, key=lambda g: g[1])
    return [Check("NasNet Fictional: within 1 point of the oracle's accuracy", NASNET, worst <= NASNET_GAP, worst,
                  f"<= {NASNET_GAP:g}", f"largest gap {worst:.2f} points at SLA {sla:g} ms")]


def check_paper(results: Sequence[PointResult], scenario: str, policy: str) -> list[Check]:
    pts = points(results, scenario)
    if not pts:
        return []
    checks = []
    for label, attr in (("attainment", "attainment_pct"), ("accuracy", "mean_accuracy_pct"),
                        ("effective accuracy", "effective_accuracy_pct")):
        deficits = [(sla, getattr(pt["modipick"], attr) - getattr(pt[policy], attr)) for sla, pt in pts.items()]
        sla, worst = max(deficits, key=lambda d: d[1])
        checks.append(Check(f"paper setup: {label} never > 0.5 below ModiPick", scenario, worst <= PAPER_SLACK,
                            worst, f"<= {PAPER_SLACK:g}",
                            f"largest deficit {worst:+.2f} points at SLA {sla:g} ms (negative: always above)"))
    return checks


def check_drift(results: Sequence[PointResult], scenario: str, policy: str) -> list[Check]:
    rows = [row for r in results if r.scenario == scenario and r.policy == policy for row in r.drift]
    if not rows:
        return []
    worst = max(rows, key=lambda row: row["miss_share_after_pct"] - row["pre_miss_share_pct"])
    excess = worst["miss_share_after_pct"] - worst["pre_miss_share_pct"]
    return [Check("drift: misses on the slowed model back to pre-drift share within 200 requests", scenario,
                  all(row["met"] for row in rows), excess, "<= 0",
                  f"worst at SLA {worst['sla_ms']:g}: {worst['miss_share_after_pct']:.1f} % of misses after 200 "
                  f"requests vs {worst['pre_miss_share_pct']:.1f} % before; {worst['misses_in_grace']} misses "
                  f"on it in the first 200")]


def evaluate(results: Sequence[PointResult], policy: str) -> list[Check]:
    present = {r.scenario for r in results}
    checks: list[Check] = []
    for scenario in INDEPENDENT:
        if scenario in present:
            checks += check_independent(results, scenario, policy)
    checks += check_headline(results, policy)
    checks += check_nasnet(results, policy)
    for scenario in PAPER_SETUP:
        checks += check_paper(results, scenario, policy)
    for scenario in DRIFT:
        checks += check_drift(results, scenario, policy)
    return checks
