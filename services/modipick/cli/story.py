"""The demo's story, from its per-request records: for each SLA and policy, how many answers came
back in time, late, or from the phone's own model, and what accuracy that bought. Pure functions
(records in, text out) so the story's shape is tested without a suite."""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

# A server model was chosen but the phone's deadline (the SLA) passed first: a miss, not a fault.
LATE_STATUSES = frozenset({"DEADLINE_EXCEEDED"})

LEGEND = """\
in time    a server model answered and the answer was back on the phone within the SLA
late       a server model was chosen, but with the network legs its answer could not make the SLA
           (the phone stops waiting at the SLA); this is what a wrong choice costs
on phone   the Selector saw at once that no server model could make it and said so: the phone
           answers with its own small model. A quick, rough answer, the designed fallback, not an error
accuracy   effective accuracy: the ImageNet top-1 % of the model that answered in time (as declared
           for these architectures), averaged over every request; late and on-phone answers count 0
models     the server models that answered, by share of requests (a call the phone gave up on at
           the SLA does not say which model it was waiting for)

static greedy picks the most accurate model that fits the SLA, ignoring the network; ModiPick (the
paper) subtracts the network it sees, assuming the answer takes as long to come back as the photo
took to go up; risk_aware learns how long answers really take to come back, and weighs each model's
accuracy by its chance of making the SLA."""


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    mean_ms: float
    std_ms: float
    declared_accuracy: float


@dataclass
class StoryRow:
    sla_ms: float
    policy: str
    requests: int = 0
    in_time: int = 0
    late: int = 0
    on_phone: int = 0
    accuracy_points: float = 0.0
    models: collections.Counter = field(default_factory=collections.Counter)
    errors: collections.Counter = field(default_factory=collections.Counter)

    def pct(self, count: int) -> float:
        return 100.0 * count / self.requests if self.requests else 0.0

    @property
    def effective_accuracy(self) -> float:
        return self.accuracy_points / self.requests if self.requests else 0.0

    def model_mix(self, top: int = 2) -> str:
        if not self.models:
            return "-"
        shown = [f"{name} {self.pct(n):.0f}%" for name, n in self.models.most_common(top)]
        rest = sum(self.models.values()) - sum(n for _, n in self.models.most_common(top))
        return ", ".join(shown) + (f", others {self.pct(rest):.0f}%" if rest else "")


def place_slas(profiles: Sequence[Profile], network_ms: float) -> list[float]:
    """Three SLAs over what this machine and this network give, rounded to 10 ms: one where only
    the faster models fit after the network's median legs, one where the most accurate model just
    fits at the median (so the network's slow spells decide), and a roomy one."""
    by_speed = sorted(profiles, key=lambda p: p.mean_ms)
    middle = by_speed[len(by_speed) // 2]
    best = max(profiles, key=lambda p: (p.declared_accuracy, -p.mean_ms))
    targets = (network_ms + middle.mean_ms + 60.0, network_ms + best.mean_ms + 40.0,
               network_ms + best.mean_ms + 140.0)
    rounded = [float(math.ceil(t / 10.0) * 10) for t in targets]
    for i in range(1, len(rounded)):  # a slow middle model must not put the ladder out of order
        rounded[i] = max(rounded[i], rounded[i - 1] + 30.0)
    return rounded


def story_rows(records: Iterable, declared: Mapping[str, float]) -> list[StoryRow]:
    """One row per (SLA, policy), in the order the runs came."""
    rows: dict[tuple[float, str], StoryRow] = {}
    for r in records:
        row = rows.setdefault((r.sla_ms, r.policy), StoryRow(r.sla_ms, r.policy))
        row.requests += 1
        if r.status == "OK" and r.disposition == "run_on_device":
            row.on_phone += 1
        elif r.status == "OK" and r.disposition == "served":
            row.models[r.model] += 1
            if r.sla_met:
                row.in_time += 1
                row.accuracy_points += declared.get(r.model, 0.0)
            else:
                row.late += 1
        elif r.status in LATE_STATUSES:
            row.late += 1
            if r.model:
                row.models[r.model] += 1
        else:
            row.errors[r.status] += 1
    return sorted(rows.values(), key=lambda row: row.sla_ms)


def _cells(row: StoryRow) -> list[str]:
    return [f"{row.pct(row.in_time):.0f} %", f"{row.pct(row.late):.0f} %", f"{row.pct(row.on_phone):.0f} %",
            f"{row.effective_accuracy:.1f}", row.model_mix()]


HEADERS = ["in time", "late", "on phone", "accuracy", "models"]


def story_table(rows: Sequence[StoryRow]) -> str:
    width = max([len(r.policy) for r in rows] + [8])
    lines = [f"{'SLA':>7}  {'policy':<{width}}  {'in time':>7}  {'late':>5}  {'on phone':>8}  {'accuracy':>8}  models"]
    previous = None
    for row in rows:
        head = f"{row.sla_ms:4g} ms" if row.sla_ms != previous else ""
        previous = row.sla_ms
        in_time, late, on_phone, accuracy, models = _cells(row)
        lines.append(f"{head:>7}  {row.policy:<{width}}  {in_time:>7}  {late:>5}  {on_phone:>8}  {accuracy:>8}  "
                     f"{models}")
    lines += _error_notes(rows)
    return "\n".join(lines)


def story_markdown(rows: Sequence[StoryRow]) -> str:
    lines = ["# modipick demo", "", "| SLA | policy | " + " | ".join(HEADERS) + " |",
             "|--:|---|--:|--:|--:|--:|---|"]
    for row in rows:
        lines.append(f"| {row.sla_ms:g} ms | {row.policy} | " + " | ".join(_cells(row)) + " |")
    lines += [""] + _error_notes(rows) + ["", "```", LEGEND, "```", ""]
    return "\n".join(lines)


def _error_notes(rows: Sequence[StoryRow]) -> list[str]:
    notes = []
    for row in rows:
        if row.errors:
            what = ", ".join(f"{n} x {status}" for status, n in row.errors.most_common())
            notes.append(f"SLA {row.sla_ms:g} ms, {row.policy}: {what} (calls that failed, not counted as answers)")
    return notes
