"""What one inference returned, as the client saw it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modipick.v1 import selector_pb2
from modipick.v1.contract import REASON_NAMES, RETURN_LEG_SOURCE_NAMES

OUTPUT_SCORES = "scores"


@dataclass(frozen=True, slots=True)
class Timings:
    """Server-side milliseconds (see modipick.v1.Timings)."""

    upload_ms: float = 0.0
    budget_ms: float = 0.0
    selection_ms: float = 0.0
    queue_ms: float = 0.0
    execution_ms: float = 0.0
    server_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class InferResult:
    request_id: str
    sla_ms: float
    e2e_ms: float                 # measured here: send stamp to reply (plus any emulated return leg)
    run_on_device: bool           # the server declined: nothing fits, run the on-device model
    model: str = ""
    version: int = 0
    reason: str = "unspecified"   # base | explored | fallback
    label: int | None = None      # predicted class; None when run_on_device
    label_name: str = ""
    score: float = 0.0
    scores: tuple[float, ...] = ()
    timings: Timings = field(default_factory=Timings)
    # the decision's provenance: whose return-leg model it budgeted with (client: this client's own,
    # learned from its outcome reports; class: its network class's; prior: nothing learned yet;
    # unspecified: the Selector learns no return legs), and the predicted probability that the
    # chosen model's reply meets the SLA (upload, queue and run, return leg), in [0, 1]
    return_leg_source: str = "unspecified"
    meet_probability: float = 0.0
    # the Selector's OutcomeTicket: report_outcome echoes it, so any Selector replica learns from the report
    outcome_ticket: selector_pb2.OutcomeTicket | None = field(default=None, repr=False, compare=False)
    # infer(label=...) reports the outcome after the reply; a report that fails leaves the
    # prediction as it is and says why here ("" : reported, or not asked to report)
    outcome_error: str = ""
    client_id: str = ""           # the id the request was sent under; its outcome is reported under it

    def as_numpy(self, name: str = OUTPUT_SCORES) -> Any:
        """An output tensor as a numpy array: "scores" is the model's output, shape (1, classes),
        float32 (None when run on device)."""
        if name != OUTPUT_SCORES:
            raise KeyError(f"no output named {name!r} (outputs: {OUTPUT_SCORES!r})")
        if self.run_on_device:
            return None
        import numpy as np

        return np.asarray(self.scores, dtype=np.float32).reshape(1, -1)

    @property
    def met_sla(self) -> bool:
        return not self.run_on_device and self.e2e_ms <= self.sla_ms

    @property
    def disposition(self) -> str:
        return "run_on_device" if self.run_on_device else "served"

    @property
    def prediction(self) -> int | None:
        return self.label


def from_response(reply: selector_pb2.InferResponse, *, request_id: str, sla_ms: float,
                  e2e_ms: float, client_id: str = "") -> InferResult:
    on_device = reply.disposition == selector_pb2.DISPOSITION_RUN_ON_DEVICE
    t = reply.timings
    timings = Timings(t.upload_ms, t.budget_ms, t.selection_ms, t.queue_ms, t.execution_ms, t.server_ms)
    p = reply.prediction
    return InferResult(
        request_id=reply.request_id or request_id, sla_ms=sla_ms, e2e_ms=e2e_ms, run_on_device=on_device,
        model=reply.model.name, version=reply.model.version, reason=REASON_NAMES.get(reply.reason, "unspecified"),
        label=None if on_device else p.label, label_name=p.label_name, score=p.score,
        scores=tuple(p.scores), timings=timings,
        return_leg_source=RETURN_LEG_SOURCE_NAMES.get(reply.return_leg_source, "unspecified"),
        meet_probability=reply.meet_probability,
        outcome_ticket=reply.ticket if reply.HasField("ticket") else None, client_id=client_id)
