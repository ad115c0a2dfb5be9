"""Plots of `modipick sim policy-report` (docs/img/policy_*.png). matplotlib lazily, Agg backend."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from modipick.sim.plots import _pyplot, _save
from modipick.sim.policyreport import bound_label
from modipick.sim.policytargets import INDEPENDENT, MIN_RATIO, ORACLE_ATTAINMENT, points
from modipick.sim.runner import TIMELINE_WINDOW, PointResult


def _styles(candidate: str) -> dict[str, tuple[str, str, str]]:
    """policy label -> (colour, line style, legend label)"""
    return {candidate: ("tab:green", "-", candidate),
            bound_label(candidate): ("tab:green", ":", "known marginal distribution (bound for i.i.d. legs)"),
            "modipick": ("tab:blue", "-", "ModiPick"),
            "dynamic_greedy": ("tab:orange", "-", "dynamic greedy"),
            "related_accurate": ("tab:olive", "-", "related accurate"),
            "oracle": ("black", "--", "oracle (hindsight)")}


def _curve(results: Sequence[PointResult], scenario: str, policy: str, attr: str) -> tuple[list, list]:
    pts = points(results, scenario)
    xs = [sla for sla, pt in pts.items() if policy in pt]
    return xs, [getattr(pts[sla][policy], attr) for sla in xs]


def _sla_panel(ax, results, scenario: str, candidate: str, attr: str, ylabel: str, *, legend: bool) -> None:
    for policy, (color, style, label) in _styles(candidate).items():
        xs, ys = _curve(results, scenario, policy, attr)
        if xs:
            ax.plot(xs, ys, color=color, linestyle=style, label=label, linewidth=2 if policy == candidate else 1.2)
    ax.set(title=scenario, xlabel="SLA (ms)", ylabel=ylabel)
    ax.grid(alpha=0.3)
    if legend:
        ax.legend(fontsize=7)


def independent(results: Sequence[PointResult], candidate: str, path: Path) -> Path:
    plt = _pyplot()
    fig, axes = plt.subplots(2, 3, figsize=(16, 8.5))
    for i, (ax, scenario) in enumerate(zip(axes.ravel(), INDEPENDENT)):
        _sla_panel(ax, results, scenario, candidate, "effective_accuracy_pct", "effective accuracy (%)",
                   legend=i == 0)
    fig.suptitle("Independent return leg: effective accuracy (a miss counts 0) vs SLA; top: table2 (GPU), "
                 "bottom: c5 (CPU)")
    return _save(fig, path)


def ratios(results: Sequence[PointResult], candidate: str, path: Path) -> Path:
    plt = _pyplot()
    fig, axes = plt.subplots(2, 3, figsize=(16, 8))
    styles = _styles(candidate)
    for i, (ax, scenario) in enumerate(zip(axes.ravel(), INDEPENDENT)):
        pts = points(results, scenario)
        xs = list(pts)
        for policy in (candidate, bound_label(candidate), "modipick", "dynamic_greedy"):
            color, style, label = styles[policy]
            ys = [pts[s][policy].effective_accuracy_pct / max(pts[s]["oracle"].effective_accuracy_pct, 1e-9)
                  for s in xs]
            ax.plot(xs, ys, color=color, linestyle=style, label=label, linewidth=2 if policy == candidate else 1.2)
        low = [s for s in xs if pts[s]["oracle"].attainment_pct < ORACLE_ATTAINMENT]
        if low:
            ax.axvspan(min(xs), max(low), color="grey", alpha=0.15, label="oracle attains < 50 %")
        ax.axhline(MIN_RATIO, color="red", linewidth=0.8, linestyle="--", label="target 0.85")
        ax.set(title=scenario, xlabel="SLA (ms)", ylabel="effective accuracy ÷ oracle's", ylim=(0.4, 1.02))
        ax.grid(alpha=0.3)
        if i == 0:
            ax.legend(fontsize=7, loc="lower right")
    fig.suptitle("Share of the hindsight oracle's effective accuracy (same draws)")
    return _save(fig, path)


def paper_setup(results: Sequence[PointResult], candidate: str, path: Path) -> Path:
    plt = _pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    for row, scenario in enumerate(("paper_campus_table2", "nasnet_fictional")):
        _sla_panel(axes[row][0], results, scenario, candidate, "attainment_pct", "SLA attainment (%)", legend=row == 0)
        _sla_panel(axes[row][1], results, scenario, candidate, "mean_accuracy_pct", "mean accuracy (%)",
                   legend=row == 1)
    fig.suptitle("The paper's own setup (return leg = upload leg): attainment and accuracy")
    return _save(fig, path)


def drift(results: Sequence[PointResult], candidate: str, scenarios: Sequence[str], sla_ms: float,
          path: Path) -> Path:
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(scenarios), figsize=(6 * len(scenarios), 4.2), squeeze=False)
    styles = _styles(candidate)
    for ax, scenario in zip(axes[0], scenarios):
        active: list[int] = []
        for policy in (candidate, "modipick", "dynamic_greedy", "oracle"):
            r = next((r for r in results if r.scenario == scenario and r.policy == policy and r.sla_ms == sla_ms), None)
            if r is None or not r.timeline:
                continue
            rows = [w for w in r.timeline if w["seed"] == r.timeline[0]["seed"]]
            color, style, label = styles[policy]
            ax.plot([w["window_start"] for w in rows], [w["drift_model_share_pct"] for w in rows], color=color,
                    linestyle=style, label=label, linewidth=1.6 if policy == candidate else 1.0)
            active = [w["window_start"] for w in rows if w["drift_active"]]
        if active:
            ax.axvspan(min(active), max(active) + TIMELINE_WINDOW, color="red", alpha=0.08, label="3x slower")
        ax.set(title=f"{scenario}, SLA {sla_ms:g} ms", xlabel="request", ylabel="requests run on NasNet Large (%)",
               ylim=(-2, 102))
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8)
    fig.suptitle(f"Latency drift: share of each {TIMELINE_WINDOW} requests run on the drifting model")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def others(results: Sequence[PointResult], candidate: str, scenarios: Sequence[str], title: str, path: Path) -> Path:
    plt = _pyplot()
    fig, axes = plt.subplots(2, len(scenarios), figsize=(5.5 * len(scenarios), 8), squeeze=False)
    for col, scenario in enumerate(scenarios):
        _sla_panel(axes[0][col], results, scenario, candidate, "effective_accuracy_pct", "effective accuracy (%)",
                   legend=col == 0)
        _sla_panel(axes[1][col], results, scenario, candidate, "attainment_pct", "SLA attainment (%)", legend=False)
    fig.suptitle(title)
    return _save(fig, path)


def draw_all(results: Sequence[PointResult], candidate: str, out: Path) -> list[Path]:
    present = {r.scenario for r in results}
    written = []
    if all(s in present for s in INDEPENDENT):
        written += [independent(results, candidate, out / "policy_independent.png"),
                    ratios(results, candidate, out / "policy_ratio.png")]
    if {"paper_campus_table2", "nasnet_fictional"} <= present:
        written.append(paper_setup(results, candidate, out / "policy_paper.png"))
    drifts = [s for s in ("drift_campus_table2", "drift_probes_campus_table2", "drift_detect_campus_table2")
              if s in present]
    if drifts:
        written.append(drift(results, candidate, drifts, 250.0, out / "policy_drift.png"))
    cold = [s for s in ("cold_none_campus_table2", "cold_poor_campus_table2", "cold_probed_campus_table2")
            if s in present]
    if cold:
        written.append(others(results, candidate, cold, "Cold model (NasNet Large): no profile, a poor profile, "
                              "a poor profile with the Profiler's probes", out / "policy_cold.png"))
    real = [s for s in ("trace_lte_tmobile_table2", "indep_campus_gamma_table2") if s in present]
    if real:
        written.append(others(results, candidate, real, "Heavy-tailed real trace (T-Mobile LTE uplink) and gamma "
                              "campus WiFi legs", out / "policy_trace.png"))
    return written
