"""ProfilerService: observations in, profiles out, the model registry and probes."""

from __future__ import annotations

import math
import re
from typing import Any, AsyncIterator, Awaitable, Callable, TypeVar

import grpc
import structlog

from modipick.core import ModelProfile
from modipick.profiler.accuracy import LabelGate
from modipick.profiler.failures import FailureTracker
from modipick.profiler.ingest import Item, ObservationSink
from modipick.profiler.lifecycle import ModelLifecycle
from modipick.profiler.probe import ProbeFailed, Prober
from modipick.profiler.return_legs import ReturnLegSink
from modipick.runtime.rpc_interceptor import call_request_id
from modipick.stores import AsyncProfileStore, ReturnLegSample, StoreError, StoreUnavailable
from modipick.stores.base import check_leg_samples
from modipick.v1 import common_pb2, profiler_pb2, profiler_pb2_grpc

log = structlog.get_logger("modipick.profiler")

MAX_PROBE_RUNS = 1000
MAX_OBSERVATION_MS = 3_600_000.0  # an hour: beyond it a latency is a unit mistake, and would wreck the EWMA
MAX_NAME_CHARS = 256
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
T = TypeVar("T")
_STATES = {"loading": common_pb2.MODEL_STATE_LOADING, "warming": common_pb2.MODEL_STATE_WARMING,
           "eligible": common_pb2.MODEL_STATE_ELIGIBLE, "failing": common_pb2.MODEL_STATE_FAILING}


def profile_message(p: ModelProfile) -> common_pb2.Profile:
    message = common_pb2.Profile(
        model=common_pb2.ModelRef(name=p.name, version=p.version), mean_ms=p.mean_ms, std_ms=p.std_ms,
        samples=p.samples, updated_at_unix=p.updated_at, declared_accuracy=p.declared_accuracy,
        measured_accuracy=p.measured_accuracy or 0.0, correct=p.correct, served=p.served,
        state=_STATES.get(p.state, common_pb2.MODEL_STATE_UNSPECIFIED))
    if p.updated_at > 0:  # the deprecated float field stays filled for older readers
        message.updated_at.FromMicroseconds(round(p.updated_at * 1e6))  # a float holds no more
    return message


_LEG_OWNERS = {profiler_pb2.RETURN_LEG_OWNER_CLIENT: "client", profiler_pb2.RETURN_LEG_OWNER_CLASS: "class"}


def return_leg_sample(leg: profiler_pb2.ReturnLeg) -> ReturnLegSample | None:
    """The sample a reported reply leg gives, or None when it is not a usable one."""
    try:
        (sample,) = check_leg_samples([ReturnLegSample(
            leg.client_id, leg.upload_ms, leg.return_ms, leg.basis_ms if leg.HasField("basis_ms") else None,
            _LEG_OWNERS.get(leg.basis_owner, ""))])
    except ValueError:
        return None
    return sample if sample.return_ms <= MAX_OBSERVATION_MS and sample.upload_ms <= MAX_OBSERVATION_MS else None


def observation_item(o: profiler_pb2.Observation) -> Item | None:
    """(name, version, queue + execution ms), or None for what cannot feed a profile."""
    ms = o.queue_ms + o.execution_ms
    if (not o.model.name or o.model.version <= 0 or o.failed or not math.isfinite(ms)
            or o.queue_ms < 0 or o.execution_ms < 0 or ms > MAX_OBSERVATION_MS or len(o.model.name) > MAX_NAME_CHARS):
        return None
    return o.model.name, o.model.version, ms


