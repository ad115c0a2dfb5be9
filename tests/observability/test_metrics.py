"""Each running service's /metrics after a burst of requests: the counters moved by exactly what
the burst did, and the exported names, types and labels are the ones the dashboard and the alert
rules query (tests/deploy/deploy_support.METRICS)."""

from __future__ import annotations

import importlib
import sys
import time
from collections import Counter
from pathlib import Path

import grpc
import pytest
from observability_support import delta, scrape

from modipick.client import InvalidRequest, ModiPickClient
from modipick.v1 import common_pb2, selector_pb2, selector_pb2_grpc

BURST = 20
SLA_MS = 5000.0


def contract() -> dict[str, tuple[str, frozenset[str]]]:
    deploy_tests = str(Path(__file__).resolve().parents[1] / "deploy")
    if deploy_tests not in sys.path:
        sys.path.append(deploy_tests)
    return importlib.import_module("deploy_support").METRICS


def wait_for(read, expected: float, timeout_s: float = 10.0) -> float:
    deadline = time.monotonic() + timeout_s
    value = read()
    while value < expected and time.monotonic() < deadline:
        time.sleep(0.05)
        value = read()
    return value


def run_on_device_request(image_input: common_pb2.Input) -> selector_pb2.InferRequest:
    """SLA 50 ms, sent 60 ms ago: the upload alone leaves a negative budget, whatever return leg a
    policy assumes (risk_aware's learned one may be near 0 on loopback)."""
    request = selector_pb2.InferRequest(request_id="rod-1", input=image_input, sla_ms=50.0)
    request.client_send_time.FromNanoseconds(time.time_ns() - 60_000_000)
    return request


@pytest.fixture(scope="module")
def burst(observed_suite, digits):
    """Scrape, send BURST served requests (outcomes reported), one RUN_ON_DEVICE and one invalid
    request, scrape again once the Executor's observations reached the Profiler."""
    from modipick.client.inputs import to_input

    images, labels = digits
    before = observed_suite.scrape_all()
    with ModiPickClient(observed_suite.selector.target) as client:
        client.wait_ready()
        results = [client.infer(images[i], SLA_MS, label=int(labels[i])) for i in range(BURST)]
        with pytest.raises(InvalidRequest):
            client.infer(images[0], SLA_MS, policy="no-such-policy")
    with grpc.insecure_channel(observed_suite.selector.target) as channel:
        reply = selector_pb2_grpc.SelectorServiceStub(channel).Infer(
            run_on_device_request(to_input(images[0])), timeout=5)
    assert reply.disposition == selector_pb2.DISPOSITION_RUN_ON_DEVICE
    assert all(not r.run_on_device for r in results)
    reported = lambda: delta(observed_suite.scrape("executor"), before["executor"],  # noqa: E731
                             "modipick_executor_observations_total", result="reported")
    stored = lambda: delta(observed_suite.scrape("profiler"), before["profiler"],  # noqa: E731
                           "modipick_observations_total", result="stored")
    e2e = lambda: delta(observed_suite.scrape("selector"), before["selector"], "modipick_e2e_seconds_count")  # noqa: E731
    wait_for(reported, BURST)
    wait_for(stored, BURST)
    wait_for(e2e, BURST)
    return before, observed_suite.scrape_all(), results, reply


