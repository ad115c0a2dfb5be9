"""Helpers for the live-suite tests (the suite itself: tests/fixtures_suite.py). A plain module, not
a conftest, so `from suite_support import ...` means this file in any run."""

from __future__ import annotations

import math
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


def serving(target: str) -> bool:
    """Whether the server at `target` answers SERVING to a health check (plaintext)."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    try:
        with grpc.insecure_channel(target) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
            return reply.status == health_pb2.HealthCheckResponse.SERVING
    except grpc.RpcError:
        return False


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


# -- decisions whose upload does not depend on how busy the machine is ----------------------------
# A Select whose deadline carries its SLA reads the upload from what the deadline has left when it
# arrives: a scheduling stall of a few ms on a busy 2-core machine is read as upload (and, mirrored,
# as return leg too). A replica on a frozen wall clock, asked with a send stamp just before that
# clock's reading and a deadline far beyond the SLA (not read as the SLA), budgets the same upload
# for every request however long it took to arrive.
FROZEN_UPLOAD_MS = 1.0


class FrozenDecider:
    """A Selector replica of the live suite on a frozen wall clock, and its Select."""

    def __init__(self, suite, **overrides) -> None:
        self.now_ns = time.time_ns()
        self.app = suite.start_selector(wall_ns=lambda: self.now_ns, **overrides)
        self._channel = grpc.insecure_channel(self.app.target, CHANNEL_OPTIONS)
        grpc.channel_ready_future(self._channel).result(timeout=10)
        from modipick.v1 import selector_pb2_grpc

        self.stub = selector_pb2_grpc.SelectorServiceStub(self._channel)

    def select(self, sla_ms: float, client_id: str, prefix: str = "d", **fields):
        from modipick.v1 import selector_pb2

        sent = stamp(self.now_ns - int(FROZEN_UPLOAD_MS * 1_000_000))
        return self.stub.Select(selector_pb2.SelectRequest(
            request_id=f"{prefix}-{time.perf_counter_ns()}", sla_ms=sla_ms, client_send_time=sent,
            client_id=client_id, **fields), timeout=5.0)

    def select_over_fastest(self, over_ms: float, client_id: str, prefix: str = "d", **fields):
        """A Select at an SLA `over_ms` above the fastest model this replica knows now, and what its
        budget set aside of that SLA (upload, return leg, overhead). The profiles are learned from the
        suite's own requests, and on a busy machine a stall learned moves one by tens of ms now and
        then: the fastest of them all moves least."""
        sla = self.app.cache.snapshot.fastest_ms + over_ms
        reply = self.select(sla, client_id, prefix, **fields)
        return reply, sla - reply.budget_ms

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "FrozenDecider":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def answered_in_time(call, tries: int = 3) -> list:
    """The replies of `tries` identical calls (`call()`), less those a stall held past their deadline
    (at least one must remain)."""
    replies = []
    for _ in range(tries):
        try:
            replies.append(call())
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                raise
    assert replies, f"all {tries} calls were held past their deadline"
    return replies


def least_delayed(call, tries: int = 3):
    """Of `tries` identical Selects or Infers (`call()`), the reply that was left the most budget. A
    scheduling stall only ever adds to a call's upload, so it only shrinks that call's budget: the
    least-delayed call shows what the budget rule gives. A call held past its deadline shows nothing."""
    return max(answered_in_time(call, tries), key=lambda r: r.budget_ms)


def leg_ceiling_ms(results) -> float:
    """The highest median a client's return-leg model may give after these results' reports, its
    client having slept 60 ms on each reply: 75 ms, or where a busy machine stretched the legs, the
    top of what the model may reach from them (an estimate stays within the legs it learned, and a
    client's own model up to half their log range beyond). Each leg is what its report teaches:
    e2e less the upload and the server's time after its decision."""
    legs = [r.e2e_ms - r.timings.upload_ms - (r.timings.server_ms - r.timings.selection_ms) for r in results]
    shortest, longest = max(min(legs), 1.0), max(legs)
    return max(75.0, longest * math.sqrt(longest / shortest))
