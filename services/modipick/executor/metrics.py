"""The Executor's Prometheus metrics (names and labels: modipick.runtime.metrics)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Histogram

from modipick.executor.reporter import ExecutionObservation, ObservationSink
from modipick.runtime.metrics import SECONDS_BUCKETS, ObservationCollector, labelled


class ExecutorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        # version: the model version served (bounded by the versions the Executor loads)
        self.queue = Histogram("modipick_executor_queue_seconds", "Wait for an execution slot (s)",
                               ["model", "version"], buckets=SECONDS_BUCKETS, registry=self.registry)
        self.execution = Histogram("modipick_executor_execution_seconds", "Model execution time (s)",
                                   ["model", "version"], buckets=SECONDS_BUCKETS, registry=self.registry)

    def metered_sink(self, sink: ObservationSink) -> "MeteredSink":
        """Wrap the Executor's observation sink: every user execution passes through it."""
        wrapped = MeteredSink(sink, self)
        self.registry.register(ObservationCollector(
            wrapped.observation_counts, "modipick_executor_observations",
            "Latency observations of user executions, by what became of them on their way to the Profiler"))
        return wrapped


class MeteredSink:
    """An ObservationSink that records queue and execution histograms, then passes the observation on.
    Failed executions count in the queue histogram only (their run time was cut short)."""

    def __init__(self, inner: ObservationSink, metrics: ExecutorMetrics) -> None:
        self.inner = inner
        self._metrics = metrics
        self._children: dict[tuple, Any] = {}

    def submit(self, observation: ExecutionObservation) -> None:
        version = str(observation.version)
        labelled(self._children, self._metrics.queue, observation.name, version).observe(
            observation.queue_ms / 1000.0)
        if not observation.failed:
            labelled(self._children, self._metrics.execution, observation.name, version).observe(
                observation.execution_ms / 1000.0)
        self.inner.submit(observation)

    async def close(self) -> None:
        await self.inner.close()

    def observation_counts(self) -> dict[str, float]:
        stats = getattr(self.inner, "stats", None)
        if stats is None:  # no Profiler configured: nothing is reported
            return {}
        return {"reported": stats.sent, "dropped": stats.dropped}
