"""Helpers for the live-suite tests (the suite itself: tests/fixtures_suite.py). A plain module, not
a conftest, so `from suite_support import ...` means this file in any run."""

from __future__ import annotations

import time

import grpc
import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp

from fixtures_suite import wait_until  # noqa: F401  (re-exported for the live-suite tests)


def stamp(ns: int) -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(ns)
    return ts


def digit_tensor(image: np.ndarray):
    from modipick.v1 import common_pb2

    arr = np.asarray(image, np.float32).reshape(1, 8, 8, 1)
    return common_pb2.Input(tensor=common_pb2.Tensor(dtype="float32", shape=[1, 8, 8, 1], content=arr.tobytes()))


class _Bearer(grpc.UnaryUnaryClientInterceptor, grpc.StreamUnaryClientInterceptor):
    def __init__(self, token: str) -> None:
        self._metadata = (("authorization", f"Bearer {token}"),)

    def _add(self, details):
        return details._replace(metadata=(*(details.metadata or ()), *self._metadata))

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._add(details), request)

    def intercept_stream_unary(self, continuation, details, request_iterator):
        return continuation(self._add(details), request_iterator)


def admin_channel(target: str) -> grpc.Channel:
    """A channel to the suite's Profiler whose calls carry its admin token."""
    from fixtures_suite import ADMIN_TOKEN

    return grpc.intercept_channel(grpc.insecure_channel(target), _Bearer(ADMIN_TOKEN))



# -- two Selector replicas on one suite (return-leg sharing, outcome tickets) ----------------------
# the SDK's setting: timeouts sent as they are (HPACK would resend an older one; docs/policy.md)
CHANNEL_OPTIONS = [("grpc.http2.hpack_table_size.encoder", 0)]


def on_loop(loop, fn):
    """Read a service's state on its own event loop (the thread that changes it)."""
    async def call():
        return fn()
    return loop.run(call())


def client_samples(app, client_id: str) -> int:
    """Return legs a Selector app has learned for `client_id` (0 before any)."""
    model = app.service.budgeter.returns._clients.get(client_id)
    return 0 if model is None else model.samples


def select(stub, sla_ms: float, client_id: str, prefix: str = "s"):
    """A Select whose deadline is its SLA (so the Selector's budget reads the deadline). At SLAs of
    a few tens of ms a busy machine can stall the round trip past that deadline: such a call is
    tried again (a Select changes nothing), up to three times."""
    import grpc

    from modipick.v1 import selector_pb2

    for attempt in range(3):
        try:
            return stub.Select(selector_pb2.SelectRequest(request_id=f"{prefix}-{time.perf_counter_ns()}",
                                                          sla_ms=sla_ms, client_id=client_id),
                               timeout=sla_ms / 1000.0)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.DEADLINE_EXCEEDED or attempt == 2:
                raise
