"""The Executor replicas behind one Selector: which one runs a request, what happens when it fails.

`--executor-target a:50052,b:50052` gives one replica per address (a `dns:///` target is one
replica whose channel balances over every address the name resolves to). `ExecutorPool.Execute`
has the stub's signature, so the Selector calls it like a single Executor; inside:

- the replica with the least expected queueing wins (ties rotate). The Selector counts its own
  calls in flight per replica and polls each replica's ListModels (queue depth, concurrency);
  polls double as health checks: a replica that does not answer is ejected, one that answers is
  back in the rotation (a replica that failed calls is ejected with exponential backoff; a call
  that ran out of time counts only when it had twice its model's expected time, see `_had_room`);
- the first attempt does not get the whole budget when a retry could still fit: it leaves
  `reserve = max(fastest model + retry overhead, reserve_share * budget)` for a second attempt,
  so a hung Executor costs a retry, not the request;
- a failed attempt is retried while the budget allows (each attempt's deadline is what is left,
  never more): a replica failure (UNAVAILABLE, a cut deadline, overload, model not there) on
  another replica with the same model if it fits, else with the fastest model; a model failure
  (INTERNAL) with the fastest other model. Invalid input, cancellation and auth errors are final.
  When nothing fits any more, the error names every attempt.
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
from modipick.selector.execute_transport import ExecuteTransport, StreamExecute, UnaryExecute, transport_for
from modipick.selector.socket_transport import SocketExecute
from modipick.v1 import common_pb2, executor_pb2, executor_pb2_grpc

log = structlog.get_logger("modipick.selector.executors")

Code = grpc.StatusCode
_REPLICA_FAILURES = frozenset({Code.UNAVAILABLE, Code.DEADLINE_EXCEEDED, Code.RESOURCE_EXHAUSTED,
                               Code.NOT_FOUND, Code.FAILED_PRECONDITION})
_MODEL_FAILURES = frozenset({Code.INTERNAL, Code.UNKNOWN, Code.DATA_LOSS})
_EJECTING = frozenset({Code.UNAVAILABLE, Code.DEADLINE_EXCEEDED})


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
    transport: str = "auto"          # unary | stream | auto (see execute_transport.transport_for)
    socket_path: str = ""            # the co-located Executor's --execute-socket (one target only)


@dataclass
class Replica:
    target: str
    channel: grpc.aio.Channel
    stub: executor_pb2_grpc.ExecutorServiceStub
    execute: ExecuteTransport
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


class AttemptsFailed(grpc.aio.AioRpcError):
    """The last attempt's status, with every attempt in the details."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details)


