"""SelectorService: per request, a budget, a policy decision on the cached profiles, one Executor
call under the remaining budget as its deadline, and the timings of all of it."""

from __future__ import annotations

import collections
import math
import random
import time
from typing import Callable

import grpc
import structlog

from modipick.core import Decision, Reason
from modipick.core.policies import runs_on_device
from modipick.runtime.logging import bound_request_id
from modipick.runtime.metadata import REQUEST_ID_KEY, request_id_from, request_id_problem
from modipick.runtime.metrics import SelectorMetrics
from modipick.runtime.status_details import abort_with_details, execution_reason
from modipick.runtime.tracing import annotate, tracing_enabled
from modipick.selector.budget import (Budgeter, BudgetRules, RequestBudget, RequestInvalid, ServingOverhead,
                                      deadline_slack_ms, uses_return_leg)
from modipick.selector.cache import ProfileCache
from modipick.selector.outcomes import ImplausibleReport, OutcomeForwarder, OutcomeLearner, leg_message
from modipick.selector.policies import PolicyBook
from modipick.selector.client_legs import forwards_legs, prefetch_leg
from modipick.selector.provenance import Provenance
from modipick.selector.report_limits import ReportLimits, ReportRateLimiter
from modipick.selector.tickets import TicketSigner, outcome_ticket, served_from_ticket, ticket_problem
from modipick.v1 import (common_pb2, errors_pb2, executor_pb2, executor_pb2_grpc, profiler_pb2, selector_pb2,
                         selector_pb2_grpc)

log = structlog.get_logger("modipick.selector")

_REASONS = {Reason.BASE: common_pb2.SELECTION_REASON_BASE, Reason.EXPLORED: common_pb2.SELECTION_REASON_EXPLORED,
            Reason.FALLBACK: common_pb2.SELECTION_REASON_FALLBACK}
_TENSOR_ITEMSIZE = {"float32": 4, "uint8": 1}
_MAX_DIMS = 8
# What the Selector answers when the Executor fails, by the Executor's status.
_EXECUTOR_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.RESOURCE_EXHAUSTED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.DEADLINE_EXCEEDED: grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED: grpc.StatusCode.CANCELLED,
    grpc.StatusCode.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.NOT_FOUND: grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.FAILED_PRECONDITION: grpc.StatusCode.UNAVAILABLE,
}


