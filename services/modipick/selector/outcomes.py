"""ReportOutcome is answered at once; the report travels on to the Profiler's RecordOutcome from
a bounded queue in the background (full queue or a failed send: dropped and counted).

Before that, the Selector learns from it (`OutcomeLearner`): per served request it remembered
(bounded, with a TTL) the upload U, when it decided and how long it took from there to the reply,
so the reported end-to-end time gives the return leg

    R = e2e_ms - U - server time after the decision        (clamped >= 0)

for the client's return-leg model, and, for requests budgeted from the send time, a clock-offset
sample from the reports (modipick.selector.clocks). The leg also travels on with the report
(`RecordOutcomeRequest.return_leg`): the Profiler appends it to the store's stream, from which
replicas that share return legs learn (modipick.selector.leg_stream).

What a replica remembers is also handed to the client as the reply's outcome ticket, which the
report echoes (modipick.selector.tickets): then any replica derives the leg, not only the one
that served the request.

A report whose leg cannot belong to its request is refused (`ImplausibleReport`, INVALID_ARGUMENT at
the edge) and counted, never learned: a leg longer than `max_leg_slas` times the SLA the request was
served under (a phone that far past its SLA has long used its own model; such a number is a unit
mistake or a forgery), or longer than an hour (the Profiler would refuse it too, and no estimate's
basis may exceed what a ticket carries).
"""

from __future__ import annotations

import asyncio
import collections
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import grpc
import structlog

from modipick.runtime.metadata import with_request_id
from modipick.runtime.tasks import cancel_and_wait
from modipick.selector.clocks import ClockOffsets
from modipick.stores.base import ReturnLegSample
from modipick.v1 import profiler_pb2, profiler_pb2_grpc

if TYPE_CHECKING:
    from modipick.selector.budget import RequestBudget
    from modipick.selector.returnlegs import ReturnLegBook

log = structlog.get_logger("modipick.selector.outcomes")

MAX_RETURN_LEG_MS = 3_600_000.0  # modipick.profiler.service.MAX_OBSERVATION_MS
DEFAULT_MAX_LEG_SLAS = 10.0


class ImplausibleReport(ValueError):
    """The report's return leg cannot be its request's; the message names why."""


class OutcomeForwarder:
    def __init__(self, stub: profiler_pb2_grpc.ProfilerServiceStub | None, *, capacity: int = 10_000,
                 timeout_s: float = 2.0) -> None:
        self._stub = stub
        self._queue: asyncio.Queue[profiler_pb2.RecordOutcomeRequest] = asyncio.Queue(maxsize=capacity)
        self._timeout_s = timeout_s
        self._task: asyncio.Task | None = None
        self.forwarded = 0
        self.dropped = 0

    def submit(self, report: profiler_pb2.RecordOutcomeRequest) -> bool:
        if self._stub is None:
            self.dropped += 1
            return False
        try:
            self._queue.put_nowait(report)
        except asyncio.QueueFull:
            self.dropped += 1
            return False
        return True

    def start(self) -> None:
        if self._stub is not None and self._task is None:
            self._task = asyncio.create_task(self._run(), name="outcome-forwarder")

    async def drain(self, timeout_s: float = 2.0) -> None:
        """Wait (bounded) until queued reports went out: shutdown and tests."""
        if self._task is None:
            return
        try:
            await asyncio.wait_for(self._queue.join(), timeout_s)
        except asyncio.TimeoutError:
            pass

    async def stop(self, timeout_s: float = 2.0) -> None:
        await self.drain(timeout_s)
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        assert self._stub is not None
        while True:
            report = await self._queue.get()
            try:
                await self._stub.RecordOutcome(report, timeout=self._timeout_s,
                                               metadata=with_request_id(report.request_id))
                self.forwarded += 1
            except grpc.aio.AioRpcError as exc:
                self.dropped += 1
                log.warning("outcome not forwarded", request_id=report.request_id,
                            code=exc.code().name, details=exc.details())
            finally:
                self._queue.task_done()


@dataclass(slots=True)  # never changed once made; frozen would triple its cost per request
class Served:
    """What a served request leaves behind for its outcome report."""

    client_id: str
    upload_ms: float
    basis_ms: float | None
    leg_owner: str
    after_decision_ms: float      # from the decision to the reply being sent
    server_ms: float              # from receipt to the reply
    elapsed_ms: float | None      # receive - send stamp (send-time budgets' clock-offset samples)
    source: str
    expires: float
    sla_ms: float = 0.0           # the SLA it was served under (0: not known)
    policy: str = ""              # the policy label it was counted under ("": not known, as from a ticket)


