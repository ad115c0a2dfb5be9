"""modipick.v1.ExecutorService: run a named model under the caller's deadline.

One Execute: resolve the model (NOT_FOUND / UNAVAILABLE), check the input (INVALID_ARGUMENT),
wait for an execution slot (queue_ms; RESOURCE_EXHAUSTED when the queue is full), decode and run
(execution_ms), reply — all within the gRPC deadline (DEADLINE_EXCEEDED). A user execution
(probe == False) then becomes an observation for the Profiler, submitted without waiting.
A run that outlives its deadline keeps its slot until the backend really finishes, so the
concurrency bound holds for the CPU as well as for the replies.
"""

from __future__ import annotations

import asyncio
import time
from typing import Callable

import grpc
import numpy as np
import structlog

from modipick.executor.admission import Admission
from modipick.executor.backends.base import DEFAULT_SIGNATURE, Backend, ModelInfo, ModelRef
from modipick.executor.errors import DeadlineExceeded, ExecutorError, InvalidInput
from modipick.executor.inputs import PreparedInput, decode_image, prepare
from modipick.executor.reporter import ExecutionObservation, NullSink, ObservationSink
from modipick.runtime.rpc_interceptor import call_request_id
from modipick.runtime.status_details import abort_with_details, execution_reason
from modipick.v1 import common_pb2, executor_pb2, executor_pb2_grpc

log = structlog.get_logger("modipick.executor")
MAX_NAME_CHARS = 256  # names are echoed in error messages, which must stay small
# The caller's deadline runs out on its side first (its clock started before the request reached
# us), so its cancellation can end the call a little before our own timer does.
DEADLINE_LEAD_S = 0.05

_STATES = {"AVAILABLE": common_pb2.MODEL_STATE_ELIGIBLE, "LOADING": common_pb2.MODEL_STATE_LOADING,
           "UNAVAILABLE": common_pb2.MODEL_STATE_UNAVAILABLE}


