"""What a decision says about itself: where its return leg came from (the client's own model, its
network class's, or the prior) and the predicted probability that the chosen model's reply meets
the SLA, for the replies (InferResponse / SelectResponse) and the metrics
(`modipick_selector_decisions_by_return_leg_source_total`)."""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry, Counter

from modipick.core import Decision
from modipick.core.policies.risk_aware import meet_probability
from modipick.core.returnleg import ReturnLegEstimate
from modipick.selector.budget import RequestBudget
from modipick.v1 import selector_pb2

_SOURCES = {"client": selector_pb2.RETURN_LEG_SOURCE_CLIENT, "class": selector_pb2.RETURN_LEG_SOURCE_CLASS,
            "prior": selector_pb2.RETURN_LEG_SOURCE_PRIOR}
_SQRT3 = math.sqrt(3.0)


def predicted_meet_probability(made: RequestBudget, decision: Decision) -> float:
    """P(upload + the model's queue and run + the return leg <= SLA): the model's time as its
    profile's mean and spread (plus the serving overhead's), the return leg as the decision
    estimated it (its learned distribution, else the point estimate)."""
    budget, model = made.budget, decision.model
    leg = made.leg if made.leg is not None else ReturnLegEstimate.exact(budget.return_ms)
    spread = _SQRT3 * math.sqrt(model.std_ms * model.std_ms + budget.overhead_std_ms * budget.overhead_std_ms)
    x = budget.sla_ms - budget.upload_ms - model.mean_ms
    p = meet_probability(leg.offsets, x, spread, leg.centre, leg.log_scale)
    return min(1.0, max(0.0, p))


class Provenance:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.decisions = Counter("modipick_selector_decisions_by_return_leg_source",
                                 "Decisions by where their return-leg estimate came from",
                                 ["return_leg_source"], registry=registry)
        self._children = {name: self.decisions.labels(name) for name in ("client", "class", "prior", "none")}

    def stamp(self, reply, made: RequestBudget, decision: Decision):
        """Set the reply's return_leg_source and meet_probability, count the decision; returns `reply`."""
        source = made.leg_source
        self._children[source or "none"].inc()
        reply.return_leg_source = _SOURCES.get(source, selector_pb2.RETURN_LEG_SOURCE_UNSPECIFIED)
        reply.meet_probability = predicted_meet_probability(made, decision)
        return reply