def test_selector_counts_requests_selections_budgets_and_outcomes(burst) -> None:
    before, after, results, on_device = burst
    s0, s1 = before["selector"], after["selector"]
    d = lambda name, **labels: delta(s1, s0, name, **labels)  # noqa: E731
    assert d("modipick_requests_total", policy="risk_aware", disposition="served") == BURST
    assert d("modipick_requests_total", policy="risk_aware", disposition="run_on_device") == 1
    assert d("modipick_requests_total", policy="unknown", disposition="error") == 1
    assert d("modipick_requests_total") == BURST + 2
    # served well inside a 5 s SLA; the run-on-device reply does not count as met
    assert d("modipick_sla_met_total", policy="risk_aware") == BURST
    # one decision per valid request: the served ones and the fallback that ran on the device
    reasons = {r: d("modipick_selections_total", reason=r) for r in ("base", "explored", "fallback")}
    assert sum(reasons.values()) == BURST + 1
    assert reasons["fallback"] >= 1
    served_models = Counter(r.model for r in results)
    per_model = {m: d("modipick_selections_total", model=m) for m in set(served_models) | {on_device.model.name}}
    expected = Counter(served_models)
    expected[on_device.model.name] += 1
    assert per_model == dict(expected)
    assert d("modipick_budget_seconds_count") == BURST + 1
    assert d("modipick_budget_seconds_bucket", le="+Inf") == BURST + 1
    # the run-on-device budget was negative, observed as 0: it sits in the lowest bucket (0.5 ms)
    assert d("modipick_budget_seconds_bucket", le="0.0005") >= 1
    # budgets are seconds: a 5 s SLA leaves less than 5 s, and every served budget is above 0.5 ms
    assert d("modipick_budget_seconds_bucket", le="5.0") == BURST + 1
    assert d("modipick_budget_seconds_bucket", le="0.0005") == 1
    # every outcome was reported for a request this replica served under risk_aware
    assert d("modipick_e2e_seconds_count", policy="risk_aware") == BURST
    assert d("modipick_e2e_seconds_count") == BURST
    assert d("modipick_e2e_seconds_sum") == pytest.approx(sum(r.e2e_ms for r in results) / 1000.0, rel=1e-9)
    assert d("modipick_redis_errors_total") == 0
    staleness = s1.value("modipick_profile_staleness_seconds")
    assert 0.0 <= staleness < 2.0


def test_executor_histograms_count_every_user_execution_per_model(burst) -> None:
    before, after, results, _ = burst
    e0, e1 = before["executor"], after["executor"]
    served_models = Counter(r.model for r in results)
    served_versions = Counter((r.model, str(r.version)) for r in results)
    queue = {(m, v): delta(e1, e0, "modipick_executor_queue_seconds_count", model=m, version=v)
             for m, v in served_versions}
    execution = {(m, v): delta(e1, e0, "modipick_executor_execution_seconds_count", model=m, version=v)
                 for m, v in served_versions}
    assert queue == dict(served_versions) and execution == dict(served_versions)
    assert delta(e1, e0, "modipick_executor_execution_seconds_count") == BURST
    reported_s = sum(r.timings.execution_ms for r in results) / 1000.0
    assert delta(e1, e0, "modipick_executor_execution_seconds_sum") == pytest.approx(reported_s, rel=1e-6)
    assert delta(e1, e0, "modipick_executor_queue_seconds_sum") == pytest.approx(
        sum(r.timings.queue_ms for r in results) / 1000.0, rel=1e-6, abs=1e-9)
    assert delta(e1, e0, "modipick_executor_observations_total", result="reported") == BURST
    assert delta(e1, e0, "modipick_executor_observations_total", result="dropped") == 0
    assert "modipick_observations" not in e1.types  # the Profiler's name: one meaning per name


