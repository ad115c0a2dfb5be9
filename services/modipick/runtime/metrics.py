"""Prometheus metrics of the three services, one registry per service instance.

The names and labels are a contract with deploy/grafana/modipick-dashboard.json and
deploy/prometheus/alerts.yaml (checked by tests/deploy/test_observability.py):

    Selector  modipick_requests_total{policy,disposition}   Infer replies: served | run_on_device | error
              modipick_sla_met_total{policy}                 served within the SLA (Selector's estimate:
                                                             upload + server time + estimated return leg)
              modipick_budget_ms                             execution budget T_U of each decision
              modipick_selections_total{model,reason}        reason: base | explored | fallback
              modipick_e2e_ms                                end-to-end time from ReportOutcome
              modipick_profile_staleness_seconds             age of the local profile copy
              modipick_redis_errors_total                    failed profile-store calls
              modipick_outcome_reports_total{result}         learned_memory | learned_ticket (a leg derived
                                                             from this replica's memory or the report's
                                                             ticket) | unmatched | implausible
              modipick_return_leg_stream_total{result}       shared legs read: applied | skipped (undecodable)
              modipick_return_leg_stream_read_failures_total reads of the stream that failed
    Executor  modipick_executor_queue_ms{model}, modipick_executor_execution_ms{model}
                                                             user executions (probes excluded)
              modipick_observations_total{result}            reported | dropped
    Profiler  modipick_observations_total{result}            stored | unknown | failed | invalid | dropped
              modipick_redis_errors_total
              modipick_return_legs_total{result}             legs reported with outcomes: appended (to the
                                                             stream) | dropped (buffer full) | rejected
              modipick_return_leg_write_failures_total       stream appends that failed (legs kept, retried)
              modipick_return_legs_pending                   legs waiting to be appended

The return-leg stream series exist only where legs are shared (a Redis store and a Profiler).
Each service object owns a fresh CollectorRegistry (several services may live in one process, in
tests and `modipick up`); `start_metrics_server(port, registry)` serves one on /metrics.
Counters that the services already keep (ingest and reporter statistics) are read at scrape time
by collectors instead of being counted twice.
"""

from __future__ import annotations

import argparse
import bisect
import functools
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

# Milliseconds from sub-ms model runs to multi-second SLAs.
MS_BUCKETS = (0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 2000, 5000,
              10000)
DISPOSITIONS = ("served", "run_on_device", "error")
REASONS = ("base", "explored", "fallback")
UNKNOWN_POLICY = "unknown"
METRICS_PORT_ENV = "MODIPICK_METRICS_PORT"


# -- the HTTP endpoint ---------------------------------------------------------------------------
@dataclass
class MetricsServer:
    port: int
    _httpd: Any

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def start_metrics_server(port: int, registry: CollectorRegistry, *, addr: str = "0.0.0.0") -> MetricsServer:
    """Serve `registry` on http://addr:port/metrics from a daemon thread (port 0: any free port)."""
    from prometheus_client import start_http_server

    httpd, _ = start_http_server(port, addr=addr, registry=registry)
    return MetricsServer(httpd.server_port, httpd)


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port in 0..65535, got {text!r}")
    return value


def add_metrics_option(parser) -> None:
    """--metrics-port (MODIPICK_METRICS_PORT) on an EnvArgumentParser; 0 (the default) = no endpoint."""
    parser.add_option("--metrics-port", default=0, type=_port,
                      help="serve Prometheus metrics on http://0.0.0.0:PORT/metrics (0: off)")


def serve_metrics(port: int, registry: CollectorRegistry) -> MetricsServer | None:
    """What main() calls: the endpoint for --metrics-port, with process metrics added; None when 0."""
    if not port:
        return None
    from prometheus_client import GCCollector, PlatformCollector, ProcessCollector

    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    try:
        return start_metrics_server(port, registry)
    except OSError as exc:
        raise OSError(f"--metrics-port {port}: {exc.strerror or exc}") from exc


# -- shared pieces --------------------------------------------------------------------------------
class _ErrorCountingStore:
    """A profile store that counts the StoreErrors its calls raise (Redis errors), then re-raises."""

    def __init__(self, store: Any, errors: Counter) -> None:
        self._store = store
        self._errors = errors

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._store, name)
        if not callable(value) or name.startswith("_"):
            return value

        @functools.wraps(value)
        def counted(*args: Any, **kwargs: Any) -> Any:
            from modipick.stores import StoreError

            try:
                return value(*args, **kwargs)
            except StoreError:
                self._errors.inc()
                raise

        return counted

    def __repr__(self) -> str:
        return repr(self._store)


def _redis_errors(registry: CollectorRegistry) -> Counter:
    return Counter("modipick_redis_errors", "Profile-store (Redis) calls that failed", registry=registry)


class _ObservationCollector(Collector):
    """modipick_observations_total{result} read from a service's own statistics at scrape time."""

    def __init__(self, read: Callable[[], dict[str, float]]) -> None:
        self._read = read

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily("modipick_observations", "Latency observations by what became of them",
                                     labels=["result"])
        for result, value in self._read().items():
            family.add_metric([result], value)
        yield family

    def describe(self) -> list:
        return []  # values appear only once a source is attached


