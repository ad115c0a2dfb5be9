"""The Executor's histograms: seconds, one series per model and version, failed runs in the queue
histogram only; its observation counts under their own name."""

from __future__ import annotations

from prometheus_client import generate_latest

from modipick.executor.metrics import ExecutorMetrics
from modipick.executor.reporter import ExecutionObservation, NullSink


def _observation(version: int, queue_ms: float, execution_ms: float, *, failed: bool = False) -> ExecutionObservation:
    return ExecutionObservation("cnn", version, queue_ms, execution_ms, observed_at=0.0, failed=failed)


def test_queue_and_execution_are_seconds_by_model_and_version() -> None:
    metrics = ExecutorMetrics()
    sink = metrics.metered_sink(NullSink())
    sink.submit(_observation(1, 4.0, 12.0))
    sink.submit(_observation(2, 1.0, 250.0))
    sink.submit(_observation(2, 30.0, 0.0, failed=True))
    page = generate_latest(metrics.registry).decode()
    assert 'modipick_executor_queue_seconds_count{model="cnn",version="1"} 1.0' in page
    assert 'modipick_executor_queue_seconds_sum{model="cnn",version="1"} 0.004' in page
    assert 'modipick_executor_queue_seconds_count{model="cnn",version="2"} 2.0' in page
    assert 'modipick_executor_execution_seconds_sum{model="cnn",version="1"} 0.012' in page
    assert 'modipick_executor_execution_seconds_count{model="cnn",version="2"} 1.0' in page
    assert 'modipick_executor_execution_seconds_bucket{le="0.3",model="cnn",version="2"} 1.0' in page
    assert 'modipick_executor_execution_seconds_bucket{le="0.2",model="cnn",version="2"} 0.0' in page
    assert "_ms" not in page
    assert "# TYPE modipick_executor_observations_total counter" in page
    assert "modipick_observations" not in page  # the Profiler's name for what it received
