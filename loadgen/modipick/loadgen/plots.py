"""Paper-style plots (matplotlib, Agg backend, PNG files).

  vs SLA:   end-to-end latency (mean, one std shaded), SLA attainment and accuracy per series (fig. 6a)
  models:   model usage vs SLA, one panel per series (fig. 6b)
  vs CV:    attainment and effective accuracy vs network CV per SLA (fig. 7), model usage vs CV (fig. 8)

A series is a policy, or a policy with what its clients uploaded (RunSummary.series).
"""

from __future__ import annotations

import os
from pathlib import Path

from modipick.loadgen.summary import RunSummary


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colors(summaries: list[RunSummary]) -> dict[str, str]:
    """One colour per series, the same in every panel and figure."""
    palette = [f"C{i}" for i in range(10)]
    all_series = list(dict.fromkeys(s.series for s in summaries))
    return {p: palette[i % len(palette)] for i, p in enumerate(all_series)}


def _by(summaries: list[RunSummary], key) -> dict:
    groups: dict = {}
    for s in summaries:
        groups.setdefault(key(s), []).append(s)
    return groups


def _accuracy(s: RunSummary) -> tuple[float | None, str]:
    if s.effective_accuracy_pct is not None:
        return s.effective_accuracy_pct, "effective accuracy % (labels; miss = 0)"
    return s.effective_declared_pct, "effective declared accuracy % (miss = 0)"


def _models(summaries: list[RunSummary]) -> list[str]:
    names = {m for s in summaries for m in s.model_mix}
    return sorted(names, key=lambda m: (m.startswith("("), m))


def plot_vs_sla(summaries: list[RunSummary], path: str | os.PathLike[str], title: str = "") -> Path:
    plt = _pyplot()
    fig, (ax_lat, ax_att, ax_acc) = plt.subplots(1, 3, figsize=(15, 4.5))
    acc_label = "accuracy %"
    slas_all: list[float] = []
    colors = _colors(summaries)
    for series, group in _by(summaries, lambda s: s.series).items():
        group = sorted(group, key=lambda s: s.sla_ms)
        sla = [s.sla_ms for s in group]
        slas_all += sla
        mean = [s.e2e_mean_ms for s in group]
        std = [s.e2e_std_ms for s in group]
        line, = ax_lat.plot(sla, mean, marker="o", label=series, color=colors[series])
        ax_lat.fill_between(sla, [m - d for m, d in zip(mean, std)], [m + d for m, d in zip(mean, std)],
                            color=line.get_color(), alpha=0.15)
        ax_att.plot(sla, [s.attainment_pct for s in group], marker="o", label=series, color=line.get_color())
        points = [(s.sla_ms, _accuracy(s)) for s in group]
        acc_label = points[0][1][1]
        ax_acc.plot([x for x, (v, _) in points if v is not None], [v for _, (v, _) in points if v is not None],
                    marker="o", label=series, color=line.get_color())
        measured = [(s.sla_ms, s.measured_accuracy_pct) for s in group if s.measured_accuracy_pct is not None]
        if measured:
            ax_acc.plot(*zip(*measured), linestyle="--", color=line.get_color(), alpha=0.6,
                        label=f"{series} (measured, served only)")
    if slas_all:
        lo, hi = min(slas_all), max(slas_all)
        ax_lat.plot([lo, hi], [lo, hi], color="grey", linestyle=":", label="SLA")
    ax_lat.set(xlabel="SLA (ms)", ylabel="end-to-end latency (ms)", title="latency vs SLA")
    ax_att.set(xlabel="SLA (ms)", ylabel="SLA attainment %", title="SLA attainment", ylim=(-2, 102))
    ax_acc.set(xlabel="SLA (ms)", ylabel=acc_label, title="accuracy vs SLA", ylim=(-2, 102))
    for ax in (ax_lat, ax_att, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def _stacked(ax, labels: list[str], groups: list[RunSummary], models: list[str]) -> None:
    """Stacked model shares, one bar per run at evenly spaced positions labelled `labels`."""
    xs = list(range(len(groups)))
    bottom = [0.0] * len(groups)
    for i, m in enumerate(models):
        heights = [100.0 * s.model_mix.get(m, 0.0) for s in groups]
        ax.bar(xs, heights, width=0.7, bottom=bottom, label=m, color=f"C{i % 10}")
        bottom = [b + h for b, h in zip(bottom, heights)]
    ax.set_xticks(xs, labels)


def plot_models_vs_sla(summaries: list[RunSummary], path: str | os.PathLike[str], title: str = "") -> Path:
    plt = _pyplot()
    all_series = _by(summaries, lambda s: s.series)
    models = _models(summaries)
    fig, axes = plt.subplots(1, len(all_series), figsize=(5 * len(all_series), 4.5), squeeze=False)
    for ax, (series, group) in zip(axes[0], all_series.items()):
        group = sorted(group, key=lambda s: s.sla_ms)
        _stacked(ax, [f"{s.sla_ms:g}" for s in group], group, models)
        ax.set(xlabel="SLA (ms)", ylabel="requests %", title=f"model usage: {series}", ylim=(0, 100))
    axes[0][-1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_vs_cv(summaries: list[RunSummary], path: str | os.PathLike[str], title: str = "") -> Path:
    plt = _pyplot()
    slas = _by([s for s in summaries if s.network_cv is not None], lambda s: s.sla_ms)
    colors = _colors(summaries)
    all_series = list(colors)
    models = _models(summaries)
    rows = len(slas)
    fig, axes = plt.subplots(rows, 2 + len(all_series), figsize=(5 * (2 + len(all_series)), 4 * rows), squeeze=False)
    for row, (sla, group) in zip(axes, sorted(slas.items())):
        ax_att, ax_acc, *ax_mix = row
        for series, pg in _by(group, lambda s: s.series).items():
            pg = sorted(pg, key=lambda s: s.network_cv)
            cvs = [100.0 * s.network_cv for s in pg]
            ax_att.plot(cvs, [s.attainment_pct for s in pg], marker="o", label=series, color=colors[series])
            acc = [(c, _accuracy(s)[0]) for c, s in zip(cvs, pg) if _accuracy(s)[0] is not None]
            if acc:
                ax_acc.plot(*zip(*acc), marker="o", label=series, color=colors[series])
        ax_att.set(xlabel="network CV %", ylabel="SLA attainment %", title=f"SLA {sla:g} ms", ylim=(-2, 102))
        ax_acc.set(xlabel="network CV %", ylabel="effective accuracy %", title=f"SLA {sla:g} ms", ylim=(-2, 102))
        for ax in (ax_att, ax_acc):
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        for ax, series in zip(ax_mix, all_series):
            pg = sorted((s for s in group if s.series == series), key=lambda s: s.network_cv)
            _stacked(ax, [f"{100.0 * s.network_cv:.0f}" for s in pg], pg, models)
            ax.set(xlabel="network CV %", ylabel="requests %", title=f"models: {series}, SLA {sla:g} ms",
                   ylim=(0, 100))
        if ax_mix:
            ax_mix[-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
