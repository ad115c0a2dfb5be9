"""The Selector's Prometheus metrics (names and labels: modipick.runtime.metrics)."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

from modipick.core.policies import LIVE_POLICIES
from modipick.runtime.metrics import (SECONDS_BUCKETS, CountingHistogram, ReadCollector,
                                      counter_family, labelled, redis_errors_counter, watch_security)
from modipick.stores import AsyncProfileLegStore, ErrorCountingStore

UNKNOWN_POLICY = "unknown"


class _SelectorCounts(Collector):
    """modipick_requests_total, modipick_sla_met_total, modipick_selections_total and
    modipick_budget_seconds from SelectorMetrics' plain counts, at scrape time."""

    def __init__(self, metrics: "SelectorMetrics") -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Any]:
        m = self._metrics
        yield counter_family("modipick_requests", "Infer requests by policy and disposition",
                             ["policy", "disposition"], m.requests)
        yield counter_family("modipick_sla_met", "Infer requests served within their SLA", ["policy"],
                             {(policy,): n for policy, n in list(m.sla_met.items())})
        budget = HistogramMetricFamily("modipick_budget_seconds", "Execution budget T_U per decision (s)")
        budget.add_metric([], m.budget.cumulative(), m.budget.sum)
        yield budget
        yield counter_family("modipick_selections", "Model selections by model and reason", ["model", "reason"],
                             m.selections)

    def describe(self) -> list:
        return []


class SelectorMetrics:
    """The request path counts in plain dicts, read at scrape time (`_SelectorCounts`): a
    prometheus_client child's inc or observe takes its lock and ~1-2 us warm, several times that
    on a CPU that idled since the last request, and Infer makes four of them."""

    def __init__(self, registry: CollectorRegistry | None = None, *, policies: Iterable[str] | None = None) -> None:
        if policies is None:
            policies = LIVE_POLICIES
        self.registry = registry if registry is not None else CollectorRegistry()
        self._policies = frozenset(policies)  # other names are labelled "unknown" (bounded cardinality)
        self.requests: dict[tuple[str, str], int] = {}  # (policy, disposition) -> count
        self.sla_met: dict[str, int] = {}               # policy -> count
        self.selections: dict[tuple[str, str], int] = {}  # (model, reason) -> count
        self.budget = CountingHistogram(SECONDS_BUCKETS)
        self.registry.register(_SelectorCounts(self))
        self.e2e = Histogram("modipick_e2e_seconds",
                             "End-to-end time clients reported through ReportOutcome, by serving policy (s)",
                             ["policy"], buckets=SECONDS_BUCKETS, registry=self.registry)
        self._e2e_children: dict[tuple, Any] = {}
        self.staleness = Gauge("modipick_profile_staleness_seconds", "Age of the local profile copy (s)",
                               registry=self.registry)
        self.redis_errors = redis_errors_counter(self.registry)

    def policy_label(self, requested: str, default: str) -> str:
        name = requested or default
        return name if name in self._policies else UNKNOWN_POLICY

    def request(self, policy: str, disposition: str, *, sla_met: bool = False) -> None:
        key = (policy, disposition)
        self.requests[key] = self.requests.get(key, 0) + 1
        if sla_met:
            self.sla_met[policy] = self.sla_met.get(policy, 0) + 1

    def dispositions(self) -> dict[str, int]:
        """Infer replies by disposition (served, run_on_device, error), every policy together."""
        totals: dict[str, int] = {}
        for (_, disposition), count in list(self.requests.items()):
            totals[disposition] = totals.get(disposition, 0) + count
        return totals

    def selection(self, model: str, reason: str, budget_ms: float) -> None:
        key = (model, reason)
        self.selections[key] = self.selections.get(key, 0) + 1
        self.budget.observe(budget_ms / 1000.0 if budget_ms > 0.0 else 0.0)

    def outcome(self, e2e_ms: float, policy: str = "") -> None:
        """`policy`: the label the request was counted under when served ("": not remembered)."""
        label = policy if policy in self._policies else UNKNOWN_POLICY
        labelled(self._e2e_children, self.e2e, label).observe(e2e_ms / 1000.0)

    def watch_cache(self, cache: Any) -> None:
        """Staleness = the cache's age at scrape time (+Inf before the first successful load)."""
        self.staleness.set_function(lambda: cache.age_s)

    def count_store_errors(self, store: AsyncProfileLegStore) -> ErrorCountingStore:
        return ErrorCountingStore(store, self.redis_errors.inc)

    def watch_security(self, read: Callable[[], dict[str, float]]) -> None:
        watch_security(self.registry, read)

    def watch_return_legs(self, learner: Any, feed: Any = None) -> None:
        """Outcome reports by what they gave (modipick.selector.outcomes.OutcomeLearner), and the shared
        return-leg stream as read (modipick.selector.leg_stream.ReturnLegFeed; None: legs not shared)."""
        def reports() -> dict[str, float]:
            return {"learned_memory": learner.learned - learner.from_tickets, "learned_ticket": learner.from_tickets,
                    "unmatched": learner.unmatched, "implausible": learner.implausible}

        self.registry.register(ReadCollector("modipick_outcome_reports", "Outcome reports by what they gave",
                                              reports, label="result"))
        if learner.returns is not None:
            self.registry.register(ReadCollector(
                "modipick_return_leg_class_capped",
                "Reported return legs a network class's model left out: their client held its share",
                learner.returns.capped))
        # exported in every mode (zeros where the stream is not read), so dashboards and alerts find
        # the same families on every replica whatever its sharing
        self.registry.register(ReadCollector(
            "modipick_return_leg_stream", "Shared return legs read from the store's stream",
            lambda: {"applied": feed.applied if feed else 0, "skipped": feed.skipped if feed else 0},
            label="result"))
        self.registry.register(ReadCollector("modipick_return_leg_stream_read_failures",
                                              "Reads of the return-leg stream that failed",
                                              lambda: feed.failed_reads if feed else 0))
