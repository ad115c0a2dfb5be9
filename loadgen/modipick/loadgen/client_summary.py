"""What a run gave each client of a population: per-client attainment and effective accuracy, and the
clients at the 5th and 50th percentile of them (the p5 client is the one worse off than 95 % of the
others), plus whose return-leg model the Selector's decisions used.

Only clients with at least `min_requests` requests enter the distributions: under Zipf activity most
clients send a handful of requests, whose attainment is 0 or 100 % by chance.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

import numpy as np

from modipick.loadgen.records import RequestRecord

MIN_REQUESTS = 5
LEG_SOURCES = ("client", "class", "prior")


@dataclass(frozen=True)
class ClientDistribution:
    clients: int                          # distinct clients that sent requests
    qualified: int                        # of them with >= min_requests requests
    min_requests: int
    requests_p50: float                   # requests per client
    requests_max: int
    attainment_p5_pct: float | None
    attainment_p50_pct: float | None
    effective_accuracy_p5_pct: float | None
    effective_accuracy_p50_pct: float | None
    # share of served decisions per return-leg source; empty when the Selector does not say
    leg_sources: dict[str, float] = field(default_factory=dict)

    @property
    def own_model_pct(self) -> float | None:
        """% of served decisions that used the client's own return-leg model (None: not reported)."""
        return 100.0 * self.leg_sources.get("client", 0.0) if self.leg_sources else None

    def row(self) -> dict[str, object]:
        data = {f"client_{k}": v for k, v in self.__dict__.items() if k != "leg_sources"}
        data["client_own_model_pct"] = self.own_model_pct
        return data


def _client_pct(values: list[float], q: float) -> float | None:
    # "inverted_cdf": the value of an actual client, not an interpolation between two
    return float(np.percentile(values, q, method="inverted_cdf")) if values else None


def client_distribution(records: list[RequestRecord], min_requests: int = MIN_REQUESTS) -> ClientDistribution | None:
    """None unless the run had more than one client."""
    by_client: dict[str, list[RequestRecord]] = collections.defaultdict(list)
    for r in records:
        by_client[r.client_id].append(r)
    if len(by_client) < 2 or "" in by_client:
        return None
    counts = [len(rs) for rs in by_client.values()]
    qualified = [rs for rs in by_client.values() if len(rs) >= min_requests]
    attainment = [100.0 * sum(1 for r in rs if r.served and r.sla_met) / len(rs) for rs in qualified]
    labelled = [rs for rs in qualified if any(r.label is not None for r in rs)]
    effective = [100.0 * sum(1 for r in rs if r.served and r.sla_met and r.correct) / len(rs) for rs in labelled]
    served = [r for r in records if r.served]
    reported = collections.Counter(r.return_leg_source for r in served if r.return_leg_source)
    sources = {s: reported[s] / len(served) for s in LEG_SOURCES} if reported else {}
    return ClientDistribution(
        clients=len(by_client), qualified=len(qualified), min_requests=min_requests,
        requests_p50=float(np.median(counts)), requests_max=max(counts),
        attainment_p5_pct=_client_pct(attainment, 5), attainment_p50_pct=_client_pct(attainment, 50),
        effective_accuracy_p5_pct=_client_pct(effective, 5), effective_accuracy_p50_pct=_client_pct(effective, 50),
        leg_sources=sources)
