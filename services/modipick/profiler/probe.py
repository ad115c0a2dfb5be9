"""Running a model on purpose: warm-up runs (discarded) and probe runs (recorded).

Probes go to the Executor with `probe=True` (so it does not report them itself) and one at a time
across the whole Profiler: concurrent probes would compete for the same cores and record each
other's interference as the model's latency. Warm-up alternates a zero tensor with a blank PNG so
both of the Executor's input paths (tensor and image decoding) are warm before anything is recorded.
The first recorded value seeds the EWMA mean, so recorded runs are fed median first: one slow
outlier (a cold cache, a noisy neighbour) must not become the model's starting profile.
"""

from __future__ import annotations

import asyncio
import math
import struct
import time
import uuid
import zlib
from typing import Callable

import grpc
import structlog
from google.protobuf.timestamp_pb2 import Timestamp

from modipick.profiler.ingest import ObservationSink
from modipick.runtime.metadata import REQUEST_ID_KEY
from modipick.v1 import common_pb2, executor_pb2, executor_pb2_grpc, profiler_pb2

log = structlog.get_logger("modipick.profiler.probe")

DEFAULT_INPUT_SHAPE = (1, 8, 8, 1)  # the digits pool; models the Executor lists carry their own


class ProbeFailed(Exception):
    def __init__(self, model: str, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"probe of {model} failed: {code.name}: {details}")
        self.code = code


def zero_input(shape: tuple[int, ...]) -> common_pb2.Input:
    """A zero float32 tensor; unknown (<= 0) dimensions, the batch one included, become 1."""
    dims = [d if d > 0 else 1 for d in shape] or list(DEFAULT_INPUT_SHAPE)
    return common_pb2.Input(tensor=common_pb2.Tensor(dtype="float32", shape=dims,
                                                     content=bytes(4 * math.prod(dims))))


def blank_png(height: int, width: int, channels: int = 1) -> bytes:
    """A black 8-bit grayscale (1 channel) or RGB (3) PNG, without an imaging library."""
    color = 0 if channels == 1 else 2
    raw = b"".join(b"\x00" + bytes(width * (1 if channels == 1 else 3)) for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, color, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


def image_input(tensor_input: common_pb2.Input) -> common_pb2.Input | None:
    """A blank PNG of the tensor input's size, or None when the shape is not an image's."""
    shape = list(tensor_input.tensor.shape)
    if len(shape) != 4 or shape[3] not in (1, 3):
        return None
    return common_pb2.Input(encoded_image=blank_png(shape[1], shape[2], shape[3]))


def median_first(values: list) -> list:
    if len(values) < 3:
        return values
    ordered = sorted(range(len(values)), key=lambda i: values[i])
    mid = ordered[len(values) // 2]
    return [values[mid], *values[:mid], *values[mid + 1:]]


class Prober:
    def __init__(self, executor: executor_pb2_grpc.ExecutorServiceStub, sink: ObservationSink, *,
                 timeout_s: float = 30.0, clock: Callable[[], float] = time.time) -> None:
        self._executor = executor
        self._sink = sink
        self._timeout_s = timeout_s
        self._clock = clock
        self._inputs: dict[str, common_pb2.Input] = {}
        self._lock = asyncio.Lock()

    def learn_input(self, status: executor_pb2.ModelStatus) -> None:
        shape = tuple(status.input_shape)
        if shape and len(shape) < 4 and shape[0] > 0:
            shape = (1, *shape)  # listed without the batch dimension
        self._inputs[status.model.name] = zero_input(shape)

    def input_for(self, name: str) -> common_pb2.Input:
        probe_input = self._inputs.get(name)
        if probe_input is None:
            probe_input = self._inputs[name] = zero_input(DEFAULT_INPUT_SHAPE)
        return probe_input

    async def warm_up(self, name: str, version: int, runs: int) -> None:
        """`runs` discarded executions, alternating tensor and encoded-image input."""
        tensor = self.input_for(name)
        inputs = [tensor, image_input(tensor) or tensor]
        async with self._lock:
            for i in range(runs):
                await self._execute_once(name, version, inputs[i % 2])

    async def run(self, name: str, version: int, runs: int, *, record: bool) -> list[profiler_pb2.Observation]:
        """`runs` sequential executions; with `record`, their latencies feed the profile (median first)."""
        observations = []
        async with self._lock:
            for _ in range(runs):
                observations.append(await self._execute_once(name, version, self.input_for(name)))
        if record and observations:
            items = [(o.model.name, o.model.version, o.queue_ms + o.execution_ms) for o in observations]
            ordered = median_first([ms for _, _, ms in items])
            await self._sink.submit([(items[0][0], items[0][1], ms) for ms in ordered])
        return observations

    async def _execute_once(self, name: str, version: int, probe_input: common_pb2.Input) -> profiler_pb2.Observation:
        rid = f"probe-{uuid.uuid4().hex}"
        request = executor_pb2.ExecuteRequest(request_id=rid, model=common_pb2.ModelRef(name=name, version=version),
                                              input=probe_input, probe=True)
        try:
            reply = await self._executor.Execute(request, timeout=self._timeout_s,
                                                 metadata=((REQUEST_ID_KEY, rid),))
        except grpc.aio.AioRpcError as exc:
            raise ProbeFailed(f"{name}:{version}", exc.code(), exc.details() or "") from None
        observed = Timestamp()
        observed.FromNanoseconds(int(self._clock() * 1e9))
        ran = reply.model if reply.model.name else request.model
        return profiler_pb2.Observation(
            model=common_pb2.ModelRef(name=ran.name, version=ran.version or version),
            queue_ms=reply.queue_ms, execution_ms=reply.execution_ms, observed_at=observed,
            request_id=rid, probe=True)