class ExecutorPool:
    def __init__(self, targets: Sequence[str], candidates: Callable[[], Sequence[Candidate]], *,
                 tls: TlsConfig | None = None, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                 interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
                 settings: PoolSettings = PoolSettings(), clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._candidates = candidates
        self._clock = clock
        self._max_message_bytes = max_message_bytes
        if settings.socket_path and len(targets) != 1:
            raise ValueError(f"an Executor socket serves one co-located Executor; got {len(targets)} targets "
                             f"({', '.join(targets)})")
        kinds = [transport_for(settings.transport, t, traced=bool(interceptors), socket=bool(settings.socket_path))
                 for t in targets]  # may refuse
        self.replicas = [self._replica(t, aio_channel(t, tls=tls, max_message_bytes=max_message_bytes,
                                                      interceptors=interceptors), kind)
                         for t, kind in zip(targets, kinds)]
        self._turn = itertools.count()
        self._poller: asyncio.Task | None = None
        self.retries = 0
        self.rescued = 0  # requests served by a retry

    def _replica(self, target: str, channel: grpc.aio.Channel, transport: str) -> Replica:
        stub = executor_pb2_grpc.ExecutorServiceStub(channel)
        if transport == "socket":
            execute = SocketExecute(stub, self.settings.socket_path, target=target,
                                    max_message_bytes=self._max_message_bytes)
        elif transport == "stream":
            execute = StreamExecute(stub, target=target, max_message_bytes=self._max_message_bytes)
        else:
            execute = UnaryExecute(stub)
        return Replica(target, channel, stub, execute)

    # -- choosing -----------------------------------------------------------------------------------
    def _default_service_ms(self) -> float:
        return min((c.mean_ms for c in self._candidates()), default=1.0)

    def wait_ms(self, replica: Replica, now: float | None = None) -> float:
        now = self._clock() if now is None else now
        return replica.expected_wait_ms(now, 3 * self.settings.poll_s + self.settings.poll_timeout_s,
                                        self._default_service_ms)

    def choose(self, exclude: Sequence[Replica] = ()) -> Replica:
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
        """What the replica the next request goes to should make it wait (0 when idle)."""
        now = self._clock()
        if len(self.replicas) == 1:
            return self.wait_ms(self.replicas[0], now)
        healthy = [r for r in self.replicas if not r.ejected(now)] or self.replicas
        return min(self.wait_ms(r, now) for r in healthy)

    # -- the stub's Execute -------------------------------------------------------------------------
    async def Execute(self, request: executor_pb2.ExecuteRequest, timeout: float | None = None,
                      metadata=None) -> executor_pb2.ExecuteResponse:
        s = self.settings
        total = timeout if timeout is not None else 30.0
        deadline = self._clock() + total - min(s.answer_margin_ms / 1000.0, total * 0.05)
        attempt, tried, failed_models, notes = request, [], set(), []
        for number in range(1, s.max_attempts + 1):
            left = deadline - self._clock()
            replica = self.choose(tried)
            attempt_timeout = left
            if number < s.max_attempts:
                attempt_timeout = self._first_cut(attempt.model, left, replica) if number == 1 else left
            replica.in_flight += 1
            try:
                reply = await replica.execute(attempt, max(attempt_timeout, 0.0), metadata)
            except grpc.aio.AioRpcError as exc:
                code = exc.code()
                cut = attempt_timeout < left - 1e-3
                notes.append(f"{_key(attempt.model)} on {replica.target}: {code.name}"
                             + (f" after {attempt_timeout * 1000:.0f} ms" if code == Code.DEADLINE_EXCEEDED else
                                f" ({exc.details()})" if exc.details() else ""))
                self._failed(replica, code, exc.details() or "",
                             counts=code != Code.DEADLINE_EXCEEDED or self._had_room(attempt.model, attempt_timeout,
                                                                                    replica))
                tried.append(replica)
                nxt = None if number == s.max_attempts else self._next_attempt(attempt, code, cut, deadline, tried,
                                                                                failed_models)
                if nxt is None:
                    if number == 1:
                        raise
                    why = self._why_stopped(deadline, code) if number < s.max_attempts else \
                        f"; {s.max_attempts} attempts made"
                    raise AttemptsFailed(code, "; ".join(notes) + why)
                self.retries += 1
                log.info("retrying on another executor", failed=notes[-1], model=_key(nxt.model),
                         left_ms=round((deadline - self._clock()) * 1000, 1))
                attempt = nxt
                continue
            finally:
                replica.in_flight -= 1
            self._succeeded(replica, reply)
            if number > 1:
                self.rescued += 1
            return reply
        raise AssertionError("unreachable")  # every attempt returns, retries or raises

    def _expected_ms(self, model: common_pb2.ModelRef, candidates: Sequence[Candidate]) -> float | None:
        name, version = model.name, model.version
        return next((c.mean_ms for c in candidates if c.name == name and c.version == version), None)

    def _had_room(self, model: common_pb2.ModelRef, timeout_s: float, replica: Replica) -> bool:
        """Whether an attempt that ran out of time says something about its replica: it had at least
        twice what its model was expected to take there (mean and queueing) plus a retry's overhead.
        A deadline cut close is the budget's miss; ejecting the replica for it would move traffic
        away for nothing (with one replica the demo's tightest SLAs ejected it 39 times in 160 requests)."""
        expected = self._expected_ms(model, self._candidates())
        if expected is None:
            return True
        return timeout_s * 1000.0 >= 2.0 * (expected + self.wait_ms(replica)) + self.settings.retry_overhead_ms

    def _first_cut(self, model: common_pb2.ModelRef, left: float, replica: Replica) -> float:
        """The first attempt's deadline: the budget minus the reserve for a retry, when the chosen
        model still fits what remains; else the whole budget (no retry after a timeout)."""
        s = self.settings
        candidates = self._candidates()
        if not candidates:
            return left
        fastest = min(c.mean_ms for c in candidates)
        reserve_ms = max(fastest + s.retry_overhead_ms, s.reserve_share * left * 1000.0)
        chosen_ms = self._expected_ms(model, candidates)
        chosen_ms = fastest if chosen_ms is None else chosen_ms
        first_ms = left * 1000.0 - reserve_ms
        if first_ms >= chosen_ms + self.wait_ms(replica) + s.retry_overhead_ms:
            return first_ms / 1000.0
        return left

    def _next_attempt(self, attempt: executor_pb2.ExecuteRequest, code: grpc.StatusCode, cut: bool,
                      deadline: float, tried: list[Replica], failed_models: set[str]
                      ) -> executor_pb2.ExecuteRequest | None:
        if code == Code.DEADLINE_EXCEEDED and not cut:
            return None  # the whole budget is spent
        if code in _MODEL_FAILURES:
            failed_models.add(_key(attempt.model))
        elif code not in _REPLICA_FAILURES:
            return None  # invalid input, cancelled, refused credentials: a retry cannot help
        now = self._clock()
        left_ms = (deadline - now) * 1000.0
        others = [r for r in self.replicas if r not in tried and not r.ejected(now)]
        if code == Code.RESOURCE_EXHAUSTED and not others:
            return None  # shed: queueing behind the same full replica would only miss the deadline
        target = self.choose(tried)
        wait = self.wait_ms(target, now) + self.settings.retry_overhead_ms / 2
        candidates = [c for c in self._candidates() if c.key not in failed_models]
        same = next((c for c in candidates if c.name == attempt.model.name and c.version == attempt.model.version),
                    None)
        if code in _REPLICA_FAILURES and others and same is not None and same.mean_ms + wait <= left_ms:
            return attempt
        fastest = min(candidates, key=lambda c: c.mean_ms, default=None)
        if fastest is None or fastest.mean_ms + wait > left_ms:
            return None
        retry = executor_pb2.ExecuteRequest()
        retry.CopyFrom(attempt)
        retry.model.CopyFrom(common_pb2.ModelRef(name=fastest.name, version=fastest.version))
        return retry

    def _why_stopped(self, deadline: float, code: grpc.StatusCode) -> str:
        left_ms = (deadline - self._clock()) * 1000.0
        if code == Code.DEADLINE_EXCEEDED or left_ms <= 0:
            return "; no budget left for another attempt"
        return f"; no retry fits the {left_ms:.0f} ms left" if code in _REPLICA_FAILURES | _MODEL_FAILURES else ""

    # -- replica health -----------------------------------------------------------------------------
    def _failed(self, replica: Replica, code: grpc.StatusCode, details: str, *, counts: bool = True) -> None:
        """`counts`: whether the failure is the replica's (see `_had_room`)."""
        replica.stats[code.name] = replica.stats.get(code.name, 0) + 1
        if code not in _EJECTING or not counts:
            return
        if replica.ejected(self._clock()):
            return  # the same outage (a broken stream fails every call on it at once): one failure
        replica.failures += 1
        backoff = min(self.settings.eject_max_s, self.settings.eject_base_s * 2 ** (replica.failures - 1))
        replica.ejected_until = self._clock() + backoff
        if replica.failures == 1 or replica.failures % 10 == 0:
            log.warning("executor replica ejected", target=replica.target, code=code.name,
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
            if exc.code() in _EJECTING and not replica.ejected(self._clock()):
                self._failed(replica, exc.code(), f"ListModels: {exc.details()}")
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
            await replica.execute.close()
            await replica.channel.close()


def _key(ref: common_pb2.ModelRef) -> str:
    return f"{ref.name}:{ref.version}"
