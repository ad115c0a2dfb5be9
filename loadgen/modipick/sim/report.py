"""CSV outputs of a run: summary.csv (exact columns, the contract), model_usage.csv, timeline.csv."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterable, Sequence

from modipick.sim.runner import REASONS, PointResult

SUMMARY_COLUMNS = ("scenario", "policy", "sla_ms", "requests", "attainment_pct", "mean_accuracy_pct",
                   "effective_accuracy_pct", "mean_e2e_ms", "p95_e2e_ms")
USAGE_COLUMNS = ("scenario", "policy", "sla_ms", "model", "share_pct") + REASONS


def fmt(value: float) -> str:
    return f"{value:g}" if float(value).is_integer() else f"{value:.3f}"


def summary_row(r: PointResult) -> dict[str, str]:
    return {"scenario": r.scenario, "policy": r.policy, "sla_ms": fmt(r.sla_ms), "requests": str(r.requests),
            "attainment_pct": f"{r.attainment_pct:.3f}", "mean_accuracy_pct": f"{r.mean_accuracy_pct:.3f}",
            "effective_accuracy_pct": f"{r.effective_accuracy_pct:.3f}",
            "mean_e2e_ms": f"{r.mean_e2e_ms:.3f}", "p95_e2e_ms": f"{r.p95_e2e_ms:.3f}"}


def usage_rows(r: PointResult) -> Iterable[dict[str, str]]:
    for k, model in enumerate(r.models):
        row = {"scenario": r.scenario, "policy": r.policy, "sla_ms": fmt(r.sla_ms), "model": model,
               "share_pct": f"{100.0 * r.usage[k] / r.requests:.3f}"}
        row.update({reason: str(int(r.reasons[k, j])) for j, reason in enumerate(REASONS)})
        yield row


def _write(path: Path, columns: Sequence[str], rows: Iterable[dict]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_outputs(results: Sequence[PointResult], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = [_write(out / "summary.csv", SUMMARY_COLUMNS, (summary_row(r) for r in results)),
               _write(out / "model_usage.csv", USAGE_COLUMNS, (row for r in results for row in usage_rows(r)))]
    timeline = [row for r in results for row in r.timeline]
    if timeline:
        written.append(_write(out / "timeline.csv", list(timeline[0]),
                              ({k: fmt(v) if isinstance(v, float) else v for k, v in row.items()}
                               for row in timeline)))
    drift = [row for r in results for row in r.drift]
    if drift:
        written.append(_write(out / "drift.csv", list(drift[0]),
                              ({k: fmt(v) if isinstance(v, float) else ("" if v is None else v)
                                for k, v in row.items()} for row in drift)))
    return written


def read_summary(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))