class ProfilerService(profiler_pb2_grpc.ProfilerServiceServicer):
    def __init__(self, store: AsyncProfileStore, sink: ObservationSink, lifecycle: ModelLifecycle,
                 prober: Prober, failures: FailureTracker | None = None, *,
                 legs: ReturnLegSink | None = None, labels: LabelGate | None = None) -> None:
        self._labels = labels  # None: every label counts
        self._failures = failures if failures is not None else FailureTracker(store)
        self._legs = legs  # None: reported return legs are not kept
        self.rejected_legs = 0
        self._store = store
        self._sink = sink
        self._lifecycle = lifecycle
        self._prober = prober
        self.failed_observations = 0
        self.rejected_observations = 0  # failed executions and malformed observations

    async def _store_call(self, context: grpc.aio.ServicerContext, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        try:
            return await fn(*args)
        except StoreUnavailable as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"profile store unavailable: {exc}")
        except StoreError as exc:
            await context.abort(grpc.StatusCode.INTERNAL, f"profile store failed: {exc}")

    async def RecordObservations(self, request_iterator: AsyncIterator[profiler_pb2.RecordObservationsRequest],
                                 context: grpc.aio.ServicerContext):
        accepted = rejected = 0
        async for batch in request_iterator:
            items = []
            for o in batch.observations:
                if not o.probe and o.model.name and o.model.version > 0:
                    self._failures.saw(o.model.name, o.model.version, failed=o.failed, error_code=o.error_code)
                item = observation_item(o)
                if item is None:
                    rejected += 1
                    self.failed_observations += o.failed
                else:
                    items.append(item)
            accepted += await self._sink.submit(items)
            await self._failures.apply()
        self.rejected_observations += rejected
        return profiler_pb2.RecordObservationsResponse(accepted=accepted, rejected=rejected)

    async def RecordOutcome(self, request: profiler_pb2.RecordOutcomeRequest, context: grpc.aio.ServicerContext):
        rid = call_request_id(request, context)  # bound for the logs by the RPC interceptor
        if request.HasField("return_leg") and self._legs is not None:  # whatever the model part says
            sample = return_leg_sample(request.return_leg)
            if sample is None:
                self.rejected_legs += 1
            else:
                self._legs.submit(sample)
        if not request.model.name or request.model.version <= 0 or len(request.model.name) > MAX_NAME_CHARS:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "model: name (at most "
                                f"{MAX_NAME_CHARS} characters) and a resolved version (>= 1) are required")
        if not request.HasField("true_label"):
            return profiler_pb2.RecordOutcomeResponse()  # nothing to learn accuracy from
        if self._labels is not None and not await self._label_counts(request, context):
            return profiler_pb2.RecordOutcomeResponse()  # accepted; bounded out of the accuracy
        correct = request.predicted_label == request.true_label
        known = await self._store_call(context, self._store.record_outcome, request.model.name,
                                       request.model.version, correct)
        if not known:
            if self._labels is not None:
                self._labels.forget((request.model.name, request.model.version))
            await context.abort(grpc.StatusCode.NOT_FOUND,
                                f"model {request.model.name}:{request.model.version} is not registered")
        log.debug("outcome recorded", model=request.model.name, correct=correct)
        return profiler_pb2.RecordOutcomeResponse()

    async def _label_counts(self, request: profiler_pb2.RecordOutcomeRequest,
                            context: grpc.aio.ServicerContext) -> bool:
        """Whether this label counts towards the model's measured accuracy (modipick.profiler.accuracy)."""
        assert self._labels is not None
        key = (request.model.name, request.model.version)
        if not self._labels.knows(key):
            profile = await self._store_call(context, _find, self._store, *key)
            if profile is None:
                await context.abort(grpc.StatusCode.NOT_FOUND, f"model {key[0]}:{key[1]} is not registered")
            self._labels.seed(key, profile.served)
        return not self._labels.why_not(key, request.client_id)

    async def ListProfiles(self, request, context: grpc.aio.ServicerContext):
        profiles = await self._store_call(context, self._store.load_all)
        return profiler_pb2.ListProfilesResponse(profiles=[profile_message(p) for p in profiles])

    async def ListRegisteredModels(self, request, context: grpc.aio.ServicerContext):
        profiles = await self._store_call(context, self._store.load_all)
        return profiler_pb2.ListRegisteredModelsResponse(models=[profile_message(p) for p in profiles])

    async def RegisterModel(self, request: profiler_pb2.RegisterModelRequest, context: grpc.aio.ServicerContext):
        ref = request.model
        if not ref.name:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "model.name: required")
        if not MODEL_NAME.fullmatch(ref.name):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                "model.name: 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit")
        if ref.version <= 0:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"model.version: must be >= 1, got {ref.version}")
        acc = request.declared_accuracy
        if not (math.isfinite(acc) and 0 <= acc <= 100):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                f"declared_accuracy: a percentage in [0, 100], got {acc!r}")
        try:
            profile = await self._lifecycle.register(ref.name, ref.version, acc, eligible=request.skip_warmup)
        except StoreUnavailable as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"profile store unavailable: {exc}")
        except StoreError as exc:
            await context.abort(grpc.StatusCode.INTERNAL, f"profile store failed: {exc}")
        return profiler_pb2.RegisterModelResponse(profile=profile_message(profile))

    async def DeregisterModel(self, request: profiler_pb2.DeregisterModelRequest, context: grpc.aio.ServicerContext):
        ref = request.model
        if not ref.name or ref.version <= 0 or len(ref.name) > MAX_NAME_CHARS:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "model: name (at most "
                                f"{MAX_NAME_CHARS} characters) and version (>= 1) are required")
        try:
            existed = await self._lifecycle.deregister(ref.name, ref.version)
        except StoreUnavailable as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"profile store unavailable: {exc}")
        except StoreError as exc:
            await context.abort(grpc.StatusCode.INTERNAL, f"profile store failed: {exc}")
        if not existed:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"model {ref.name}:{ref.version} is not registered")
        return profiler_pb2.DeregisterModelResponse()

    async def ProbeModel(self, request: profiler_pb2.ProbeModelRequest, context: grpc.aio.ServicerContext):
        ref = request.model
        if not ref.name or ref.version <= 0 or len(ref.name) > MAX_NAME_CHARS:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "model: name (at most "
                                f"{MAX_NAME_CHARS} characters) and version (>= 1) are required")
        runs = request.runs or self._lifecycle.settings.probe_runs
        if not 0 < runs <= MAX_PROBE_RUNS:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"runs: must be in 1..{MAX_PROBE_RUNS}, got {runs}")
        profile = await self._store_call(context, _find, self._store, ref.name, ref.version)
        if profile is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"model {ref.name}:{ref.version} is not registered")
        try:
            observations = await self._prober.run(ref.name, ref.version, runs, record=True)
        except ProbeFailed as exc:
            code = exc.code if exc.code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.DEADLINE_EXCEEDED,
                                            grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED,
                                            grpc.StatusCode.INVALID_ARGUMENT) else grpc.StatusCode.INTERNAL
            if code == grpc.StatusCode.INTERNAL and profile.state == "eligible":  # the model itself failed
                await self._store_call(context, self._store.set_state, ref.name, ref.version, "failing")
            await context.abort(code, str(exc))
        if profile.state == "failing":  # a probe passed: back in the eligible set
            await self._store_call(context, self._store.set_state, ref.name, ref.version, "eligible")
            log.info("failing model passed a probe; eligible again", model=profile.key)
        profile = await self._store_call(context, _find, self._store, ref.name, ref.version)
        return profiler_pb2.ProbeModelResponse(observations=observations,
                                               profile=profile_message(profile) if profile else None)


async def _find(store: AsyncProfileStore, name: str, version: int) -> ModelProfile | None:
    for p in await store.load_all():
        if p.name == name and p.version == version:
            return p
    return None
