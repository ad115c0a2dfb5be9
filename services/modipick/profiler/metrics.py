"""The Profiler's Prometheus metrics (names and labels: modipick.runtime.metrics)."""

from __future__ import annotations

from typing import Any, Callable

from prometheus_client import CollectorRegistry

from modipick.runtime.metrics import (ObservationCollector, ReadCollector, redis_errors_counter,
                                      watch_security)
from modipick.stores import AsyncProfileLegStore, ErrorCountingStore


class ProfilerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.redis_errors = redis_errors_counter(self.registry)

    def count_store_errors(self, store: AsyncProfileLegStore) -> ErrorCountingStore:
        return ErrorCountingStore(store, self.redis_errors.inc)

    def watch(self, sink: Any, service: Any) -> None:
        """Observations by result, from the ingest statistics and the service's rejection counts."""
        def counts() -> dict[str, float]:
            stats = sink.stats
            failed = getattr(service, "failed_observations", 0)
            rejected = getattr(service, "rejected_observations", failed)
            return {"stored": stats.stored, "unknown": stats.unknown, "dropped": stats.dropped,
                    "failed": failed, "invalid": max(0, rejected - failed)}

        self.registry.register(ObservationCollector(counts))

    def watch_security(self, read: Callable[[], dict[str, float]]) -> None:
        watch_security(self.registry, read)

    def watch_return_legs(self, legs: Any, service: Any) -> None:
        """The return legs reported with outcomes (modipick.profiler.return_legs.ReturnLegSink's statistics
        and the service's count of unusable ones)."""
        def counts() -> dict[str, float]:
            stats = legs.stats
            return {"appended": stats.appended, "dropped": stats.dropped,
                    "rejected": getattr(service, "rejected_legs", 0)}

        self.registry.register(ReadCollector("modipick_return_legs", "Reported return legs by what became of them",
                                              counts, label="result"))
        self.registry.register(ReadCollector("modipick_return_leg_write_failures",
                                              "Return-leg stream appends that failed (the legs are retried)",
                                              lambda: legs.stats.failed_writes))
        self.registry.register(ReadCollector("modipick_return_legs_pending", "Return legs waiting to be appended",
                                              lambda: legs.pending, gauge=True))
