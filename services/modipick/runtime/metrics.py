"""Prometheus plumbing shared by the three services: one registry per service instance, the
/metrics endpoint, and collectors that read what a service already counts. Each service's own
metrics live with it (modipick.selector.metrics, modipick.executor.metrics, modipick.profiler.metrics).

The names and labels are a contract with deploy/grafana/modipick-dashboard.json and
deploy/prometheus/alerts.yaml (checked by tests/deploy/test_observability.py):

    Selector  modipick_requests_total{policy,disposition}   Infer replies: served | run_on_device | error
              modipick_sla_met_total{policy}                 served within the SLA (Selector's estimate:
                                                             upload + server time + estimated return leg)
              modipick_budget_seconds                        execution budget T_U of each decision
              modipick_selections_total{model,reason}        reason: base | explored | fallback
              modipick_e2e_seconds{policy}                   end-to-end time from ReportOutcome (policy: the
                                                             one that served it, as this replica remembers;
                                                             "unknown" when it does not)
              modipick_profile_staleness_seconds             age of the local profile copy
              modipick_redis_errors_total                    failed profile-store calls
              modipick_outcome_reports_total{result}         learned_memory | learned_ticket (a leg derived
                                                             from this replica's memory or the report's
                                                             ticket) | unmatched | implausible
              modipick_return_leg_stream_total{result}       shared legs read: applied | skipped (undecodable)
              modipick_return_leg_stream_read_failures_total reads of the stream that failed
    Executor  modipick_executor_queue_seconds{model,version},
              modipick_executor_execution_seconds{model,version}  user executions (probes excluded)
              modipick_executor_observations_total{result}   reported (to the Profiler) | dropped
    Profiler  modipick_observations_total{result}            stored | unknown | failed | invalid | dropped
              modipick_redis_errors_total
              modipick_return_legs_total{result}             legs reported with outcomes: appended (to the
                                                             stream) | dropped (buffer full) | rejected
              modipick_return_leg_write_failures_total       stream appends that failed (legs kept, retried)
              modipick_return_legs_pending                   legs waiting to be appended
    Every one modipick_grpc_server_handled_total{service,method,code}
                                                             RPCs finished, by gRPC status code name
              modipick_grpc_server_handling_seconds{service,method}
                                                             time spent on each RPC
                                                             (modipick.runtime.rpc_interceptor)

Times are in seconds and sizes in bytes (Prometheus' base units). A name means one thing in every
service that exports it: modipick_redis_errors_total counts failed profile-store calls wherever it
appears. A latency observation is counted twice on its way, under two names: by the Executor that
made it (modipick_executor_observations_total) and by the Profiler that received it
(modipick_observations_total).
The return-leg stream series exist only where legs are shared (a Redis store and a Profiler).
Each service object owns a fresh CollectorRegistry (several services may live in one process, in
tests and `modipick up`); `start_metrics_server(port, registry)` serves one on /metrics.
Counters that the services already keep (ingest and reporter statistics) are read at scrape time
by collectors instead of being counted twice.
"""

from __future__ import annotations

import argparse
import bisect
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

# Seconds (Prometheus' base unit), from sub-millisecond model runs to multi-second SLAs.
SECONDS_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15,
                   0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0)
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
def redis_errors_counter(registry: CollectorRegistry) -> Counter:
    return Counter("modipick_redis_errors", "Profile-store (Redis) calls that failed", registry=registry)


class ObservationCollector(Collector):
    """`name`_total{result}: latency observations by what became of them at this service, read from
    its own statistics at scrape time (the Profiler's modipick_observations, the Executor's
    modipick_executor_observations: one observation passes through both, so the names differ)."""

    def __init__(self, read: Callable[[], dict[str, float]], name: str = "modipick_observations",
                 documentation: str = "Latency observations received, by what became of them") -> None:
        self._read, self._name, self._documentation = read, name, documentation

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self._name, self._documentation, labels=["result"])
        for result, value in self._read().items():
            family.add_metric([result], value)
        yield family

    def describe(self) -> list:
        return []  # values appear only once a source is attached


class ReadCollector(Collector):
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
        return []  # as ObservationCollector


def labelled(cache: dict[tuple, Any], metric: Any, *labels: str) -> Any:
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


def counter_family(name: str, documentation: str, labels: list[str], counts: dict[tuple, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=labels)
    for values, count in list(counts.items()):  # a copy: the event loop may add a key meanwhile
        family.add_metric(values, count)
    return family


def watch_security(registry: CollectorRegistry, read: Callable[[], dict[str, float]]) -> None:
    """Calls, reports and labels refused or capped by the security rules, by reason (docs/security.md)."""
    registry.register(ReadCollector("modipick_security_refusals",
                                     "Calls, reports and labels refused or capped by the security rules",
                                     read, label="reason"))
