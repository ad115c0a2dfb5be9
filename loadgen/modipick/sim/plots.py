"""The paper's simulation figures (6a, 6b, 7, 8, 9) as PNG, drawn from PointResults.

matplotlib is imported lazily with the Agg backend (no display needed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from modipick.sim.runner import PointResult

POLICY_STYLE = {
    "static_greedy": ("tab:red", "static greedy"),
    "dynamic_greedy": ("tab:orange", "dynamic greedy"),
    "modipick": ("tab:blue", "ModiPick"),
    "pure_random": ("tab:gray", "pure random"),
    "related_random": ("tab:olive", "related random"),
    "related_accurate": ("tab:green", "related accurate"),
    "oracle": ("black", "oracle (hindsight)"),
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _style(policy: str) -> tuple[str | None, str]:
    base = policy.split("(")[0]
    color, label = POLICY_STYLE.get(base, (None, base))
    return color, (label if policy == base else policy)


def _series(results: Sequence[PointResult], policy: str, attr: str) -> tuple[np.ndarray, np.ndarray]:
    rows = sorted((r for r in results if r.policy == policy), key=lambda r: r.sla_ms)
    return np.array([r.sla_ms for r in rows]), np.array([getattr(r, attr) for r in rows])


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def latency_accuracy_vs_sla(results: Sequence[PointResult], policies: Sequence[str], title: str,
                            path: Path, *, shade: bool = True) -> Path:
    """Fig 6a / 9: mean e2e latency (+-1 std) next to the SLA line, accuracy, attainment."""
    plt = _pyplot()
    fig, (ax_lat, ax_acc, ax_att) = plt.subplots(1, 3, figsize=(15, 4.2))
    for policy in policies:
        color, label = _style(policy)
        sla, e2e = _series(results, policy, "mean_e2e_ms")
        _, std = _series(results, policy, "e2e_std_ms")
        ax_lat.plot(sla, e2e, color=color, label=label)
        if shade:
            ax_lat.fill_between(sla, e2e - std, e2e + std, color=color, alpha=0.15)
        _, acc = _series(results, policy, "mean_accuracy_pct")
        _, eff = _series(results, policy, "effective_accuracy_pct")
        ax_acc.plot(sla, acc, color=color, label=f"{label}")
        ax_acc.plot(sla, eff, color=color, linestyle="--", linewidth=1, label=f"{label} (effective)")
        _, att = _series(results, policy, "attainment_pct")
        ax_att.plot(sla, att, color=color, label=label)
    lim = max(r.sla_ms for r in results)
    ax_lat.plot([0, lim], [0, lim], color="k", linewidth=0.8, linestyle=":", label="SLA")
    ax_lat.set(xlabel="SLA target (ms)", ylabel="end-to-end latency (ms)", title="latency (mean, ±1 std)")
    ax_acc.set(xlabel="SLA target (ms)", ylabel="accuracy (%)", title="accuracy (dashed: effective)")
    ax_att.set(xlabel="SLA target (ms)", ylabel="SLA attainment (%)", title="SLA attainment", ylim=(0, 101))
    for ax in (ax_lat, ax_acc, ax_att):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    return _save(fig, path)


def _stacked_usage(ax, xs: Sequence[float], results: Sequence[PointResult], models: Sequence[str],
                   width: float, colors: dict[str, tuple]) -> None:
    bottom = np.zeros(len(xs))
    for model in models:
        share = np.array([r.share_pct(model) for r in results])
        if share.any():
            ax.bar(xs, share, width=width, bottom=bottom, color=colors[model], label=model)
        bottom += share


def _model_colors(models: Sequence[str]) -> dict[str, tuple]:
    cmap = _pyplot().get_cmap("tab20")
    return {m: cmap(i % 20) for i, m in enumerate(models)}


def model_usage_vs_sla(results: Sequence[PointResult], policy: str, title: str, path: Path) -> Path:
    """Fig 6b: share of requests per model at each SLA point (models in table order)."""
    plt = _pyplot()
    rows = sorted((r for r in results if r.policy == policy), key=lambda r: r.sla_ms)
    models = rows[0].models
    fig, ax = plt.subplots(figsize=(11, 4.5))
    xs = [r.sla_ms for r in rows]
    step = float(np.min(np.diff(xs))) if len(xs) > 1 else 10.0
    _stacked_usage(ax, xs, rows, models, 0.8 * step, _model_colors(models))
    ax.set(xlabel="SLA target (ms)", ylabel="requests (%)", title=title, ylim=(0, 100))
    ax.legend(fontsize=7, bbox_to_anchor=(1.01, 1), loc="upper left")
    return _save(fig, path)


def cv_sweep(results_by_cv: dict[float, Sequence[PointResult]], policy: str, slas: Sequence[float],
             path: Path) -> Path:
    """Fig 7: accuracy (±1 std over requests) and SLA attainment against network CV, per SLA."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(slas), figsize=(6 * len(slas), 4.2), squeeze=False)
    cvs = sorted(results_by_cv)
    for ax, sla in zip(axes[0], slas):
        pts = [next(r for r in results_by_cv[cv] if r.policy == policy and r.sla_ms == sla) for cv in cvs]
        x = 100 * np.array(cvs)
        acc = np.array([p.mean_accuracy_pct for p in pts])
        std = np.array([p.accuracy_std_pct for p in pts])
        ax.plot(x, acc, color="tab:blue", marker="o", label="accuracy")
        ax.fill_between(x, acc - std, acc + std, color="tab:blue", alpha=0.15)
        ax.plot(x, [p.effective_accuracy_pct for p in pts], color="tab:blue", linestyle="--",
                label="effective accuracy")
        ax.plot(x, [p.attainment_pct for p in pts], color="tab:red", marker="s", label="SLA attainment")
        ax.set(xlabel="network CV (%)", ylabel="%", title=f"{_style(policy)[1]}, SLA {sla:g} ms", ylim=(0, 101))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Fig. 7: accuracy and SLA attainment vs network variability (mean 50 ms)")
    return _save(fig, path)


def usage_vs_cv(results_by_cv: dict[float, Sequence[PointResult]], policy: str, slas: Sequence[float],
                path: Path) -> Path:
    """Fig 8: model usage against network CV, per SLA."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(slas), figsize=(7 * len(slas), 4.5), squeeze=False)
    cvs = sorted(results_by_cv)
    models = next(iter(results_by_cv.values()))[0].models
    colors = _model_colors(models)
    for ax, sla in zip(axes[0], slas):
        pts = [next(r for r in results_by_cv[cv] if r.policy == policy and r.sla_ms == sla) for cv in cvs]
        _stacked_usage(ax, [100 * cv for cv in cvs], pts, models, 7.0, colors)
        ax.set(xlabel="network CV (%)", ylabel="requests (%)", title=f"model usage, SLA {sla:g} ms",
               ylim=(0, 100))
    handles, labels = {}, {}
    for ax in axes[0]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    fig.legend(list(handles.values()), list(handles), fontsize=7, loc="center right")
    fig.subplots_adjust(right=0.8)
    fig.suptitle("Fig. 8: models used by ModiPick vs network variability")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
