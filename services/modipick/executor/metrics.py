"""The Executor's Prometheus metrics (names and labels: modipick.runtime.metrics)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Histogram

from modipick.executor.reporter import ExecutionObservation, ObservationSink
from modipick.runtime.metrics import MS_BUCKETS, ObservationCollector, labelled


class ExecutorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.queue = Histogram("modipick_executor_queue_ms", "Wait for an execution slot (ms)", ["model"],
                               buckets=MS_BUCKETS, registry=self.registry)
        self.execution = Histogram("modipick_executor_execution_ms", "Model execution time (ms)", ["model"],
                                   buckets=MS_BUCKETS, registry=self.registry)

    def metered_sink(self, sink: ObservationSink) -> "MeteredSink":
        """Wrap the Executor's observation sink: every user execution passes through it."""
        wrapped = MeteredSink(sink, self)
        self.registry.register(ObservationCollector(wrapped.observation_counts))
        return wrapped


class MeteredSink:
    """An ObservationSink that records queue and execution histograms, then passes the observation on.
    Failed executions count in the queue histogram only (their run time was cut short)."""

    def __init__(self, inner: ObservationSink, metrics: ExecutorMetrics) -> None:
        self.inner = inner
        self._metrics = metrics
        self._children: dict[tuple, Any] = {}

    def submit(self, observation: ExecutionObservation) -> None:
        labelled(self._children, self._metrics.queue, observation.name).observe(observation.queue_ms)
        if not observation.failed:
            labelled(self._children, self._metrics.execution, observation.name).observe(observation.execution_ms)
        self.inner.submit(observation)

    async def close(self) -> None:
        await self.inner.close()

    def observation_counts(self) -> dict[str, float]:
        stats = getattr(self.inner, "stats", None)
        if stats is None:  # no Profiler configured: nothing is reported
            return {}
        return {"reported": stats.sent, "dropped": stats.dropped}
