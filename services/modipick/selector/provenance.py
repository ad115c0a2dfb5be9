"""What a decision says about itself: where its return leg came from (the client's own model, its
network class's, or the prior) and the predicted probability that the chosen model's reply meets
the SLA, for the replies (InferResponse / SelectResponse) and the metrics
(`modipick_selector_decisions_by_return_leg_source_total`)."""

from __future__ import annotations

import math
from typing import Any, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.registry import Collector

from modipick.core import Decision
from modipick.core.policies.risk_aware import meet_probability
from modipick.runtime.metrics import counter_family
from modipick.selector.budget import RequestBudget
from modipick.v1 import selector_pb2

_SOURCES = {"client": selector_pb2.RETURN_LEG_SOURCE_CLIENT, "class": selector_pb2.RETURN_LEG_SOURCE_CLASS,
            "prior": selector_pb2.RETURN_LEG_SOURCE_PRIOR}
_LABELS = {"client": "client", "class": "class", "prior": "prior", "": "none"}  # leg source -> label
_SQRT3 = math.sqrt(3.0)


def predicted_meet_probability(made: RequestBudget, decision: Decision) -> float:
    """P(upload + the model's queue and run + the return leg <= SLA): the model's time as its
    profile's mean and spread (plus the serving overhead's), the return leg as the decision
    estimated it (its learned distribution, else the point estimate)."""
    budget, model = made.budget, decision.model
    overhead_std = budget.overhead_std_ms
    spread = _SQRT3 * math.sqrt(model.std_ms * model.std_ms + overhead_std * overhead_std)
    x = budget.sla_ms - budget.upload_ms - model.mean_ms
    leg = made.leg
    if leg is None:  # a point estimate: meet_probability over the one offset 0 around it
        p = meet_probability(_EXACT, x, spread, budget.return_ms)
    else:
        p = meet_probability(leg.offsets, x, spread, leg.centre, leg.log_scale)
    return 1.0 if p > 1.0 else (0.0 if p < 0.0 else p)


_EXACT = (0.0,)  # ReturnLegEstimate.exact's offsets


class Provenance(Collector):
    """Stamps replies; the decisions by return-leg source are plain counts read at scrape time
    (a prometheus_client child's inc takes its lock on every request)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.counts: dict[str, int] = {name: 0 for name in _LABELS.values()}
        if registry is not None:
            registry.register(self)

    def stamp(self, reply, made: RequestBudget, decision: Decision):
        """Set the reply's return_leg_source and meet_probability, count the decision; returns `reply`."""
        source = made.leg_source
        self.counts[_LABELS.get(source, "none")] += 1
        reply.return_leg_source = _SOURCES.get(source, selector_pb2.RETURN_LEG_SOURCE_UNSPECIFIED)
        reply.meet_probability = predicted_meet_probability(made, decision)
        return reply

    def collect(self) -> Iterator[Any]:
        yield counter_family("modipick_selector_decisions_by_return_leg_source",
                             "Decisions by where their return-leg estimate came from", ["return_leg_source"],
                             {(name,): n for name, n in list(self.counts.items())})

    def describe(self) -> list:
        return []
