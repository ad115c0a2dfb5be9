"""What a run achieved: SLA attainment, accuracies, latency percentiles, model mix.

  attainment          % of requests served by a server model with e2e <= SLA
  effective accuracy  % of requests that met the SLA AND were right (a miss counts 0); labels needed
  measured accuracy   % right among served requests with a label and a prediction
  declared accuracy   mean declared accuracy of the models that served
  effective declared  the same with misses counted 0 (the paper's figure 7 metric, no labels needed)

A run of a client population adds per-client distributions (modipick.loadgen.client_summary).
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import numpy as np

from modipick.loadgen.client_summary import MIN_REQUESTS, ClientDistribution, client_distribution
from modipick.loadgen.records import RequestRecord

ON_DEVICE = "(on-device)"
FAILED = "(failed)"


@dataclass(frozen=True)
class RunSummary:
    run: str
    policy: str
    network: str
    network_cv: float | None
    sla_ms: float
    requests: int
    served: int
    on_device: int
    failed: int
    attainment_pct: float
    effective_accuracy_pct: float | None
    measured_accuracy_pct: float | None
    declared_accuracy_pct: float | None
    effective_declared_pct: float | None
    e2e_mean_ms: float
    e2e_std_ms: float
    e2e_p50_ms: float
    e2e_p95_ms: float
    e2e_p99_ms: float
    lag_p50_ms: float
    lag_p99_ms: float
    lag_max_ms: float
    model_mix: dict[str, float] = field(default_factory=dict)  # model -> fraction of requests
    clients: ClientDistribution | None = None                 # a population's per-client view
    upload: str = ""                                          # what the client uploaded (records' upload)

    @property
    def series(self) -> str:
        """What a plot's line or a comparison's column is: the policy, with the upload when one was chosen."""
        return f"{self.policy} upload={self.upload}" if self.upload else self.policy

    def row(self) -> dict[str, object]:
        data = {k: v for k, v in self.__dict__.items() if k not in ("model_mix", "clients")}
        data["model_mix"] = ";".join(f"{m}={f:.4f}" for m, f in self.model_mix.items())
        if self.clients is not None:
            data.update(self.clients.row())
        return data


def _pct(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def summarize_run(records: list[RequestRecord], declared: Mapping[str, float] | None = None,
                  min_client_requests: int = MIN_REQUESTS) -> RunSummary:
    if not records:
        raise ValueError("no records to summarize")
    declared = declared or {}
    first = records[0]
    n = len(records)
    served = [r for r in records if r.served]
    on_device = sum(1 for r in records if r.status == "OK" and r.disposition == "run_on_device")
    failed = sum(1 for r in records if r.status != "OK")
    met = [r for r in served if r.sla_met]
    labelled = [r for r in served if r.correct is not None]
    has_labels = bool(labelled) or (any(r.label is not None for r in records) and not served)
    e2e = np.array([r.e2e_ms for r in records])
    lags = np.array([r.lag_ms for r in records])
    known = [declared[r.model] for r in served if r.model in declared]
    mix: collections.Counter[str] = collections.Counter()
    for r in records:
        mix[r.model if r.served else ON_DEVICE if r.status == "OK" else FAILED] += 1
    networks = sorted({r.network for r in records})
    return RunSummary(
        run=first.run, policy=first.policy, upload=first.upload,
        network=networks[0] if len(networks) == 1 else "+".join(networks),
        network_cv=first.network_cv,
        sla_ms=first.sla_ms, requests=n, served=len(served), on_device=on_device, failed=failed,
        attainment_pct=100.0 * len(met) / n,
        effective_accuracy_pct=100.0 * sum(1 for r in met if r.correct) / n if has_labels else None,
        measured_accuracy_pct=100.0 * sum(1 for r in labelled if r.correct) / len(labelled) if labelled else None,
        declared_accuracy_pct=float(np.mean(known)) if served and len(known) == len(served) else None,
        effective_declared_pct=(sum(declared[r.model] for r in met) / n
                                if served and len(known) == len(served)
                                else 0.0 if declared and not served else None),  # nothing served: all missed
        e2e_mean_ms=float(e2e.mean()), e2e_std_ms=float(e2e.std()),
        e2e_p50_ms=_pct(e2e, 50), e2e_p95_ms=_pct(e2e, 95), e2e_p99_ms=_pct(e2e, 99),
        lag_p50_ms=_pct(lags, 50), lag_p99_ms=_pct(lags, 99), lag_max_ms=float(lags.max()),
        model_mix={m: c / n for m, c in sorted(mix.items(), key=lambda kv: (-kv[1], kv[0]))},
        clients=client_distribution(records, min_client_requests),
    )


def summarize(records: Iterable[RequestRecord], declared: Mapping[str, float] | None = None,
              min_client_requests: int = MIN_REQUESTS) -> list[RunSummary]:
    """One summary per run label, in first-seen order."""
    runs: dict[str, list[RequestRecord]] = {}
    for r in records:
        runs.setdefault(r.run, []).append(r)
    return [summarize_run(rs, declared, min_client_requests) for rs in runs.values()]


def _fmt(value: object, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return "n/a" if value != value else f"{value:.{digits}f}"
    return str(value)


METRICS: list[tuple[str, str]] = [
    ("requests", "requests"),
    ("SLA attainment %", "attainment_pct"),
    ("effective accuracy %", "effective_accuracy_pct"),
    ("measured accuracy %", "measured_accuracy_pct"),
    ("declared accuracy %", "declared_accuracy_pct"),
    ("effective declared %", "effective_declared_pct"),
    ("e2e p50 ms", "e2e_p50_ms"),
    ("e2e p95 ms", "e2e_p95_ms"),
    ("e2e p99 ms", "e2e_p99_ms"),
    ("on-device", "on_device"),
    ("failed", "failed"),
    ("lag p99 ms", "lag_p99_ms"),
]


def format_table(header: list[str], rows: list[list[str]], markdown: bool = False) -> str:
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    out = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths)))]
    out += ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
            for row in rows]
    return "\n".join(out)


def comparison_tables(summaries: list[RunSummary], markdown: bool = False) -> str:
    """Side by side: one table per (network, SLA), policies as columns, metrics as rows."""
    groups: dict[tuple[str, float], list[RunSummary]] = {}
    for s in summaries:
        groups.setdefault((s.network, s.sla_ms), []).append(s)
    blocks = []
    for (network, sla), group in groups.items():
        header = [f"network {network}, SLA {sla:g} ms"] + [s.series for s in group]
        rows = [[label] + [_fmt(getattr(s, attr)) for s in group] for label, attr in METRICS]
        models = sorted({m for s in group for m in s.model_mix}, key=lambda m: (m.startswith("("), m))
        rows += [[f"mix: {m}"] + [f"{100 * s.model_mix.get(m, 0.0):.1f}%" for s in group] for m in models]
        blocks.append(format_table(header, rows, markdown))
    return "\n\n".join(blocks)


def summary_table(summaries: list[RunSummary], markdown: bool = False) -> str:
    """One row per run."""
    header = ["run", "n", "attain %", "eff acc %", "meas acc %", "decl acc %", "eff decl %", "p50 ms", "p95 ms",
              "p99 ms", "lag p99 ms", "top models"]
    rows = []
    for s in summaries:
        top = ", ".join(f"{m} {100 * f:.0f}%" for m, f in list(s.model_mix.items())[:3])
        rows.append([s.run, str(s.requests), _fmt(s.attainment_pct), _fmt(s.effective_accuracy_pct),
                     _fmt(s.measured_accuracy_pct), _fmt(s.declared_accuracy_pct),
                     _fmt(s.effective_declared_pct), _fmt(s.e2e_p50_ms),
                     _fmt(s.e2e_p95_ms), _fmt(s.e2e_p99_ms), _fmt(s.lag_p99_ms, 2), top])
    return format_table(header, rows, markdown)


def client_table(summaries: list[RunSummary], markdown: bool = False) -> str:
    """Per-client distributions of the runs that had a population ("" when none had)."""
    header = ["run", "clients", "with >= n req", "req/client p50", "attain % p5", "attain % p50",
              "eff acc % p5", "eff acc % p50", "own model %"]
    rows = []
    for s in summaries:
        c = s.clients
        if c is None:
            continue
        header[2] = f"with >= {c.min_requests} req"
        rows.append([s.run, str(c.clients), str(c.qualified), _fmt(c.requests_p50), _fmt(c.attainment_p5_pct),
                     _fmt(c.attainment_p50_pct), _fmt(c.effective_accuracy_p5_pct),
                     _fmt(c.effective_accuracy_p50_pct), _fmt(c.own_model_pct)])
    return format_table(header, rows, markdown) if rows else ""
