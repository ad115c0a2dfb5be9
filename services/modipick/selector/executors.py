"""The Executor replicas behind one Selector: which one runs a request, what happens when it fails.

`--executor-target a:50052,b:50052` gives one replica per target (a `dns:///` target is one replica
whose channel balances its calls over every address the name resolves to; `unix:PATH` reaches an
Executor on the same host). Each execution is one unary `ExecutorService.Execute` call. The
Selector asks the pool for a replica once per request (`pick`), lets that replica's expected
queueing (`wait_ms`) into its decision, then runs the decided model there (`run`):

- the replica with the least expected queueing wins (ties rotate). The Selector counts its own
  calls in flight per replica and polls each replica's ListModels (queue depth, concurrency);
  polls double as health checks: a replica that does not answer is ejected, one that answers is
  back in the rotation (a replica that failed calls is ejected with exponential backoff; a call
  that ran out of time counts only when it had twice its model's expected time, see `_had_room`);
- the first attempt does not get the whole budget when a retry could still fit: it leaves
  `reserve = max(fastest model + retry overhead, reserve_share * budget)` for a second attempt,
  so a hung Executor costs a retry, not the request;
- a failed attempt is retried while the budget allows (each attempt's deadline is what is left,
  never more): a replica failure (unavailable, a cut deadline, overload, model not there) on
  another replica with the same model if it fits, else with the fastest model; a model failure
  with the fastest other model. Invalid input, cancellation and refusals are final. When nothing
  fits any more, the failure names every attempt.

gRPC statuses become `Failure`s here, at the call to the Executor, and nowhere else in the pool.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import grpc
import structlog

from modipick.core import Candidate
from modipick.runtime.channels import DEFAULT_MAX_MESSAGE_BYTES, aio_channel
from modipick.runtime.tls import TlsConfig
from modipick.selector.execution import EJECTING, REPLICA_FAILURES, Execution, ExecutionFailed, Failure
from modipick.v1 import common_pb2, executor_pb2, executor_pb2_grpc

log = structlog.get_logger("modipick.selector.executors")

_FAILURE_OF = {
    grpc.StatusCode.INVALID_ARGUMENT: Failure.INVALID_INPUT,
    grpc.StatusCode.CANCELLED: Failure.CANCELLED,
    grpc.StatusCode.DEADLINE_EXCEEDED: Failure.TIMED_OUT,
    grpc.StatusCode.UNAVAILABLE: Failure.UNAVAILABLE,
    grpc.StatusCode.RESOURCE_EXHAUSTED: Failure.OVERLOADED,
    grpc.StatusCode.NOT_FOUND: Failure.MODEL_MISSING,
    grpc.StatusCode.FAILED_PRECONDITION: Failure.MODEL_MISSING,
    grpc.StatusCode.INTERNAL: Failure.MODEL_FAILED,
    grpc.StatusCode.UNKNOWN: Failure.MODEL_FAILED,
    grpc.StatusCode.DATA_LOSS: Failure.MODEL_FAILED,
}


def split_targets(text: str) -> list[str]:
    targets = [t.strip() for t in text.split(",") if t.strip()]
    if not targets:
        raise ValueError("at least one Executor target is needed")
    return targets


@dataclass(frozen=True, slots=True)
class PoolSettings:
    max_attempts: int = 3
    reserve_share: float = 0.25      # of the budget kept back from the first attempt for a retry
    retry_overhead_ms: float = 10.0  # a retry's round trip on top of the model's expected time
    eject_base_s: float = 0.5
    eject_max_s: float = 15.0
    poll_s: float = 0.2              # ListModels: queue depth and liveness of every replica
    poll_timeout_s: float = 0.5
    service_alpha: float = 0.2       # EWMA weight of a reply's execution time
    answer_margin_ms: float = 3.0    # the last attempt ends this early: the Selector's answer, not the
                                     # caller's own timer, reports what ran out


@dataclass
class Replica:
    target: str
    channel: grpc.aio.Channel
    stub: executor_pb2_grpc.ExecutorServiceStub
    in_flight: int = 0               # this Selector's calls not answered yet
    reported_depth: int = 0          # the Executor's running + waiting, all callers (ListModels)
    reported_at: float = -math.inf
    slots: int = 1                   # the Executor's max concurrency (ListModels)
    service_ms: float | None = None  # EWMA of execution_ms in its replies
    failures: int = 0                # consecutive
    ejected_until: float = 0.0
    stats: dict[str, int] = field(default_factory=dict)

    def ejected(self, now: float) -> bool:
        return now < self.ejected_until

    def expected_wait_ms(self, now: float, stale_s: float, default_service_ms: Callable[[], float]) -> float:
        """Queueing a new request should expect here: the requests ahead of it beyond the free
        slots, served `slots` at a time (`default_service_ms()` before a reply gave a service time)."""
        depth = self.reported_depth if now - self.reported_at <= stale_s else 0
        ahead = max(self.in_flight, depth)
        beyond = ahead - self.slots + 1
        if beyond <= 0:
            return 0.0
        service = self.service_ms if self.service_ms is not None else default_service_ms()
        return beyond * service / max(1, self.slots)


class _ModelTable:
    """What the pool reads of one candidates tuple on every request, computed once per tuple: the
    fastest mean, each model's mean, and the ModelRef an Execute call names it by."""

    __slots__ = ("candidates", "fastest_ms", "mean_ms", "_refs")

    def __init__(self, candidates: Sequence[Candidate]) -> None:
        self.candidates = candidates
        self.fastest_ms = min((c.mean_ms for c in candidates), default=None)
        self.mean_ms: dict[str, float] = {}
        for c in candidates:
            self.mean_ms.setdefault(c.key, c.mean_ms)  # the first of a key, as a scan would find
        self._refs: dict[tuple[str, int], common_pb2.ModelRef] = {}

    def ref(self, model: Candidate) -> common_pb2.ModelRef:
        """The ModelRef of `model` (copied into each request, never changed)."""
        key = (model.name, model.version)
        ref = self._refs.get(key)
        if ref is None:
            ref = self._refs[key] = common_pb2.ModelRef(name=model.name, version=model.version)
        return ref