class ExecutorService(executor_pb2_grpc.ExecutorServiceServicer):
    def __init__(self, backend: Backend, *, sink: ObservationSink | None = None, max_concurrency: int = 2,
                 max_queue: int = 32, default_timeout_s: float = 30.0,
                 clock: Callable[[], float] = time.perf_counter, wall_clock: Callable[[], float] = time.time) -> None:
        self.backend = backend
        self.sink = sink if sink is not None else NullSink()
        self.admission = Admission(max_concurrency, max_queue)
        self.default_timeout_s = default_timeout_s
        self._clock = clock
        self._wall = wall_clock

    async def Execute(self, request: executor_pb2.ExecuteRequest, context: grpc.aio.ServicerContext
                      ) -> executor_pb2.ExecuteResponse:
        request_id = call_request_id(request, context)  # bound for the logs by the RPC interceptor
        try:
            return await self._execute_logged(request, request_id, context.time_remaining())
        except ExecutorError as exc:
            await abort_with_details(context, exc.code, exc.message, execution_reason(exc.code))

    async def _execute_logged(self, request: executor_pb2.ExecuteRequest, request_id: str,
                              time_remaining_s: float | None) -> executor_pb2.ExecuteResponse:
        try:
            return await self.execute(request, request_id, time_remaining_s)
        except ExecutorError as exc:
            log.info("execute refused", model=request.model.name, code=exc.code.name, reason=exc.message)
            raise
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug, not the caller's fault: say so without the traceback
            log.exception("execute failed", model=request.model.name)
            raise ExecutorError(f"executor error: {type(exc).__name__}: {exc}") from exc

    async def execute(self, request: executor_pb2.ExecuteRequest, request_id: str,
                      time_remaining_s: float | None) -> executor_pb2.ExecuteResponse:
        started = self._clock()
        budget_s = self.default_timeout_s if time_remaining_s is None else time_remaining_s
        deadline = started + budget_s
        ref = _model_ref(request.model)
        if len(request.signature_name) > MAX_NAME_CHARS:
            raise InvalidInput(f"signature_name is longer than {MAX_NAME_CHARS} characters")
        if budget_s <= 0:
            raise DeadlineExceeded(f"deadline already passed when {ref} arrived")
        model = await self.backend.resolve(ref, timeout_s=budget_s)
        prepared = prepare(request.input, model)
        signature = request.signature_name or DEFAULT_SIGNATURE

        await self.admission.acquire(deadline - self._clock())
        slot_at = self._clock()
        queue_ms = (slot_at - started) * 1000.0
        run = asyncio.ensure_future(self._run(model, prepared, signature, deadline, ref.version_label))
        run.add_done_callback(self._finished)
        try:
            done, _ = await asyncio.wait({run}, timeout=max(0.0, deadline - self._clock()))
        except asyncio.CancelledError:  # gRPC gave up first (deadline or caller cancelled)
            cancelled_at = self._clock()
            ended = "DEADLINE_EXCEEDED" if deadline - cancelled_at <= DEADLINE_LEAD_S else "CANCELLED"
            self._observe(request, model.name, model.version, queue_ms, (cancelled_at - slot_at) * 1000.0,
                          request_id, failed=True, error_code=ended)
            self._observe_when_done(run, request, model.name, queue_ms, slot_at, request_id, budget_s)
            raise
        execution_ms = (self._clock() - slot_at) * 1000.0
        if not done or isinstance(run.exception(), DeadlineExceeded):
            self._observe(request, model.name, model.version, queue_ms, execution_ms, request_id, failed=True,
                          error_code="DEADLINE_EXCEEDED")
            self._observe_when_done(run, request, model.name, queue_ms, slot_at, request_id, budget_s)
            raise DeadlineExceeded(f"{model.name}:{model.version} did not finish within the deadline "
                                   f"({budget_s * 1000:.0f} ms budget, {queue_ms:.1f} ms queued)")
        if run.exception() is not None:
            error = run.exception()
            if not isinstance(error, InvalidInput):
                self._observe(request, model.name, model.version, queue_ms, execution_ms, request_id, failed=True,
                              error_code=error.code.name if isinstance(error, ExecutorError) else "INTERNAL")
            raise error
        version, scores = run.result()
        self._observe(request, model.name, version, queue_ms, execution_ms, request_id, failed=False)
        return executor_pb2.ExecuteResponse(
            request_id=request_id, model=common_pb2.ModelRef(name=model.name, version=version),
            prediction=_prediction(scores, model), queue_ms=queue_ms, execution_ms=execution_ms)

    async def _run(self, model: ModelInfo, prepared: PreparedInput, signature: str, deadline: float,
                   version_label: str) -> tuple[int, np.ndarray]:
        batch = prepared.batch
        if prepared.needs_decoding:
            batch = await asyncio.to_thread(decode_image, prepared.encoded, model)
        remaining = deadline - self._clock()
        if remaining <= 0:
            raise DeadlineExceeded(f"deadline passed while decoding the image for {model.name}")
        version, output = await self.backend.predict(model, batch, signature=signature, timeout_s=remaining,
                                                     version_label=version_label)
        if output.ndim != 2 or output.shape[0] != 1:
            raise ExecutorError(f"{model.name}:{version} returned output of shape {list(output.shape)}, "
                                "expected [1, classes]")
        return version, output[0]

    def _observe_when_done(self, run: asyncio.Future, request: executor_pb2.ExecuteRequest, name: str,
                           queue_ms: float, slot_at: float, request_id: str, budget_s: float) -> None:
        """A run nobody waits for any more still ends, and its whole time is a latency sample like any
        other: a profile fed only by the runs that made their deadlines learns the fast ones (it is
        censored exactly where the model is slow) and keeps offering a model that misses. Up to twice
        its budget, that is: a run held up far longer was held up by something else (a stopped or
        starved process: 2 s against 150 ms once priced the pool's most accurate model out of every
        budget, with no sample to bring it back), and its miss is on record already."""
        if run.done():
            return

        def ended(run: asyncio.Future) -> None:
            if not run.cancelled() and run.exception() is None:
                version, _ = run.result()
                execution_ms = (self._clock() - slot_at) * 1000.0
                if queue_ms + execution_ms <= 2000.0 * budget_s:
                    self._observe(request, name, version, queue_ms, execution_ms, request_id, failed=False)

        run.add_done_callback(ended)

    def _finished(self, run: asyncio.Future) -> None:
        self.admission.release()
        if not run.cancelled():
            run.exception()  # retrieved: an abandoned run's error is not "never retrieved"

    def _observe(self, request: executor_pb2.ExecuteRequest, name: str, version: int, queue_ms: float,
                 execution_ms: float, request_id: str, *, failed: bool, error_code: str = "") -> None:
        if request.probe:
            return  # the Profiler records its own probes from the reply
        self.sink.submit(ExecutionObservation(name, version, queue_ms, execution_ms, self._wall(),
                                              request_id, failed, error_code))

    async def ListModels(self, request: executor_pb2.ListModelsRequest, context: grpc.aio.ServicerContext
                         ) -> executor_pb2.ListModelsResponse:
        try:
            infos = await self.backend.models()
        except ExecutorError as exc:
            await context.abort(exc.code, exc.message)
        depth = self.admission.depth
        return executor_pb2.ListModelsResponse(models=[
            executor_pb2.ModelStatus(
                model=common_pb2.ModelRef(name=i.name, version=i.version),
                state=_STATES.get(i.state, common_pb2.MODEL_STATE_UNAVAILABLE), input_shape=list(i.input_shape),
                input_name=i.input_name, declared_accuracy=i.declared_accuracy, queue_depth=depth,
                max_concurrency=self.admission.max_concurrency)
            for i in infos])


def _model_ref(message: common_pb2.ModelRef) -> ModelRef:
    if not message.name:
        raise InvalidInput("model.name is empty")
    if len(message.name) > MAX_NAME_CHARS or len(message.version_label) > MAX_NAME_CHARS:
        raise InvalidInput(f"model.name and model.version_label are at most {MAX_NAME_CHARS} characters")
    if message.version < 0:
        raise InvalidInput(f"model.version must be >= 0 (0 = latest), got {message.version}")
    if message.version and message.version_label:
        raise InvalidInput("give model.version or model.version_label, not both")
    return ModelRef(message.name, int(message.version), message.version_label)


def _prediction(scores: np.ndarray, model: ModelInfo) -> common_pb2.Prediction:
    if scores.size == 0 or not np.isfinite(scores).all():
        raise ExecutorError(f"{model.name}:{model.version} produced no finite scores")
    label = int(np.argmax(scores))
    name = model.labels[label] if label < len(model.labels) else str(label)
    return common_pb2.Prediction(label=label, label_name=name, score=float(scores[label]),
                                 scores=[float(s) for s in scores])

