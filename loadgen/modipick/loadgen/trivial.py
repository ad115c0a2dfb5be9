"""A trivial Selector for tests, benchmarks and worked examples without the live suite.

It speaks the real modipick.v1 SelectorService (and ProfilerService.ListProfiles for declared
accuracies), computes the budget like the Selector (upload = receive - client send time, return
estimate = upload) and picks from a fixed fake pool with the real policy objects of
modipick.core. It answers at once unless `execute=True` (then it sleeps each model's mean).

It is a test double, not a model server: for sklearn digits it looks the image up in the dataset
and answers correctly with the chosen model's declared accuracy (seeded); other inputs get no
prediction.
"""

from __future__ import annotations

import asyncio
import collections
import random
import time
from dataclasses import dataclass
from typing import Callable

import grpc

from modipick.core import Budget, Candidate, make_policy
from modipick.core.policies import LIVE_POLICIES, Reason, fastest, runs_on_device
from modipick.v1 import common_pb2, profiler_pb2, profiler_pb2_grpc, selector_pb2, selector_pb2_grpc


@dataclass(frozen=True, slots=True)
class FakeModel:
    name: str
    accuracy: float  # percent
    mean_ms: float
    std_ms: float = 0.0

    def candidate(self) -> Candidate:
        return Candidate(self.name, 1, self.accuracy, self.mean_ms, self.std_ms)


DEFAULT_POOL = (
    FakeModel("digits_tiny", 85.0, 2.0, 0.2),
    FakeModel("digits_small", 92.0, 6.0, 0.8),
    FakeModel("digits_medium", 96.0, 15.0, 2.0),
    FakeModel("digits_large", 98.5, 40.0, 5.0),
)


class _DigitLabels:
    """image bytes -> true label, for scikit-learn digits tensors."""

    def __init__(self) -> None:
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = digits.images.astype("float32")
        self._labels = {images[i].tobytes(): int(digits.target[i]) for i in range(len(images))}

    def label(self, message: common_pb2.Input) -> int | None:
        if message.WhichOneof("kind") != "tensor":
            return None
        return self._labels.get(message.tensor.content)


class TrivialSelector(selector_pb2_grpc.SelectorServiceServicer):
    def __init__(self, pool: tuple[FakeModel, ...] = DEFAULT_POOL, *, default_policy: str = "modipick",
                 execute: bool = False, know_digits: bool = True, seed: int = 0,
                 clock: Callable[[], float] = time.time) -> None:
        self.pool = pool
        self._candidates = tuple(m.candidate() for m in pool)  # a tuple: policies cache per tuple
        self._by_name = {m.name: m for m in pool}
        self._fastest = fastest(self._candidates)
        self._default_policy = default_policy
        self._policies = {name: make_policy(name) for name in LIVE_POLICIES}
        self._execute = execute
        self._labels = _DigitLabels() if know_digits else None
        self._rng = random.Random(seed)
        self._clock = clock
        self.served = 0
        self.outcomes = 0
        self.clients: collections.Counter[str] = collections.Counter()   # requests per client id
        self.reporters: collections.Counter[str] = collections.Counter()  # outcome reports per client id

    async def Infer(self, request, context):  # noqa: N802 (gRPC method name)
        received = self._clock()
        self.clients[request.client_id] += 1
        sent = request.client_send_time.seconds + request.client_send_time.nanos * 1e-9
        upload_ms = max(0.0, (received - sent) * 1000.0) if request.HasField("client_send_time") else 0.0
        policy = self._policies.get(request.policy or self._default_policy)
        if policy is None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                f"unknown policy {request.policy!r}; known: {', '.join(self._policies)}")
        if not request.sla_ms > 0:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"sla_ms must be > 0, got {request.sla_ms!r}")
        budget = Budget(request.sla_ms, upload_ms)
        t0 = time.perf_counter()
        decision = policy.choose(self._candidates, budget, self._rng)
        selection_ms = (time.perf_counter() - t0) * 1000.0
        timings = common_pb2.Timings(upload_ms=upload_ms, budget_ms=budget.execution_ms, selection_ms=selection_ms)
        reply = selector_pb2.InferResponse(request_id=request.request_id, timings=timings,
                                           reason=_REASON[decision.reason])
        if runs_on_device(decision, budget):
            reply.disposition = selector_pb2.DISPOSITION_RUN_ON_DEVICE
            reply.model.name = self._fastest.name
            reply.model.version = self._fastest.version
        else:
            model = self._by_name[decision.model.name]
            execution_ms = max(0.0, self._rng.gauss(model.mean_ms, model.std_ms))
            if self._execute:
                await asyncio.sleep(execution_ms / 1000.0)
            reply.disposition = selector_pb2.DISPOSITION_SERVED
            reply.model.name, reply.model.version = model.name, 1
            reply.timings.execution_ms = execution_ms
            self._predict(request.input, model, reply.prediction)
        reply.timings.server_ms = (self._clock() - received) * 1000.0
        self.served += 1
        return reply

    def _predict(self, message: common_pb2.Input, model: FakeModel, out: common_pb2.Prediction) -> None:
        label = self._labels.label(message) if self._labels is not None else None
        if label is None:
            out.label = -1
            return
        right = self._rng.random() * 100.0 < model.accuracy
        out.label = label if right else (label + 1 + self._rng.randrange(9)) % 10
        out.label_name = str(out.label)
        out.score = 1.0

    async def Select(self, request, context):  # noqa: N802
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "the trivial Selector only answers Infer")

    async def ReportOutcome(self, request, context):  # noqa: N802
        self.outcomes += 1
        self.reporters[request.client_id] += 1
        return selector_pb2.ReportOutcomeResponse()


class TrivialProfiler(profiler_pb2_grpc.ProfilerServiceServicer):
    """ListProfiles only: the fake pool's declared accuracies and latencies."""

    def __init__(self, pool: tuple[FakeModel, ...] = DEFAULT_POOL) -> None:
        self._profiles = [common_pb2.Profile(model=common_pb2.ModelRef(name=m.name, version=1), mean_ms=m.mean_ms,
                                             std_ms=m.std_ms, declared_accuracy=m.accuracy,
                                             state=common_pb2.MODEL_STATE_ELIGIBLE) for m in pool]

    async def ListProfiles(self, request, context):  # noqa: N802
        return profiler_pb2.ListProfilesResponse(profiles=self._profiles)


_REASON = {Reason.BASE: common_pb2.SELECTION_REASON_BASE, Reason.EXPLORED: common_pb2.SELECTION_REASON_EXPLORED,
           Reason.FALLBACK: common_pb2.SELECTION_REASON_FALLBACK, Reason.ORACLE: common_pb2.SELECTION_REASON_BASE}


async def start_trivial_server(address: str = "127.0.0.1:0", **selector_options) -> tuple[grpc.aio.Server, int,
                                                                                          TrivialSelector]:
    """Start a trivial Selector (+ ListProfiles) on `address`; returns (server, bound port, servicer)."""
    selector = TrivialSelector(**selector_options)
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 * 1024 * 1024),
                                      ("grpc.so_reuseport", 0)])
    selector_pb2_grpc.add_SelectorServiceServicer_to_server(selector, server)
    profiler_pb2_grpc.add_ProfilerServiceServicer_to_server(TrivialProfiler(selector.pool), server)
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot listen on {address}")
    await server.start()
    return server, port, selector
