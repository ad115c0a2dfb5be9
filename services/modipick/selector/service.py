"""SelectorService: each Infer decides (budget, the replica it will run on, the policy's choice on the
cached profiles with that replica's queueing added), executes (the Executor pool, under what is left
of the budget) and responds (prediction, provenance, timings). gRPC statuses are this module's
edge: requests arrive as messages, failures leave as statuses, and nothing below speaks gRPC's codes."""

from __future__ import annotations

import collections
import math
import time
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import grpc
import structlog

from modipick.core import Candidate, Decision, Reason
from modipick.core.input_sizes import candidates_for_input, image_input_size, square_size
from modipick.core.policies import Rng, runs_on_device
from modipick.runtime.metadata import REQUEST_ID_KEY, request_id_problem
from modipick.runtime.rpc_interceptor import call_request_id
from modipick.runtime.status_details import abort_with_details, execution_reason
from modipick.selector.metrics import SelectorMetrics
from modipick.runtime.tracing import annotate, tracing_enabled
from modipick.selector.budget import (Budgeter, BudgetRules, RequestBudget, RequestInvalid, ServingOverhead,
                                      deadline_slack_ms, uses_return_leg)
from modipick.selector.cache import ProfileCache
from modipick.selector.client_legs import PartitionedLegBook, forwards_legs
from modipick.selector.execution import Execution, ExecutionFailed, Failure
from modipick.selector.executors import Replica
from modipick.selector.outcomes import ImplausibleReport, OutcomeForwarder, OutcomeLearner, leg_message
from modipick.selector.policies import PolicyBook
from modipick.selector.provenance import Provenance
from modipick.selector.report_limits import ReportLimits, ReportRateLimiter
from modipick.selector.tickets import TicketSigner, outcome_ticket, served_from_ticket, ticket_problem
from modipick.v1 import common_pb2, errors_pb2, profiler_pb2, selector_pb2, selector_pb2_grpc
from modipick.v1.contract import REASONS_BY_NAME

log = structlog.get_logger("modipick.selector")

_REASONS = {reason: REASONS_BY_NAME[reason.value] for reason in Reason if reason.value in REASONS_BY_NAME}
_REASON_LABELS = {reason: reason.value for reason in Reason}  # (an enum's .value is a Python-level property)
_TENSOR_ITEMSIZE = {"float32": 4, "uint8": 1}
_MAX_DIMS = 8
MIN_QUEUE_SHIFT_MS = 0.05  # expected queueing below this leaves the profiles as they are
# What the Selector answers when the execution failed, by how it failed.
_STATUS = {
    Failure.INVALID_INPUT: grpc.StatusCode.INVALID_ARGUMENT,
    Failure.OVERLOADED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Failure.TIMED_OUT: grpc.StatusCode.DEADLINE_EXCEEDED,
    Failure.CANCELLED: grpc.StatusCode.CANCELLED,
    Failure.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    Failure.MODEL_MISSING: grpc.StatusCode.UNAVAILABLE,
    Failure.MODEL_FAILED: grpc.StatusCode.INTERNAL,
    Failure.REFUSED: grpc.StatusCode.INTERNAL,
}


class Executors(Protocol):
    """The Executor replicas (modipick.selector.executors.ExecutorPool)."""

    def pick(self) -> Replica: ...

    def wait_ms(self, replica: Replica) -> float: ...

    async def run(self, model: Candidate, input: common_pb2.Input, within_s: float, *, request_id: str = "",
                  replica: Replica | None = None, metadata=None) -> Execution: ...


@dataclass(slots=True)  # never changed once made; frozen would triple its cost per request
class Plan:
    """What the decision made of one request."""

    made: RequestBudget
    decision: Decision
    replica: Replica
    policy_label: str
    budget_ms: float  # made.budget.execution_ms, read several times per request


