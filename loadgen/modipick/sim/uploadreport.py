"""Outputs of `modipick sim uploads`: uploads.csv, payloads.csv, targets.md and one plot per trace set."""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Sequence

from modipick.sim.payloads import Payload
from modipick.sim.uploadsim import UploadRow

ORACLE_FLOOR = 50.0      # targets apply where the joint oracle attains at least this
ORACLE_RATIO = 0.95      # adaptive >= this share of the oracle's effective accuracy
GAIN_SET = "3g"          # where adaptive must beat the best fixed size by GAIN_POINTS ...
GAIN_SLAS = (100.0, 200.0)  # ... averaged over SLAs in this range
GAIN_POINTS = 2.0


@dataclass(frozen=True)
class Check:
    name: str
    met: bool
    detail: str


def _by(rows: Sequence[UploadRow]) -> dict[tuple[str, float], dict[str, UploadRow]]:
    out: dict[tuple[str, float], dict[str, UploadRow]] = {}
    for r in rows:
        out.setdefault((r.trace_set, r.sla_ms), {})[r.policy] = r
    return out


def evaluate(rows: Sequence[UploadRow], metric: str = "effective_pct") -> list[Check]:
    checks = []
    table = _by(rows)
    for (ts, sla), pol in sorted(table.items()):
        oracle, adaptive, best = pol["oracle"], pol["adaptive"], pol["best_fixed"]
        o, a, b = getattr(oracle, metric), getattr(adaptive, metric), getattr(best, metric)
        if oracle.attainment_pct < ORACLE_FLOOR:
            continue
        ratio = a / o if o > 0 else 1.0
        checks.append(Check(f"{ts} SLA {sla:g}: adaptive >= {ORACLE_RATIO:.0%} of oracle and >= best fixed",
                            ratio >= ORACLE_RATIO and a >= b - 1e-9,
                            f"adaptive {a:.2f}, oracle {o:.2f} ({ratio:.1%}), best fixed {b:.2f} ({best.note})"))
    gain = [(pol["adaptive"], pol["best_fixed"]) for (ts, sla), pol in table.items()
            if ts == GAIN_SET and GAIN_SLAS[0] <= sla <= GAIN_SLAS[1]]
    if gain:
        a = sum(getattr(x, metric) for x, _ in gain) / len(gain)
        b = sum(getattr(y, metric) for _, y in gain) / len(gain)
        checks.append(Check(f"{GAIN_SET}, SLA {GAIN_SLAS[0]:g}-{GAIN_SLAS[1]:g}: adaptive >= best fixed + "
                            f"{GAIN_POINTS:g} points", a >= b + GAIN_POINTS,
                            f"adaptive {a:.2f}, best fixed {b:.2f} (+{a - b:.2f})"))
    return checks


def write_csv(rows: Sequence[UploadRow], path: Path) -> Path:
    names = [f.name for f in fields(UploadRow)]
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, names)
        w.writeheader()
        for r in rows:
            d = asdict(r)
            w.writerow({k: (f"{v:.3f}" if isinstance(v, float) else v) for k, v in d.items()})
    return path


def write_payloads(ladder: Sequence[Payload], path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(("input_size", "bytes", "source"))
        for p in ladder:
            w.writerow((p.input_size or "original", p.bytes, p.source))
    return path


def table_markdown(rows: Sequence[UploadRow],
                   policies: Sequence[str] = ("paper_330KB", "best_fixed", "adaptive", "oracle")) -> str:
    lines = ["| trace set | SLA ms | policy | attainment % | effective % (device counted) | effective % (miss = 0) "
             "| answered % | mean KB | note |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.policy in policies:
            lines.append(f"| {r.trace_set} | {r.sla_ms:g} | {r.policy} | {r.attainment_pct:.1f} "
                         f"| {r.effective_pct:.2f} | {r.effective_server_pct:.2f} | {r.answered_pct:.1f} "
                         f"| {r.mean_payload_kb:.1f} | {r.note} |")
    return "\n".join(lines) + "\n"


def targets_markdown(checks: Sequence[Check], title: str) -> str:
    lines = [f"### {title}", "", "| target | met | numbers |", "|---|---|---|"]
    lines += [f"| {c.name} | {'yes' if c.met else 'NO'} | {c.detail} |" for c in checks]
    return "\n".join(lines) + "\n"


_STYLES = {"paper_330KB": ("tab:red", ":", "paper's 330 KB upload"),
           "best_fixed": ("tab:orange", "-", "best fixed size (hindsight)"),
           "fixed_224": ("tab:gray", "-.", "fixed 224 px JPEG"), "adaptive": ("tab:green", "-", "adaptive (SDK)"),
           "oracle": ("black", "--", "oracle over size x model")}


def plot_set(rows: Sequence[UploadRow], trace_set: str, path: Path) -> Path:
    from modipick.sim.plots import _pyplot, _save

    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    mine = [r for r in rows if r.trace_set == trace_set]
    for ax, attr, label in ((axes[0], "effective_pct", "effective accuracy, device answers counted (%)"),
                            (axes[1], "effective_server_pct", "effective accuracy, server only: miss = 0 (%)")):
        for policy, (color, style, name) in _STYLES.items():
            pts = sorted((r.sla_ms, getattr(r, attr)) for r in mine if r.policy == policy)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], color=color, linestyle=style, label=name,
                        linewidth=2 if policy == "adaptive" else 1.2)
        ax.set(xlabel="SLA (ms)", ylabel=label, title=trace_set)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    return _save(fig, path)
