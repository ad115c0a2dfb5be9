"""Pass/fail bars for a load run, in the manner of k6 thresholds: `attainment>=0.9`,
`error_rate<=0.01`, `e2e_p95_ms<200`. Every run (policy x SLA x network) must pass every bar; the
command exits EXIT_THRESHOLDS_FAILED otherwise. Also failures by reason and the JSON summary."""

from __future__ import annotations

import argparse
import collections
import json
import math
import operator
import os
import re
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence

from modipick.loadgen.records import RequestRecord
from modipick.loadgen.summary import RunSummary

EXIT_THRESHOLDS_FAILED = 99  # k6's exit code for failed thresholds

# metric -> (what it is, how it is read from a run's summary; shares are fractions in [0, 1])
METRICS: dict[str, tuple[str, Callable[[RunSummary], float | None]]] = {
    "attainment": ("share of requests answered by a server model within the SLA",
                   lambda s: s.attainment_pct / 100.0),
    "error_rate": ("share of calls that failed (any gRPC status but OK)",
                   lambda s: s.failed / s.requests if s.requests else 0.0),
    "on_device_rate": ("share of requests the Selector sent back to the on-device model",
                       lambda s: s.on_device / s.requests if s.requests else 0.0),
    "effective_accuracy": ("accuracy with misses counted 0 (measured with labels, else declared)",
                           lambda s: _share(s.effective_accuracy_pct if s.effective_accuracy_pct is not None
                                            else s.effective_declared_pct)),
    "e2e_p50_ms": ("median end-to-end time", lambda s: s.e2e_p50_ms),
    "e2e_p95_ms": ("95th percentile end-to-end time", lambda s: s.e2e_p95_ms),
    "e2e_p99_ms": ("99th percentile end-to-end time", lambda s: s.e2e_p99_ms),
}
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq}
_PATTERN = re.compile(r"^\s*([a-z0-9_]+)\s*(>=|<=|==|>|<)\s*([-+0-9.eE]+)\s*$")


def _share(pct: float | None) -> float | None:
    return None if pct is None else pct / 100.0


@dataclass(frozen=True, slots=True)
class Threshold:
    metric: str
    op: str
    value: float

    @property
    def text(self) -> str:
        return f"{self.metric}{self.op}{self.value:g}"

    def passes(self, measured: float | None) -> bool:
        return measured is not None and measured == measured and _OPS[self.op](measured, self.value)


def parse_threshold(text: str) -> Threshold:
    match = _PATTERN.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"expected METRIC<OP>VALUE such as 'attainment>=0.9', got {text!r}")
    metric, op, number = match.groups()
    if metric not in METRICS:
        raise argparse.ArgumentTypeError(f"unknown metric {metric!r} in {text!r}; known: {', '.join(METRICS)}")
    try:
        value = float(number)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {number!r} in {text!r}") from None
    return Threshold(metric, op, value)


@dataclass(frozen=True, slots=True)
class Verdict:
    run: str
    threshold: Threshold
    measured: float | None

    @property
    def passed(self) -> bool:
        return self.threshold.passes(self.measured)


def evaluate(summaries: Sequence[RunSummary], thresholds: Sequence[Threshold]) -> list[Verdict]:
    return [Verdict(s.run, t, METRICS[t.metric][1](s)) for s in summaries for t in thresholds]


def failures_by_reason(records: Iterable[RequestRecord]) -> dict[str, collections.Counter]:
    """run label -> gRPC status of each failed call -> count (runs without failures left out)."""
    by_run: dict[str, collections.Counter] = {}
    for r in records:
        if r.status != "OK":
            by_run.setdefault(r.run, collections.Counter())[r.status] += 1
    return by_run


def format_failures(failures: Mapping[str, collections.Counter]) -> str:
    if not failures:
        return "failures by reason: none"
    lines = ["failures by reason:"]
    for run, counts in failures.items():
        lines.append(f"  {run}: " + ", ".join(f"{status} {n}" for status, n in counts.most_common()))
    return "\n".join(lines)


def format_verdicts(verdicts: Sequence[Verdict]) -> str:
    lines = []
    for v in verdicts:
        shown = "n/a" if v.measured is None else f"{v.measured:.4g}"
        lines.append(f"  {'pass' if v.passed else 'FAIL'}  {v.threshold.text:<24} {v.run}: {shown}")
    failed = sum(1 for v in verdicts if not v.passed)
    head = f"thresholds: {len(verdicts) - failed} of {len(verdicts)} passed"
    return "\n".join([head] + lines)


def write_summary_json(path: str | os.PathLike[str], summaries: Sequence[RunSummary],
                       failures: Mapping[str, collections.Counter], verdicts: Sequence[Verdict]) -> None:
    document = {
        "passed": all(v.passed for v in verdicts),
        "runs": [{**s.row(), "model_mix": s.model_mix, "failures_by_reason": dict(failures.get(s.run, {})),
                  "metrics": {name: read(s) for name, (_, read) in METRICS.items()}} for s in summaries],
        "thresholds": [{"run": v.run, "threshold": v.threshold.text, "measured": v.measured, "passed": v.passed}
                       for v in verdicts],
    }
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(_finite(document), handle, indent=2, allow_nan=False)
        handle.write("\n")


def _finite(value: object) -> object:
    """NaN and infinities (a run with nothing served has no percentiles) as null: strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