class _AttemptFailed(Exception):
    def __init__(self, failure: Failure, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.failure, self.code, self.details = failure, code, details


class _Expiry:
    """Cancels a call when its time is up, and remembers that it did."""

    __slots__ = ("_call", "fired")

    def __init__(self, call: grpc.aio.Call) -> None:
        self._call = call
        self.fired = False

    def __call__(self) -> None:
        if not self._call.done():
            self.fired = True
            self._call.cancel()


class ExecutorPool:
    def __init__(self, targets: Sequence[str], candidates: Callable[[], Sequence[Candidate]], *,
                 tls: TlsConfig | None = None, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                 interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
                 settings: PoolSettings = PoolSettings(), clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._stale_s = 3 * settings.poll_s + settings.poll_timeout_s  # an older reported depth is not used
        self._candidates = candidates
        self._clock = clock
        self.replicas = [self._replica(t, aio_channel(t, tls=tls, max_message_bytes=max_message_bytes,
                                                      interceptors=interceptors))
                         for t in targets]
        self._turn = itertools.count()
        self._table = _ModelTable(())
        self._poller: asyncio.Task | None = None
        self.retries = 0
        self.rescued = 0  # requests served by a retry

    @staticmethod
    def _replica(target: str, channel: grpc.aio.Channel) -> Replica:
        return Replica(target, channel, executor_pb2_grpc.ExecutorServiceStub(channel))

    def _models(self) -> "_ModelTable":
        """The current candidates' table, rebuilt only when the profile cache hands out new ones."""
        candidates = self._candidates()
        table = self._table
        if table.candidates is not candidates:
            table = self._table = _ModelTable(candidates)
        return table

    # -- choosing -----------------------------------------------------------------------------------
    def _default_service_ms(self) -> float:
        fastest = self._models().fastest_ms
        return 1.0 if fastest is None else fastest

    def wait_ms(self, replica: Replica, now: float | None = None) -> float:
        """The queueing a request sent to `replica` now should expect (0 when it is idle)."""
        now = self._clock() if now is None else now
        return replica.expected_wait_ms(now, self._stale_s, self._default_service_ms)

    def pick(self, exclude: Sequence[Replica] = ()) -> Replica:
        """The replica to send the next request to: the least expected queueing among the healthy."""
        if len(self.replicas) == 1:  # ejected or tried, it is still the only one (as below)
            return self.replicas[0]
        now = self._clock()
        pool = [r for r in self.replicas if r not in exclude] or list(self.replicas)
        healthy = [r for r in pool if not r.ejected(now)]
        if not healthy:  # everything ejected: the one back soonest, rather than refusing
            return min(pool, key=lambda r: r.ejected_until)
        if len(healthy) == 1:
            return healthy[0]
        turn = next(self._turn)
        order = {id(r): (i - turn) % len(healthy) for i, r in enumerate(healthy)}
        return min(healthy, key=lambda r: (self.wait_ms(r, now), order[id(r)]))

    def expected_queue_ms(self) -> float:
        """What the least loaded healthy replica should make the next request wait (0 when idle)."""
        now = self._clock()
        if len(self.replicas) == 1:
            return self.wait_ms(self.replicas[0], now)
        healthy = [r for r in self.replicas if not r.ejected(now)] or self.replicas
        return min(self.wait_ms(r, now) for r in healthy)

    # -- running --------------------------------------------------------------------------------------
    async def run(self, model: Candidate, input: common_pb2.Input, within_s: float, *, request_id: str = "",
                  replica: Replica | None = None, metadata=None) -> Execution:
        """Run `model` on `input` within `within_s` seconds: on `replica` (the one the decision was
        made for; else `pick()`), then retries within what is left. Raises ExecutionFailed."""
        s = self.settings
        margin_s = s.answer_margin_ms / 1000.0
        deadline = self._clock() + within_s - (margin_s if margin_s < within_s * 0.05 else within_s * 0.05)
        tried: list[Replica] = []
        failed_models: set[str] = set()
        notes: list[str] = []
        for number in range(1, s.max_attempts + 1):
            left = deadline - self._clock()
            if number > 1 or replica is None:
                replica = self.pick(tried)
            table = self._models()
            timeout = left
            if number == 1 and number < s.max_attempts:
                timeout = self._first_cut(model, left, replica, table)
            replica.in_flight += 1
            try:
                reply = await self._execute(replica, table.ref(model), input, max(timeout, 0.0), request_id, metadata)
            except _AttemptFailed as exc:
                failure = exc.failure
                cut = timeout < left - 1e-3
                notes.append(f"{model.key} on {replica.target}: {exc.code.name}"
                             + (f" after {timeout * 1000:.0f} ms" if failure is Failure.TIMED_OUT else
                                f" ({exc.details})" if exc.details else ""))
                self._failed(replica, failure, exc.details,
                             counts=failure is not Failure.TIMED_OUT or self._had_room(model, timeout, replica))
                tried.append(replica)
                retry = None if number == s.max_attempts else self._next_model(model, failure, cut, deadline, tried,
                                                                              failed_models)
                if retry is None:
                    why = "" if number == 1 else (self._why_stopped(deadline, failure) if number < s.max_attempts
                                                  else f"; {s.max_attempts} attempts made")
                    raise ExecutionFailed(failure, "; ".join(notes) + why, attempts=number) from None
                self.retries += 1
                log.info("retrying on another executor", failed=notes[-1], model=retry.key,
                         left_ms=round((deadline - self._clock()) * 1000, 1))
                model = retry
                continue
            finally:
                replica.in_flight -= 1
            self._succeeded(replica, reply)
            if number > 1:
                self.rescued += 1
            ran = reply.model
            return Execution(ran if ran.name else common_pb2.ModelRef(name=model.name, version=model.version),
                             reply.prediction, reply.queue_ms, reply.execution_ms, replica.target, number)
        raise AssertionError("unreachable")  # every attempt returns, retries or raises

    async def _execute(self, replica: Replica, model: common_pb2.ModelRef, input: common_pb2.Input, timeout_s: float,
                       request_id: str, metadata) -> executor_pb2.ExecuteResponse:
        request = executor_pb2.ExecuteRequest(request_id=request_id, input=input, model=model)
        call = replica.stub.Execute(request, timeout=timeout_s, metadata=metadata)
        # The call carries its deadline to the Executor; this loop's own timer also ends it on time:
        # gRPC's deadline reaches the loop through its poller thread, a few ms late on a busy machine,
        # and the Selector must answer before its caller's own deadline does.
        expired = _Expiry(call)
        timer = asyncio.get_running_loop().call_later(timeout_s, expired)
        try:
            return await call
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            raise _AttemptFailed(_FAILURE_OF.get(code, Failure.REFUSED), code, exc.details() or "") from None
        except asyncio.CancelledError:
            if not expired.fired:
                raise  # the Selector's caller gave up
            raise _AttemptFailed(Failure.TIMED_OUT, grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded") from None
        finally:
            timer.cancel()

    def _had_room(self, model: Candidate, timeout_s: float, replica: Replica) -> bool:
        """Whether an attempt that ran out of time says something about its replica: it had at least
        twice what its model was expected to take there (mean and queueing) plus a retry's overhead.
        A deadline cut close is the budget's miss; ejecting the replica for it would move traffic
        away for nothing (with one replica the demo's tightest SLAs ejected it 39 times in 160 requests)."""
        expected = self._models().mean_ms.get(model.key)
        if expected is None:
            return True
        return timeout_s * 1000.0 >= 2.0 * (expected + self.wait_ms(replica)) + self.settings.retry_overhead_ms

    def _first_cut(self, model: Candidate, left: float, replica: Replica, table: _ModelTable) -> float:
        """The first attempt's deadline: the budget minus the reserve for a retry, when the chosen
        model still fits what remains; else the whole budget (no retry after a timeout)."""
        s = self.settings
        fastest = table.fastest_ms
        if fastest is None:
            return left
        reserve_ms = max(fastest + s.retry_overhead_ms, s.reserve_share * left * 1000.0)
        chosen_ms = table.mean_ms.get(model.key, fastest)
        first_ms = left * 1000.0 - reserve_ms
        if first_ms >= chosen_ms + self.wait_ms(replica) + s.retry_overhead_ms:
            return first_ms / 1000.0
        return left

    def _next_model(self, model: Candidate, failure: Failure, cut: bool, deadline: float, tried: list[Replica],
                    failed_models: set[str]) -> Candidate | None:
        """The model to try next (the same one on another replica, or the fastest), or None."""
        if failure is Failure.TIMED_OUT and not cut:
            return None  # the whole budget is spent
        if failure is Failure.MODEL_FAILED:
            failed_models.add(model.key)
        elif failure not in REPLICA_FAILURES:
            return None  # invalid input, cancelled, refused: a retry cannot help
        now = self._clock()
        left_ms = (deadline - now) * 1000.0
        others = [r for r in self.replicas if r not in tried and not r.ejected(now)]
        if failure is Failure.OVERLOADED and not others:
            return None  # shed: queueing behind the same full replica would only miss the deadline
        wait = self.wait_ms(self.pick(tried), now) + self.settings.retry_overhead_ms / 2
        candidates = [c for c in self._candidates() if c.key not in failed_models]
        same = next((c for c in candidates if c.key == model.key), None)
        if failure in REPLICA_FAILURES and others and same is not None and same.mean_ms + wait <= left_ms:
            return same
        fastest = min(candidates, key=lambda c: c.mean_ms, default=None)
        if fastest is None or fastest.mean_ms + wait > left_ms:
            return None
        return fastest

    def _why_stopped(self, deadline: float, failure: Failure) -> str:
        left_ms = (deadline - self._clock()) * 1000.0
        if failure is Failure.TIMED_OUT or left_ms <= 0:
            return "; no budget left for another attempt"
        return (f"; no retry fits the {left_ms:.0f} ms left"
                if failure in REPLICA_FAILURES or failure is Failure.MODEL_FAILED else "")

    # -- replica health -----------------------------------------------------------------------------
    def _failed(self, replica: Replica, failure: Failure, details: str, *, counts: bool = True) -> None:
        """`counts`: whether the failure is the replica's (see `_had_room`)."""
        replica.stats[failure.name] = replica.stats.get(failure.name, 0) + 1
        if failure not in EJECTING or not counts:
            return
        if replica.ejected(self._clock()):
            return  # the same outage (concurrent calls failing together): one failure
        replica.failures += 1
        backoff = min(self.settings.eject_max_s, self.settings.eject_base_s * 2 ** (replica.failures - 1))
        replica.ejected_until = self._clock() + backoff
        if replica.failures == 1 or replica.failures % 10 == 0:
            log.warning("executor replica ejected", target=replica.target, failure=failure.value,
                        failures=replica.failures, for_s=backoff, details=details[:200])

    def _succeeded(self, replica: Replica, reply: executor_pb2.ExecuteResponse) -> None:
        replica.stats["OK"] = replica.stats.get("OK", 0) + 1
        if replica.failures:
            log.info("executor replica healthy again", target=replica.target)
        replica.failures = 0
        replica.ejected_until = 0.0
        a = self.settings.service_alpha
        ms = reply.execution_ms
        if math.isfinite(ms) and ms >= 0:
            replica.service_ms = ms if replica.service_ms is None else replica.service_ms + a * (ms - replica.service_ms)

    async def poll_once(self) -> None:
        await asyncio.gather(*(self._poll(r) for r in self.replicas))

    async def _poll(self, replica: Replica) -> None:
        try:
            reply = await replica.stub.ListModels(executor_pb2.ListModelsRequest(),
                                                  timeout=self.settings.poll_timeout_s)
        except grpc.aio.AioRpcError as exc:
            failure = _FAILURE_OF.get(exc.code(), Failure.REFUSED)
            if failure in EJECTING and not replica.ejected(self._clock()):
                self._failed(replica, failure, f"ListModels: {exc.details()}")
            return
        replica.reported_at = self._clock()
        replica.reported_depth = max((m.queue_depth for m in reply.models), default=0)
        replica.slots = max((m.max_concurrency for m in reply.models), default=0) or replica.slots
        if replica.failures:
            log.info("executor replica answers again", target=replica.target)
            replica.failures = 0
            replica.ejected_until = 0.0

    def start(self) -> None:
        if self._poller is None:
            self._poller = asyncio.create_task(self._poll_loop(), name="executor-pool-poll")

    async def _poll_loop(self) -> None:
        while True:
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # polling must never stop for good
                log.exception("executor poll failed")
            await asyncio.sleep(self.settings.poll_s)

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            try:
                await self._poller
            except asyncio.CancelledError:
                pass
            self._poller = None
        for replica in self.replicas:
            await replica.channel.close()