class SelectorService(selector_pb2_grpc.SelectorServiceServicer):
    def __init__(self, cache: ProfileCache, executors: Executors, policies: PolicyBook, outcomes: OutcomeForwarder,
                 *, rng_for: Callable[[str], Rng], rules: BudgetRules = BudgetRules(),
                 overhead: ServingOverhead | None = None, wall_ns: Callable[[], int] = time.time_ns,
                 perf: Callable[[], float] = time.perf_counter, metrics: SelectorMetrics | None = None,
                 budgeter: Budgeter | None = None, learner: OutcomeLearner | None = None,
                 signer: TicketSigner | None = None, report_limiter: ReportRateLimiter | None = None) -> None:
        self.metrics = metrics if metrics is not None else SelectorMetrics()
        self._cache = cache
        self._executors = executors
        # the Executor reads the request id from the message; a metadata copy (~25 us a call) and
        # span attributes serve tracing only
        self._traced = tracing_enabled()
        self._policies = policies
        self._outcomes = outcomes
        self._rng_for = rng_for
        self.budgeter = budgeter or Budgeter(rules, overhead)
        self.overhead = self.budgeter.overhead
        # only a partitioned book loads a client's state before the decision: the others are not
        # handed a coroutine per request to do nothing
        returns = self.budgeter.returns
        self._prefetch_leg = returns.prefetch if type(returns) is PartitionedLegBook else None
        # not `learner or ...`: an OutcomeLearner that remembers nothing yet is falsy (it has a __len__)
        self.learner = learner if learner is not None else OutcomeLearner(self.budgeter.returns, self.budgeter.clocks)
        self._wall_ns = wall_ns
        self._perf = perf
        # outcome reports the forwarder refused (also its `dropped`); requests are counted by `metrics`
        self.provenance = Provenance(self.metrics.registry)
        # signed tickets (None: unsigned) and per-client report rates (docs/security.md)
        self.signer = signer
        self._ticket = signer.ticket if signer is not None else outcome_ticket
        self.report_limiter = report_limiter if report_limiter is not None else ReportRateLimiter(ReportLimits())
        self._labels: dict[str, str] = {}  # requested policy name (a live one, or "") -> its metrics label

    def _policy_label(self, requested: str) -> str:
        """metrics.policy_label of a policy name PolicyBook accepted (so the memo stays small)."""
        label = self._labels.get(requested)
        if label is None:
            label = self._labels[requested] = self.metrics.policy_label(requested, self._policies.default_name)
        return label

    # -- decide -----------------------------------------------------------------------------------
    def _decide(self, request, context: grpc.aio.ServicerContext, request_id: str, receive_ns: int) -> Plan:
        """`request`: an InferRequest or SelectRequest. The time left is read here, at the decision.
        The replica the request will run on is picked here, and the queueing expected there is added
        to every model's mean: a loaded Executor steers the choice to faster models (or to the
        device) instead of missing the SLA with an accurate one."""
        problem = request_id_problem(request.request_id)  # it travels on in gRPC metadata
        if problem:
            raise RequestInvalid("request_id", problem.partition(": ")[2])
        requested = request.policy
        policy = self._policies.get(requested)
        made = self.budgeter.make(
            sla_ms=request.sla_ms, receive_ns=receive_ns,
            send_time=request.client_send_time if request.HasField("client_send_time") else None,
            left_s=context.time_remaining(), slack_ms=deadline_slack_ms(context.invocation_metadata()),
            client_id=request.client_id, with_leg=uses_return_leg(policy))
        snapshot = self._cache.snapshot
        candidates = snapshot.candidates
        if not candidates:
            raise _NoModels(self._cache)
        if snapshot.sized and isinstance(request, selector_pb2.InferRequest):
            candidates = _taking_input(candidates, snapshot.input_sizes, request.input)
        replica = self._executors.pick()
        wait_ms = self._executors.wait_ms(replica)
        budget = made.budget
        decision = policy.choose(_with_queueing(candidates, wait_ms), budget, self._rng_for(request_id))
        return Plan(made, decision, replica, self._policy_label(requested), budget.execution_ms)

    # -- RPCs -------------------------------------------------------------------------------------
    async def Infer(self, request: selector_pb2.InferRequest, context: grpc.aio.ServicerContext):
        started = self._perf()
        receive_ns = self._wall_ns()
        rid = call_request_id(request, context)  # bound for the logs by the RPC interceptor
        try:
            _check_input(request)
            if self._prefetch_leg is not None:
                await self._prefetch_leg(request.client_id)
            plan = self._decide(request, context, rid, receive_ns)
        except RequestInvalid as exc:
            self.metrics.request(self.metrics.policy_label(request.policy, self._policies.default_name), "error")
            await abort_with_details(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc),
                                     errors_pb2.ERROR_REASON_INVALID_REQUEST, metadata={"field": exc.field})
        except _NoModels as exc:
            self.metrics.request(self.metrics.policy_label(request.policy, self._policies.default_name), "error")
            await abort_with_details(context, grpc.StatusCode.UNAVAILABLE, str(exc),
                                     errors_pb2.ERROR_REASON_NO_ELIGIBLE_MODEL)
        decided = self._perf()
        self._note_selection(plan)
        # the execution may use the budget plus the overhead set aside for its round trip
        within_s = (plan.budget_ms + self.overhead.value_ms) / 1000.0 - (decided - started)
        left = context.time_remaining()
        if left is not None and left < within_s:
            within_s = left
        if runs_on_device(plan.decision, plan.made.budget) or within_s <= 0:
            return self._on_device(rid, plan, started, decided)
        try:
            execution = await self._executors.run(
                plan.decision.model, request.input, within_s, request_id=rid, replica=plan.replica,
                metadata=((REQUEST_ID_KEY, rid),) if self._traced else None)
        except ExecutionFailed as exc:
            self.metrics.request(plan.policy_label, "error")
            log.info("execution failed", model=plan.decision.model.key, failure=exc.failure.value,
                     details=exc.detail)
            code = _STATUS[exc.failure]
            # (overloaded: about one execution of the chosen model frees a slot)
            await abort_with_details(context, code, self._failure_message(exc, plan, within_s),
                                     execution_reason(code), metadata={"model": plan.decision.model.key},
                                     retry_after_s=max(plan.decision.model.mean_ms, 10.0) / 1000.0)
        return self._served(rid, plan, execution, started, decided)

    def _note_selection(self, plan: Plan) -> None:
        chosen, reason = plan.decision.model, _REASON_LABELS[plan.decision.reason]
        self.metrics.selection(chosen.name, reason, plan.budget_ms)
        if self._traced:
            annotate(**{"modipick.model": chosen.key, "modipick.reason": reason,
                        "modipick.budget_ms": plan.budget_ms, "modipick.policy": plan.policy_label})

    # -- respond ----------------------------------------------------------------------------------
    # The replies' timings are passed as dicts: a dict fills the reply's own Timings, a message is
    # copied into it.
    def _on_device(self, rid: str, plan: Plan, started: float, decided: float) -> selector_pb2.InferResponse:
        chosen = plan.decision.model
        self.metrics.request(plan.policy_label, "run_on_device")
        timings = {"upload_ms": plan.made.upload_ms, "budget_ms": plan.budget_ms,
                   "selection_ms": (decided - started) * 1000.0, "server_ms": (self._perf() - started) * 1000.0}
        log.debug("run on device", budget_ms=plan.budget_ms, fastest_ms=chosen.mean_ms)
        return self.provenance.stamp(selector_pb2.InferResponse(
            request_id=rid, disposition=selector_pb2.DISPOSITION_RUN_ON_DEVICE,
            model=common_pb2.ModelRef(name=chosen.name, version=chosen.version),
            reason=common_pb2.SELECTION_REASON_FALLBACK, timings=timings), plan.made, plan.decision)

    def _served(self, rid: str, plan: Plan, execution: Execution, started: float, decided: float
                ) -> selector_pb2.InferResponse:
        replied = self._perf()
        server_ms = (replied - started) * 1000.0
        queue_ms, execution_ms = execution.queue_ms, execution.execution_ms
        overhead = self.overhead
        overhead.observe(server_ms - queue_ms - execution_ms)
        served = self.learner.remember(rid, plan.made, after_decision_ms=(replied - decided) * 1000.0,
                                       server_ms=server_ms, policy=plan.policy_label)
        # met if upload + server time + the estimated return leg fit the SLA (what the budget spends)
        self.metrics.request(plan.policy_label, "served", sla_met=server_ms <= plan.budget_ms + overhead.value_ms)
        reply = selector_pb2.InferResponse(
            request_id=rid, disposition=selector_pb2.DISPOSITION_SERVED, model=execution.model,
            reason=_REASONS.get(plan.decision.reason, common_pb2.SELECTION_REASON_UNSPECIFIED),
            prediction=execution.prediction,
            timings={"upload_ms": plan.made.upload_ms, "budget_ms": plan.budget_ms,
                     "selection_ms": (decided - started) * 1000.0, "queue_ms": queue_ms,
                     "execution_ms": execution_ms, "server_ms": server_ms})
        if served is not None:
            self._ticket(rid, served, reply.ticket)
        return self.provenance.stamp(reply, plan.made, plan.decision)

    @staticmethod
    def _failure_message(exc: ExecutionFailed, plan: Plan, within_s: float) -> str:
        if exc.failure is Failure.TIMED_OUT:
            return (f"model {plan.decision.model.key} did not answer within the remaining budget of "
                    f"{within_s * 1000.0:.1f} ms (SLA {plan.made.budget.sla_ms:g} ms)")
        return f"executor: {exc.detail}"

    async def Select(self, request: selector_pb2.SelectRequest, context: grpc.aio.ServicerContext):
        receive_ns = self._wall_ns()
        rid = call_request_id(request, context)  # bound for the logs by the RPC interceptor
        try:
            if self._prefetch_leg is not None:
                await self._prefetch_leg(request.client_id)
            plan = self._decide(request, context, rid, receive_ns)
        except RequestInvalid as exc:
            await abort_with_details(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc),
                                     errors_pb2.ERROR_REASON_INVALID_REQUEST, metadata={"field": exc.field})
        except _NoModels as exc:
            await abort_with_details(context, grpc.StatusCode.UNAVAILABLE, str(exc),
                                     errors_pb2.ERROR_REASON_NO_ELIGIBLE_MODEL)
        budget, decision = plan.made.budget, plan.decision
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
            plan.made, decision)

    async def ReportOutcome(self, request: selector_pb2.ReportOutcomeRequest, context: grpc.aio.ServicerContext):
        rid = call_request_id(request, context)  # bound for the logs by the RPC interceptor
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
        # before learning forgets the request; a signed ticket's request id is the Selector's own
        policy = self.learner.policy_of(memory_key or (request.ticket.request_id if ticketed else ""))
        try:
            leg = self.learner.learn_sample(memory_key, request.e2e_ms,
                                            served_from_ticket(request.ticket) if ticketed else None,
                                            request.sla_ms)
        except ImplausibleReport as exc:
            await abort_with_details(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc),
                                     errors_pb2.ERROR_REASON_INVALID_REQUEST, metadata={"field": "e2e_ms"})
        self.metrics.outcome(request.e2e_ms, policy)
        report = profiler_pb2.RecordOutcomeRequest(
            request_id=rid, model=request.model, e2e_ms=request.e2e_ms, sla_ms=request.sla_ms,
            predicted_label=request.predicted_label, client_id=client_id,
            return_leg=leg_message(leg) if leg is not None and forwards_legs(self.budgeter.returns) else None)
        if request.HasField("true_label"):
            report.true_label = request.true_label
        self._outcomes.submit(report)  # a full queue drops it (counted by the forwarder)
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
    input = request.input
    kind = input.WhichOneof("kind")
    if kind is None:
        raise RequestInvalid("input", "missing: set input.encoded_image (PNG/JPEG bytes) or input.tensor")
    if kind == "encoded_image":
        if not input.encoded_image:
            raise RequestInvalid("input.encoded_image", "is empty")
        return
    tensor = input.tensor
    dtype = tensor.dtype
    itemsize = _TENSOR_ITEMSIZE.get(dtype)
    if itemsize is None:
        raise RequestInvalid("input.tensor.dtype", f"{dtype[:32]!r} is not one of {sorted(_TENSOR_ITEMSIZE)}")
    shape = tensor.shape
    dims = len(shape)
    if dims > _MAX_DIMS:  # (and the error message below stays short)
        raise RequestInvalid("input.tensor.shape", f"has {dims} dimensions, at most {_MAX_DIMS}")
    shape = shape[:]  # a list: iterating a repeated field costs several times more (and an IndexError)
    if not dims or min(shape) <= 0:
        raise RequestInvalid("input.tensor.shape", f"must be positive dimensions, got {list(shape)}")
    expected = math.prod(shape) * itemsize
    if len(tensor.content) != expected:
        raise RequestInvalid("input.tensor.content", f"holds {len(tensor.content)} bytes; shape "
                             f"{list(shape)} of {dtype} needs {expected}")


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


def _taking_input(candidates: Sequence[Candidate], sizes: Sequence[int], input: common_pb2.Input
                  ) -> Sequence[Candidate]:
    """The candidates that take this input's size (an image's from its header, a tensor's shape)."""
    if input.WhichOneof("kind") == "tensor":
        return candidates_for_input(candidates, sizes, square_size(input.tensor.shape), exact=True)
    return candidates_for_input(candidates, sizes, image_input_size(input.encoded_image))


def _with_queueing(candidates: Sequence[Candidate], wait_ms: float) -> Sequence[Candidate]:
    """Every model's mean with `wait_ms` of queueing added (the candidates themselves when ~idle)."""
    if not wait_ms > MIN_QUEUE_SHIFT_MS:
        return candidates
    return tuple(c._replace(mean_ms=c.mean_ms + wait_ms) for c in candidates)