class _ReadCollector(Collector):
    """Counters (or gauges) a service already keeps, read at scrape time: `read` returns the value,
    or with `label` a dict label value -> value."""

    def __init__(self, name: str, documentation: str, read: Callable[[], Any], *, label: str | None = None,
                 gauge: bool = False) -> None:
        self._name, self._documentation, self._read, self._label = name, documentation, read, label
        self._family = GaugeMetricFamily if gauge else CounterMetricFamily

    def collect(self) -> Iterator[Any]:
        family = self._family(self._name, self._documentation, labels=[self._label] if self._label else None)
        if self._label:
            for key, value in self._read().items():
                family.add_metric([key], value)
        else:
            family.add_metric([], self._read())
        yield family

    def describe(self) -> list:
        return []  # as _ObservationCollector


def _child(cache: dict[tuple, Any], metric: Any, *labels: str) -> Any:
    """metric.labels(*labels), remembered: the request path skips prometheus_client's lookup."""
    key = (id(metric), *labels)
    child = cache.get(key)
    if child is None:
        child = cache[key] = metric.labels(*labels)
    return child


class CountingHistogram:
    """A histogram's buckets, sum and count, kept by the event loop's thread alone (no lock)."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Iterable[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last: above every bound (+Inf)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1  # le: a value on a bound counts in it
        self.sum += value

    def cumulative(self) -> list[tuple[str, int]]:
        running, out = 0, []
        for bound, count in zip((*map(floatToGoString, self.bounds), "+Inf"), self.counts):
            running += count
            out.append((bound, running))
        return out


class _SelectorCounts(Collector):
    """modipick_requests_total, modipick_sla_met_total, modipick_selections_total and
    modipick_budget_ms from SelectorMetrics' plain counts, at scrape time."""

    def __init__(self, metrics: "SelectorMetrics") -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Any]:
        m = self._metrics
        yield _counters("modipick_requests", "Infer requests by policy and disposition", ["policy", "disposition"],
                        m.requests)
        yield _counters("modipick_sla_met", "Infer requests served within their SLA", ["policy"],
                        {(policy,): n for policy, n in list(m.sla_met.items())})
        budget = HistogramMetricFamily("modipick_budget_ms", "Execution budget T_U per decision (ms)")
        budget.add_metric([], m.budget.cumulative(), m.budget.sum)
        yield budget
        yield _counters("modipick_selections", "Model selections by model and reason", ["model", "reason"],
                        m.selections)

    def describe(self) -> list:
        return []