def test_every_rpc_is_counted_with_its_status_code_and_time(burst) -> None:
    before, after, _, _ = burst
    s0, s1 = before["selector"], after["selector"]
    infer = {"service": "modipick.v1.SelectorService", "method": "Infer"}
    assert delta(s1, s0, "modipick_grpc_server_handled_total", code="OK", **infer) == BURST + 1
    assert delta(s1, s0, "modipick_grpc_server_handled_total", code="INVALID_ARGUMENT", **infer) == 1
    assert delta(s1, s0, "modipick_grpc_server_handling_seconds_count", **infer) == BURST + 2
    assert delta(s1, s0, "modipick_grpc_server_handling_seconds_bucket", le="+Inf", **infer) == BURST + 2
    assert delta(s1, s0, "modipick_grpc_server_handling_seconds_sum", **infer) > 0
    assert delta(s1, s0, "modipick_grpc_server_handled_total", service="modipick.v1.SelectorService",
                 method="ReportOutcome", code="OK") == BURST
    e0, e1 = before["executor"], after["executor"]
    execute = {"service": "modipick.v1.ExecutorService", "method": "Execute"}
    assert delta(e1, e0, "modipick_grpc_server_handled_total", code="OK", **execute) == BURST
    assert delta(e1, e0, "modipick_grpc_server_handled_total", **execute) == BURST
    # the Executor's observations reach the Profiler over a client stream, counted once per stream
    p0, p1 = before["profiler"], after["profiler"]
    assert delta(p1, p0, "modipick_grpc_server_handled_total", service="modipick.v1.ProfilerService",
                 method="RecordObservations", code="OK") >= 1
    # health checks are not counted
    assert not any(labels.get("service", "").startswith("grpc.")
                   for labels, _ in s1.samples.get("modipick_grpc_server_handled_total", []))


def test_profiler_stores_exactly_the_burst(burst) -> None:
    before, after, _, _ = burst
    p0, p1 = before["profiler"], after["profiler"]
    assert delta(p1, p0, "modipick_observations_total", result="stored") == BURST
    for result in ("unknown", "failed", "invalid", "dropped"):
        assert delta(p1, p0, "modipick_observations_total", result=result) == 0, result
    assert delta(p1, p0, "modipick_redis_errors_total") == 0


def test_exported_metrics_are_the_dashboards_contract(burst) -> None:
    """Every metric the dashboard and alerts query is exported by some service, with that type
    and exactly those labels; nothing else named modipick_* is."""
    _, after, _, _ = burst
    exported: dict[str, tuple[str, set[str]]] = {}
    for page in after.values():
        for family, kind in page.types.items():
            if not family.startswith("modipick_") or family.endswith("_created"):
                continue
            suffixes = ("_bucket", "_count", "_sum") if kind == "histogram" else ("_total",) if kind == "counter" else ("",)
            labels: set[str] = set()
            for suffix in suffixes:
                for sample_labels, _ in page.samples.get(family + suffix, []):
                    labels |= set(sample_labels) - {"le"}
            name = family + "_total" if kind == "counter" else family
            previous = exported.setdefault(name, (kind, labels))
            assert previous[0] == kind, name
            exported[name] = (kind, previous[1] | labels)
    expected = {name: (kind, set(labels)) for name, (kind, labels) in contract().items()}
    assert exported == expected


def test_store_outage_counts_redis_errors_and_staleness(own_redis, observed_suite) -> None:
    """A Selector whose Redis goes away: every failed refresh is one Redis error, and the profile
    copy's age keeps growing past the refresh period."""
    from modipick.runtime.metrics import start_metrics_server
    from modipick.selector.app import SelectorSettings, start_selector

    loop = observed_suite.loop
    app = loop.run(start_selector(SelectorSettings(store_url=own_redis.url, executor_target="127.0.0.1:1",
                                                   refresh_ms=50.0, store_options={"timeouts": 0.2, "retries": 0})))
    server = start_metrics_server(0, app.metrics.registry, addr="127.0.0.1")
    try:
        healthy = scrape(server.url)
        assert healthy.value("modipick_redis_errors_total") == 0
        own_redis.stop()
        deadline = time.monotonic() + 10
        while app.cache.failed_refreshes < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        failed_before = app.cache.failed_refreshes
        page = scrape(server.url)
        errors = page.value("modipick_redis_errors_total")
        assert 3 <= failed_before <= errors <= app.cache.failed_refreshes + 1  # +1: a failure in flight
        assert page.value("modipick_profile_staleness_seconds") > 0.15
    finally:
        server.stop()
        loop.run(app.stop(0))
