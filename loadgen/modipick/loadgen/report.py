"""One folder per experiment: report.md, records.csv, summary.csv and the PNG plots."""

from __future__ import annotations

import csv
import datetime as dt
import os
import platform
import shlex
from pathlib import Path
from typing import Mapping, Sequence

from modipick.loadgen.plots import plot_models_vs_sla, plot_vs_cv, plot_vs_sla
from modipick.loadgen.records import RequestRecord, write_records
from modipick.loadgen.summary import (RunSummary, client_table, comparison_tables, format_table, summarize,
                                     summary_table)
from modipick.loadgen.traces.legs import LegStats


def write_summary_csv(path: str | os.PathLike[str], summaries: list[RunSummary]) -> None:
    rows = [s.row() for s in summaries]
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None else (f"{v:.4f}" if isinstance(v, float) else v)
                             for k, v in row.items()})


def _network_table(stats: Sequence[LegStats]) -> str:
    rows = [[s.name, f"{s.mean_ms:.1f}", f"{s.std_ms:.1f}", f"{100 * s.cv:.0f}%", f"{s.p50_ms:.1f}",
             f"{s.p95_ms:.1f}", f"{s.p99_ms:.1f}"] for s in stats]
    return format_table(["network", "mean ms", "std ms", "CV", "p50 ms", "p95 ms", "p99 ms"], rows, markdown=True)


def write_report(folder: str | os.PathLike[str], records: list[RequestRecord], *,
                 declared: Mapping[str, float] | None = None, argv: Sequence[str] = (),
                 settings: Mapping[str, object] | None = None,
                 network_stats: Sequence[LegStats] = (), min_client_requests: int = 5) -> Path:
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    summaries = summarize(records, declared, min_client_requests)
    write_records(out / "records.csv", records)
    write_summary_csv(out / "summary.csv", summaries)
    plots: list[tuple[str, str]] = []
    for network, group in _by_network(summaries).items():
        suffix = "" if len(_by_network(summaries)) == 1 else f"_{_slug(network)}"
        if len({s.sla_ms for s in group}) >= 2:
            plot_vs_sla(group, out / f"latency_accuracy_vs_sla{suffix}.png", title=f"network {network}")
            plot_models_vs_sla(group, out / f"models_vs_sla{suffix}.png", title=f"network {network}")
            plots += [(f"End-to-end latency, SLA attainment and accuracy vs SLA ({network})",
                       f"latency_accuracy_vs_sla{suffix}.png"),
                      (f"Model usage vs SLA ({network})", f"models_vs_sla{suffix}.png")]
    with_cv = [s for s in summaries if s.network_cv is not None]
    if len({s.network for s in with_cv}) >= 2:
        plot_vs_cv(with_cv, out / "vs_network_cv.png", title="vs network variability")
        plots.append(("SLA attainment, effective accuracy and model usage vs network CV", "vs_network_cv.png"))

    lines = ["# modipick loadgen report", "",
             f"- date: {dt.datetime.now().astimezone().isoformat(timespec='seconds')}",
             f"- machine: {platform.node()}, {platform.machine()}, {os.cpu_count()} CPUs, Python "
             f"{platform.python_version()}"]
    if argv:
        lines.append(f"- command: `modipick loadgen {' '.join(shlex.quote(a) for a in argv)}`")
    for key, value in (settings or {}).items():
        lines.append(f"- {key}: {value}")
    if network_stats:
        lines += ["", "## Networks (upload leg per request)", "", _network_table(network_stats)]
    lines += ["", "## Summary", "", summary_table(summaries, markdown=True)]
    clients = client_table(summaries, markdown=True)
    if clients:
        lines += ["", "## Clients", "", "Per-client SLA attainment and effective accuracy: the p5 client is worse "
                  "off than 95 % of the clients with enough requests; own model % is the share of served decisions "
                  "that used the client's own return-leg model, as the Selector reported it (n/a: not reported).",
                  "", clients]
    if len({s.series for s in summaries}) >= 2:
        lines += ["", "## Policies side by side", "", comparison_tables(summaries, markdown=True)]
    for caption, name in plots:
        lines += ["", f"### {caption}", "", f"![{caption}]({name})"]
    lines += ["", "Files: `records.csv` (one row per request), `summary.csv` (one row per run).",
              "Attainment counts a request met when a server model answered and the reply was back within the "
              "SLA, measured from the request's intended send time; effective accuracy counts a miss as 0.", ""]
    (out / "report.md").write_text("\n".join(lines), encoding="utf-8")
    return out / "report.md"


def _by_network(summaries: list[RunSummary]) -> dict[str, list[RunSummary]]:
    groups: dict[str, list[RunSummary]] = {}
    for s in summaries:
        groups.setdefault(s.network, []).append(s)
    return groups


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)[:60]
