"""The Selector's request-path counters (plain counts read at scrape time) expose exactly what
prometheus_client's own Counter and Histogram would."""

from __future__ import annotations

import random

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from modipick.runtime.metrics import SECONDS_BUCKETS, CountingHistogram
from modipick.selector.metrics import SelectorMetrics


def _samples(registry: CollectorRegistry, family: str) -> dict[tuple, float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for metric in registry.collect() if metric.name == family for s in metric.samples
            if not s.name.endswith("_created")}


def test_the_budget_histogram_matches_prometheus_clients() -> None:
    rng = random.Random(7)
    values_ms = [0.0, 0.5, 1.0, 10000.0, 10000.5, 1e9, *(b * 1000.0 for b in SECONDS_BUCKETS),
                 *(rng.uniform(0, 3000) for _ in range(500))]
    ours = SelectorMetrics()
    reference = CollectorRegistry()
    histogram = Histogram("modipick_budget_seconds", "Execution budget T_U per decision (s)",
                          buckets=SECONDS_BUCKETS, registry=reference)
    for value in values_ms:
        ours.selection("cnn", "base", value)
        histogram.observe(value / 1000.0)
    assert _samples(ours.registry, "modipick_budget_seconds") == _samples(reference, "modipick_budget_seconds")


def test_negative_budgets_count_as_zero() -> None:
    counts = SelectorMetrics()
    counts.selection("cnn", "fallback", -12.0)
    assert counts.budget.sum == 0.0 and counts.budget.cumulative()[0] == ("0.0005", 1)


def test_request_counters_are_exposed_with_their_labels() -> None:
    metrics = SelectorMetrics()
    for _ in range(3):
        metrics.request("modipick", "served", sla_met=True)
    metrics.request("modipick", "served")
    metrics.request("unknown", "error")
    metrics.selection("cnn-large", "explored", 40.0)
    page = generate_latest(metrics.registry).decode()
    assert 'modipick_requests_total{disposition="served",policy="modipick"} 4.0' in page
    assert 'modipick_requests_total{disposition="error",policy="unknown"} 1.0' in page
    assert 'modipick_sla_met_total{policy="modipick"} 3.0' in page
    assert 'modipick_selections_total{model="cnn-large",reason="explored"} 1.0' in page
    assert "# TYPE modipick_budget_seconds histogram" in page
    assert 'modipick_budget_seconds_sum 0.04' in page


def test_end_to_end_times_are_seconds_by_live_policy_name() -> None:
    metrics = SelectorMetrics(policies=["modipick", "risk_aware"])
    metrics.outcome(250.0, "modipick")
    metrics.outcome(120.0, "")  # not remembered
    metrics.outcome(80.0, "something-else")  # not a live policy: bounded label values
    page = generate_latest(metrics.registry).decode()
    assert 'modipick_e2e_seconds_count{policy="modipick"} 1.0' in page
    assert 'modipick_e2e_seconds_sum{policy="modipick"} 0.25' in page
    assert 'modipick_e2e_seconds_count{policy="unknown"} 2.0' in page
    assert 'modipick_e2e_seconds_bucket{le="0.3",policy="modipick"} 1.0' in page
    assert 'policy="something-else"' not in page


def test_counting_histogram_buckets_are_cumulative_and_inclusive() -> None:
    histogram = CountingHistogram((1.0, 2.0))
    for value in (0.5, 1.0, 1.5, 2.0, 7.0):
        histogram.observe(value)
    assert histogram.cumulative() == [("1.0", 2), ("2.0", 4), ("+Inf", 5)]
    assert histogram.sum == 12.0