class SelectorService(selector_pb2_grpc.SelectorServiceServicer):
    def __init__(self, cache: ProfileCache, executor: executor_pb2_grpc.ExecutorServiceStub,
                 policies: PolicyBook, outcomes: OutcomeForwarder, *, rng_for: Callable[[str], random.Random],
                 rules: BudgetRules = BudgetRules(), overhead: ServingOverhead | None = None,
                 wall_ns: Callable[[], int] = time.time_ns, perf: Callable[[], float] = time.perf_counter,
                 metrics: SelectorMetrics | None = None, budgeter: Budgeter | None = None,
                 learner: OutcomeLearner | None = None, signer: TicketSigner | None = None,
                 report_limiter: ReportRateLimiter | None = None) -> None:
        self.metrics = metrics if metrics is not None else SelectorMetrics()
        self._cache = cache
        self._executor = executor
        # the Executor reads the request id from the message; a metadata copy (~25 us a call) and
        # span attributes serve tracing only
        self._traced = tracing_enabled()
        self._policies = policies
        self._outcomes = outcomes
        self._rng_for = rng_for
        self.budgeter = budgeter or Budgeter(rules, overhead)
        self.overhead = self.budgeter.overhead
        # not `learner or ...`: an OutcomeLearner that remembers nothing yet is falsy (it has a __len__)
        self.learner = learner if learner is not None else OutcomeLearner(self.budgeter.returns, self.budgeter.clocks)
        self._wall_ns = wall_ns
        self._perf = perf
        self.counts: collections.Counter[str] = collections.Counter()
        self.provenance = Provenance(self.metrics.registry)
        # signed tickets (None: unsigned) and per-client report rates (docs/security.md)
        self.signer = signer
        self._ticket = signer.ticket if signer is not None else outcome_ticket
        self.report_limiter = report_limiter if report_limiter is not None else ReportRateLimiter(ReportLimits())

    # -- the decision, shared by Infer and Select ------------------------------------------------
    def _decide(self, request, context: grpc.aio.ServicerContext, request_id: str,
                receive_ns: int) -> tuple[RequestBudget, Decision]:
        """`request`: an InferRequest or SelectRequest. The time left is read here, at the decision."""
        problem = request_id_problem(request.request_id)  # it travels on in gRPC metadata
        if problem:
            raise RequestInvalid("request_id", problem.partition(": ")[2])
        policy = self._policies.get(request.policy)
        made = self.budgeter.make(
            sla_ms=request.sla_ms, receive_ns=receive_ns,
            send_time=request.client_send_time if request.HasField("client_send_time") else None,
            left_s=context.time_remaining(), slack_ms=deadline_slack_ms(context.invocation_metadata()),
            client_id=request.client_id, with_leg=uses_return_leg(policy))
        candidates = self._cache.snapshot.candidates
        if not candidates:
            raise _NoModels(self._cache)
        return made, policy.choose(candidates, made.budget, self._rng_for(request_id))

    # -- RPCs -------------------------------------------------------------------------------------
    async def Infer(self, request: selector_pb2.InferRequest, context: grpc.aio.ServicerContext):
        started = self._perf()
        receive_ns = self._wall_ns()
        rid = request.request_id or request_id_from(context.invocation_metadata())
        policy_label = self.metrics.policy_label(request.policy, self._policies.default_name)
        with bound_request_id(rid):
            try:
                _check_input(request)
                await prefetch_leg(self.budgeter.returns, request.client_id)
                made, decision = self._decide(request, context, rid, receive_ns)
            except RequestInvalid as exc:
                self.counts["invalid"] += 1
                self.metrics.request(policy_label, "error")
                await abort_with_details(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc),
                                         errors_pb2.ERROR_REASON_INVALID_REQUEST, metadata={"field": exc.field})
            except _NoModels as exc:
                self.counts["no_models"] += 1
                self.metrics.request(policy_label, "error")
                await abort_with_details(context, grpc.StatusCode.UNAVAILABLE, str(exc),
                                         errors_pb2.ERROR_REASON_NO_ELIGIBLE_MODEL)
            decided = self._perf()
            budget = made.budget
            budget_ms = budget.execution_ms
            timings = common_pb2.Timings(upload_ms=made.upload_ms, budget_ms=budget_ms,
                                         selection_ms=(decided - started) * 1000.0)
            chosen = decision.model
            ref = common_pb2.ModelRef(name=chosen.name, version=chosen.version)
            reason = decision.reason.value
            self.metrics.selection(chosen.name, reason, budget_ms)
            if self._traced:
                annotate(**{"modipick.model": chosen.key, "modipick.reason": reason,
                            "modipick.budget_ms": budget_ms, "modipick.policy": policy_label})
            # the Executor call may use the budget plus the overhead set aside for its round trip
            timeout_s = (budget_ms + self.overhead.value_ms) / 1000.0 - (decided - started)
            left = context.time_remaining()
            if left is not None and left < timeout_s:
                timeout_s = left
            if runs_on_device(decision, budget) or timeout_s <= 0:
                self.counts["run_on_device"] += 1
                self.metrics.request(policy_label, "run_on_device")
                timings.server_ms = (self._perf() - started) * 1000.0
                log.debug("run on device", budget_ms=budget_ms, fastest_ms=chosen.mean_ms)
                return self.provenance.stamp(selector_pb2.InferResponse(
                    request_id=rid, disposition=selector_pb2.DISPOSITION_RUN_ON_DEVICE, model=ref,
                    reason=common_pb2.SELECTION_REASON_FALLBACK, timings=timings), made, decision)
            try:
                reply = await self._executor.Execute(
                    executor_pb2.ExecuteRequest(request_id=rid, model=ref, input=request.input),
                    timeout=timeout_s, metadata=((REQUEST_ID_KEY, rid),) if self._traced else None)
            except grpc.aio.AioRpcError as exc:
                code = _EXECUTOR_STATUS.get(exc.code(), grpc.StatusCode.INTERNAL)
                self.counts[f"executor_{exc.code().name.lower()}"] += 1
                if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                    message = (f"model {chosen.key} did not answer within the remaining budget of "
                               f"{timeout_s * 1000.0:.1f} ms (SLA {budget.sla_ms:g} ms)")
                else:
                    message = f"executor: {exc.code().name}: {exc.details()}"
                log.info("execution failed", model=chosen.key, code=exc.code().name, details=exc.details())
                self.metrics.request(policy_label, "error")
                # (overloaded: about one execution of the chosen model frees a slot)
                await abort_with_details(context, code, message, execution_reason(exc.code()),
                                         metadata={"model": chosen.key},
                                         retry_after_s=max(chosen.mean_ms, 10.0) / 1000.0)
            self.counts["served"] += 1
            replied = self._perf()
            server_ms = (replied - started) * 1000.0
            queue_ms, execution_ms = reply.queue_ms, reply.execution_ms
            timings.queue_ms, timings.execution_ms, timings.server_ms = queue_ms, execution_ms, server_ms
            self.overhead.observe(server_ms - queue_ms - execution_ms)
            served = self.learner.remember(rid, made, after_decision_ms=(replied - decided) * 1000.0,
                                           server_ms=server_ms)
            # met if upload + server time + the estimated return leg fit the SLA (what the budget spends)
            self.metrics.request(policy_label, "served", sla_met=server_ms <= budget_ms + self.overhead.value_ms)
            if reply.HasField("model") and reply.model.name:
                ref = reply.model
            return self.provenance.stamp(selector_pb2.InferResponse(
                request_id=rid, disposition=selector_pb2.DISPOSITION_SERVED, model=ref,
                reason=_REASONS.get(decision.reason, common_pb2.SELECTION_REASON_UNSPECIFIED),
                prediction=reply.prediction, timings=timings,
                ticket=self._ticket(rid, served) if served is not None else None), made, decision)

    async def Select(self, request: selector_pb2.SelectRequest, context: grpc.aio.ServicerContext):
        receive_ns = self._wall_ns()
        rid = request.request_id or request_id_from(context.invocation_metadata())
        with bound_request_id(rid):
            try:
                await prefetch_leg(self.budgeter.returns, request.client_id)
                made, decision = self._decide(request, context, rid, receive_ns)
            except RequestInvalid as exc:
                await abort_with_details(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc),
                                         errors_pb2.ERROR_REASON_INVALID_REQUEST, metadata={"field": exc.field})
            except _NoModels as exc:
                await abort_with_details(context, grpc.StatusCode.UNAVAILABLE, str(exc),
                                         errors_pb2.ERROR_REASON_NO_ELIGIBLE_MODEL)
            budget = made.budget
            chosen, base = decision.model, decision.base
            on_device = runs_on_device(decision, budget)
            return self.provenance.stamp(selector_pb2.SelectResponse(
                request_id=rid,
                disposition=(selector_pb2.DISPOSITION_RUN_ON_DEVICE if on_device
                             else selector_pb2.DISPOSITION_SERVED),
                model=common_pb2.ModelRef(name=chosen.name, version=chosen.version),
                reason=_REASONS.get(decision.reason, common_pb2.SELECTION_REASON_UNSPECIFIED),
                budget_ms=budget.execution_ms, probability=decision.probability,
                exploration_set_size=decision.explored,
                base_model=(common_pb2.ModelRef(name=base.name, version=base.version) if base else None)),
                made, decision)

    async def ReportOutcome(self, request: selector_pb2.ReportOutcomeRequest, context: grpc.aio.ServicerContext):
        rid = request.request_id or request_id_from(context.invocation_metadata())
        with bound_request_id(rid):
            problem = _check_outcome(request)
            ticketed = request.HasField("ticket")
            if not problem and ticketed:
                problem = ticket_problem(request.ticket, rid, request.client_id)
            if problem:
                await abort_with_details(context, grpc.StatusCode.INVALID_ARGUMENT, problem,
                                         errors_pb2.ERROR_REASON_INVALID_REQUEST,
                                         metadata={"field": problem.partition(":")[0]})
            client_id, memory_key = request.client_id, rid
            if not self.report_limiter.allow(client_id):  # before the HMAC: a flood costs a look-up each
                rate = self.report_limiter.limits.rate_per_s
                await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"outcome reports above {rate:g}/s for this client")
            if self.signer is not None:
                refusal = self.signer.refusal(request.ticket if ticketed else None)
                if refusal:
                    await context.abort(grpc.StatusCode.PERMISSION_DENIED, refusal)
                # the signed ticket alone says whose request it was: a request id is the client's choice
                client_id, memory_key = request.ticket.client_id, ""
            try:
                leg = self.learner.learn_sample(memory_key, request.e2e_ms,
                                                served_from_ticket(request.ticket) if ticketed else None,
                                                request.sla_ms)
            except ImplausibleReport as exc:
                await abort_with_details(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc),
                                         errors_pb2.ERROR_REASON_INVALID_REQUEST, metadata={"field": "e2e_ms"})
            self.metrics.outcome(request.e2e_ms)
            report = profiler_pb2.RecordOutcomeRequest(
                request_id=rid, model=request.model, e2e_ms=request.e2e_ms, sla_ms=request.sla_ms,
                predicted_label=request.predicted_label, client_id=client_id,
                return_leg=leg_message(leg) if leg is not None and forwards_legs(self.budgeter.returns) else None)
            if request.HasField("true_label"):
                report.true_label = request.true_label
            if not self._outcomes.submit(report):
                self.counts["outcomes_dropped"] += 1
            return selector_pb2.ReportOutcomeResponse()