class OutcomeLearner:
    def __init__(self, returns: "ReturnLegBook | None", clocks: ClockOffsets, *, capacity: int = 100_000,
                 min_ttl_s: float = 10.0, ttl_slas: float = 10.0, max_leg_slas: float = DEFAULT_MAX_LEG_SLAS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity!r}")
        if not max_leg_slas > 0:
            raise ValueError(f"max_leg_slas must be > 0, got {max_leg_slas!r}")
        self.max_leg_slas = max_leg_slas
        self.returns = returns
        self.clocks = clocks
        self.capacity = capacity
        self.min_ttl_s = min_ttl_s
        self.ttl_slas = ttl_slas
        self._clock = clock
        self._served: collections.OrderedDict[str, Served] = collections.OrderedDict()
        self.learned = 0
        self.from_tickets = 0  # of them, derived from the report's echoed ticket (not this replica's memory)
        self.unmatched = 0   # reports for requests not (or no longer) remembered, without a ticket
        self.implausible = 0  # reports refused: legs no request of theirs could have (ImplausibleReport)
        self.forgotten = 0   # remembered requests dropped unreported (TTL or capacity)

    def __len__(self) -> int:
        return len(self._served)

    def remember(self, request_id: str, request: "RequestBudget", *, after_decision_ms: float,
                 server_ms: float, policy: str = "") -> Served | None:
        """Remember a served request (None: it has no id); what is remembered goes into its ticket."""
        if not request_id:
            return None
        now = self._clock()
        ttl = max(self.min_ttl_s, self.ttl_slas * request.budget.sla_ms / 1000.0)
        leg = request.leg
        served = self._served[request_id] = Served(
            request.client_id, request.upload_ms, leg.basis_ms if leg is not None else None, request.leg_owner,
            after_decision_ms, server_ms, request.elapsed_ms, request.source, now + ttl, request.budget.sla_ms, policy)
        self._served.move_to_end(request_id)
        self._expire(now)
        return served

    def _expire(self, now: float) -> None:
        served = self._served
        while served and (len(served) > self.capacity or next(iter(served.values())).expires < now):
            served.popitem(last=False)
            self.forgotten += 1

    def policy_of(self, request_id: str) -> str:
        """The policy label a remembered request was served under ("": not remembered)."""
        entry = self._served.get(request_id) if request_id else None
        return entry.policy if entry is not None else ""

    def learn(self, request_id: str, e2e_ms: float) -> float | None:
        """The return leg this report shows (None: nothing remembered for it, or no e2e time)."""
        sample = self.learn_sample(request_id, e2e_ms)
        return None if sample is None else sample.return_ms

    def learn_sample(self, request_id: str, e2e_ms: float, echoed: Served | None = None,
                     sla_ms: float = 0.0) -> ReturnLegSample | None:
        """As `learn`, with everything another replica's model needs to learn the same leg.
        `echoed`: the report's (checked) ticket, used when this replica does not remember the request.
        `sla_ms`: the report's SLA, for a request whose served SLA is not known.
        Raises ImplausibleReport for a leg its request cannot have had."""
        entry = self._served.pop(request_id, None) if request_id else None
        if entry is not None and entry.expires < self._clock():
            entry = None
        ticketed = entry is None and echoed is not None
        if ticketed:
            entry = echoed
        if entry is None or not (math.isfinite(e2e_ms) and e2e_ms > 0):
            self.unmatched += 1
            return None
        back = e2e_ms - entry.upload_ms - entry.after_decision_ms
        back = back if back > 0.0 else 0.0
        problem = self._implausible(back, entry.sla_ms or sla_ms)
        if problem:
            self.implausible += 1
            raise ImplausibleReport(problem)
        if self.returns is not None:
            self.returns.observe(entry.client_id, entry.upload_ms, back, entry.basis_ms, entry.leg_owner)
        if entry.source == "send_time" and entry.elapsed_ms is not None:
            # symmetric legs on average: the upload is half of what the server did not spend
            self.clocks.observe(entry.client_id, entry.elapsed_ms - (e2e_ms - entry.server_ms) / 2.0, "reports")
        self.learned += 1
        self.from_tickets += ticketed
        log.debug("return leg learned", client_id=entry.client_id, upload_ms=round(entry.upload_ms, 2),
                  return_ms=round(back, 2))
        return ReturnLegSample(entry.client_id, entry.upload_ms, back, entry.basis_ms, entry.leg_owner)


    def _implausible(self, back_ms: float, sla_ms: float) -> str:
        if back_ms > MAX_RETURN_LEG_MS:
            return f"e2e_ms: implies a return leg of {back_ms:.0f} ms, over an hour (a unit mistake?): not learned"
        if sla_ms > 0 and back_ms > self.max_leg_slas * sla_ms:
            return (f"e2e_ms: implies a return leg of {back_ms:.1f} ms, more than {self.max_leg_slas:g} x the "
                    f"request's SLA of {sla_ms:g} ms: not learned")
        return ""


_OWNERS = {"client": profiler_pb2.RETURN_LEG_OWNER_CLIENT, "class": profiler_pb2.RETURN_LEG_OWNER_CLASS}


def leg_message(sample: ReturnLegSample) -> profiler_pb2.ReturnLeg:
    leg = profiler_pb2.ReturnLeg(client_id=sample.client_id, upload_ms=sample.upload_ms, return_ms=sample.return_ms,
                                 basis_owner=_OWNERS.get(sample.owner, profiler_pb2.RETURN_LEG_OWNER_UNSPECIFIED))
    if sample.basis_ms is not None:
        leg.basis_ms = sample.basis_ms
    return leg