def _counters(name: str, documentation: str, labels: list[str], counts: dict[tuple, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=labels)
    for values, count in list(counts.items()):  # a copy: the event loop may add a key meanwhile
        family.add_metric(values, count)
    return family


# -- per service ----------------------------------------------------------------------------------
def watch_security(registry: CollectorRegistry, read: Callable[[], dict[str, float]]) -> None:
    """Calls, reports and labels refused or capped by the security rules, by reason (docs/security.md)."""
    registry.register(_ReadCollector("modipick_security_refusals",
                                     "Calls, reports and labels refused or capped by the security rules",
                                     read, label="reason"))


class SelectorMetrics:
    """The request path counts in plain dicts, read at scrape time (`_SelectorCounts`): a
    prometheus_client child's inc or observe takes its lock and ~1-2 us warm, several times that
    on a CPU that idled since the last request, and Infer makes four of them."""

    def __init__(self, registry: CollectorRegistry | None = None, *, policies: Iterable[str] | None = None) -> None:
        if policies is None:
            from modipick.core.policies import LIVE_POLICIES

            policies = LIVE_POLICIES
        self.registry = registry if registry is not None else CollectorRegistry()
        self._policies = frozenset(policies)  # other names are labelled "unknown" (bounded cardinality)
        self.requests: dict[tuple[str, str], int] = {}  # (policy, disposition) -> count
        self.sla_met: dict[str, int] = {}               # policy -> count
        self.selections: dict[tuple[str, str], int] = {}  # (model, reason) -> count
        self.budget = CountingHistogram(MS_BUCKETS)
        self.registry.register(_SelectorCounts(self))
        self.e2e = Histogram("modipick_e2e_ms", "End-to-end time clients reported through ReportOutcome (ms)",
                             buckets=MS_BUCKETS, registry=self.registry)
        self.staleness = Gauge("modipick_profile_staleness_seconds", "Age of the local profile copy (s)",
                               registry=self.registry)
        self.redis_errors = _redis_errors(self.registry)

    def policy_label(self, requested: str, default: str) -> str:
        name = requested or default
        return name if name in self._policies else UNKNOWN_POLICY

    def request(self, policy: str, disposition: str, *, sla_met: bool = False) -> None:
        key = (policy, disposition)
        self.requests[key] = self.requests.get(key, 0) + 1
        if sla_met:
            self.sla_met[policy] = self.sla_met.get(policy, 0) + 1

    def selection(self, model: str, reason: str, budget_ms: float) -> None:
        key = (model, reason)
        self.selections[key] = self.selections.get(key, 0) + 1
        self.budget.observe(budget_ms if budget_ms > 0.0 else 0.0)

    def outcome(self, e2e_ms: float) -> None:
        self.e2e.observe(e2e_ms)

    def watch_cache(self, cache: Any) -> None:
        """Staleness = the cache's age at scrape time (+Inf before the first successful load)."""
        self.staleness.set_function(lambda: cache.age_s)

    def count_store_errors(self, store: Any) -> Any:
        return _ErrorCountingStore(store, self.redis_errors)

    def watch_security(self, read: Callable[[], dict[str, float]]) -> None:
        watch_security(self.registry, read)

    def watch_return_legs(self, learner: Any, feed: Any = None) -> None:
        """Outcome reports by what they gave (modipick.selector.outcomes.OutcomeLearner), and the shared
        return-leg stream as read (modipick.selector.leg_stream.ReturnLegFeed; None: legs not shared)."""
        def reports() -> dict[str, float]:
            return {"learned_memory": learner.learned - learner.from_tickets, "learned_ticket": learner.from_tickets,
                    "unmatched": learner.unmatched, "implausible": learner.implausible}

        self.registry.register(_ReadCollector("modipick_outcome_reports", "Outcome reports by what they gave",
                                              reports, label="result"))
        if learner.returns is not None:
            book = learner.returns
            self.registry.register(_ReadCollector(
                "modipick_return_leg_class_capped",
                "Reported return legs a network class's model left out: their client held its share",
                book.capped))
        if feed is None:
            return
        self.registry.register(_ReadCollector(
            "modipick_return_leg_stream", "Shared return legs read from the store's stream",
            lambda: {"applied": feed.applied, "skipped": feed.skipped}, label="result"))
        self.registry.register(_ReadCollector("modipick_return_leg_stream_read_failures",
                                              "Reads of the return-leg stream that failed", lambda: feed.failed_reads))


class ExecutorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.queue = Histogram("modipick_executor_queue_ms", "Wait for an execution slot (ms)", ["model"],
                               buckets=MS_BUCKETS, registry=self.registry)
        self.execution = Histogram("modipick_executor_execution_ms", "Model execution time (ms)", ["model"],
                                   buckets=MS_BUCKETS, registry=self.registry)

    def metered_sink(self, sink: Any) -> "MeteredSink":
        """Wrap the Executor's observation sink: every user execution passes through it."""
        wrapped = MeteredSink(sink, self)
        self.registry.register(_ObservationCollector(wrapped.observation_counts))
        return wrapped


class MeteredSink:
    """An ObservationSink that records queue and execution histograms, then passes the observation on.
    Failed executions count in the queue histogram only (their run time was cut short)."""

    def __init__(self, inner: Any, metrics: ExecutorMetrics) -> None:
        self._inner = inner
        self._metrics = metrics
        self._children: dict[tuple, Any] = {}

    def submit(self, observation: Any) -> None:
        _child(self._children, self._metrics.queue, observation.name).observe(observation.queue_ms)
        if not observation.failed:
            _child(self._children, self._metrics.execution, observation.name).observe(observation.execution_ms)
        self._inner.submit(observation)

    async def close(self) -> None:
        await self._inner.close()

    def observation_counts(self) -> dict[str, float]:
        stats = getattr(self._inner, "stats", None)
        if stats is None:  # no Profiler configured: nothing is reported
            return {}
        return {"reported": stats.sent, "dropped": stats.dropped}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class ProfilerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.redis_errors = _redis_errors(self.registry)

    def count_store_errors(self, store: Any) -> Any:
        return _ErrorCountingStore(store, self.redis_errors)

    def watch_security(self, read: Callable[[], dict[str, float]]) -> None:
        watch_security(self.registry, read)

    def watch(self, sink: Any, service: Any) -> None:
        """Observations by result, from the ingest statistics and the service's rejection counts."""
        def counts() -> dict[str, float]:
            stats = sink.stats
            failed = getattr(service, "failed_observations", 0)
            rejected = getattr(service, "rejected_observations", failed)
            return {"stored": stats.stored, "unknown": stats.unknown, "dropped": stats.dropped,
                    "failed": failed, "invalid": max(0, rejected - failed)}

        self.registry.register(_ObservationCollector(counts))

    def watch_return_legs(self, legs: Any, service: Any) -> None:
        """The return legs reported with outcomes (modipick.profiler.return_legs.ReturnLegSink's statistics
        and the service's count of unusable ones)."""
        def counts() -> dict[str, float]:
            stats = legs.stats
            return {"appended": stats.appended, "dropped": stats.dropped,
                    "rejected": getattr(service, "rejected_legs", 0)}

        self.registry.register(_ReadCollector("modipick_return_legs", "Reported return legs by what became of them",
                                              counts, label="result"))
        self.registry.register(_ReadCollector("modipick_return_leg_write_failures",
                                              "Return-leg stream appends that failed (the legs are retried)",
                                              lambda: legs.stats.failed_writes))
        self.registry.register(_ReadCollector("modipick_return_legs_pending", "Return legs waiting to be appended",
                                              lambda: legs.pending, gauge=True))