class _NoModels(Exception):
    def __init__(self, cache: ProfileCache) -> None:
        states = collections.Counter(p.state for p in cache.snapshot.profiles)
        if cache.snapshot.generation == 0:
            why = f"profiles not loaded yet ({cache.last_error or 'store not reached'})"
        elif not states:
            why = "no model registered (is the Profiler running?)"
        else:
            why = "registered: " + ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
        super().__init__(f"no eligible model to serve with: {why}")


def _check_input(request: selector_pb2.InferRequest) -> None:
    kind = request.input.WhichOneof("kind")
    if kind is None:
        raise RequestInvalid("input", "missing: set input.encoded_image (PNG/JPEG bytes) or input.tensor")
    if kind == "encoded_image":
        if not request.input.encoded_image:
            raise RequestInvalid("input.encoded_image", "is empty")
        return
    tensor = request.input.tensor
    itemsize = _TENSOR_ITEMSIZE.get(tensor.dtype)
    if itemsize is None:
        raise RequestInvalid("input.tensor.dtype", f"{tensor.dtype[:32]!r} is not one of {sorted(_TENSOR_ITEMSIZE)}")
    if len(tensor.shape) > _MAX_DIMS:  # (and the error message below stays short)
        raise RequestInvalid("input.tensor.shape", f"has {len(tensor.shape)} dimensions, at most {_MAX_DIMS}")
    if not tensor.shape or min(tensor.shape) <= 0:
        raise RequestInvalid("input.tensor.shape", f"must be positive dimensions, got {list(tensor.shape)}")
    expected = math.prod(tensor.shape) * itemsize
    if len(tensor.content) != expected:
        raise RequestInvalid("input.tensor.content", f"holds {len(tensor.content)} bytes; shape "
                             f"{list(tensor.shape)} of {tensor.dtype} needs {expected}")


def _check_outcome(request: selector_pb2.ReportOutcomeRequest) -> str:
    problem = request_id_problem(request.request_id)
    if problem:
        return problem
    if not request.model.name:
        return "model.name: required (the model the reply named)"
    if request.model.version < 0:
        return f"model.version: must be >= 0, got {request.model.version}"
    if not (math.isfinite(request.e2e_ms) and request.e2e_ms >= 0):
        return f"e2e_ms: must be a finite number of ms >= 0, got {request.e2e_ms!r}"
    if not (math.isfinite(request.sla_ms) and request.sla_ms >= 0):
        return f"sla_ms: must be a finite number of ms >= 0, got {request.sla_ms!r}"
    if request.HasField("true_label") and request.true_label < 0:
        return f"true_label: must be >= 0, got {request.true_label}"
    return ""
