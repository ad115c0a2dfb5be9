"""A request's time budget, without trusting the client's clock where it can.

Time left after the upload: the gRPC deadline the client set from its SLA at its send time
(`context.time_remaining()`, which already excludes the upload), so upload_ms = sla_ms - left,
measured on the server's clock alone. A client that waits past its SLA on purpose says so with
metadata `x-modipick-deadline-slack-ms`, which is taken off `left`. A deadline that leaves more
than the SLA (plus a tolerance: gRPC rounds timeouts of 1 s and more up by up to ~1 % on the wire,
so there the upload reads up to that much short) was not set from the SLA (e.g. a plain 5 s
timeout) and is ignored.

Fallback, for requests without such a deadline: upload_ms = receive time - client_send_time -
the client's estimated clock offset (modipick.selector.clocks; 0 until known), clamped >= 0. A
send time up to `max_clock_skew_ms` in the future counts as "just sent"; further in the future,
or further in the past than the SLA itself plus that tolerance (the client's own deadline would
have fired), the clocks disagree and the request is refused, naming the field.

The return leg: the paper's estimate (equal to the upload, or a fixed one) for every policy, and,
for policies that use a distribution (`risk_aware`), the one learned from this client's outcome
reports (modipick.selector.returnlegs). The Selector's own serving overhead is counted as spent
before the decision (`Budget.upload_ms` = upload + overhead), so every policy keeps it clear.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

from google.protobuf.timestamp_pb2 import Timestamp

from modipick.core import Budget
from modipick.core.profiles import ewma_step
from modipick.core.returnleg import ReturnLegEstimate
from modipick.selector.clocks import ClockOffsets
from modipick.v1.contract import DEADLINE_SLACK_KEY, MAX_SLA_MS

if TYPE_CHECKING:
    from modipick.core import Policy
    from modipick.selector.returnlegs import ReturnLegBook

# Policies that decide with the return leg's distribution (Budget.return_leg), not a point estimate.
RETURN_LEG_POLICIES = frozenset({"risk_aware"})


class RequestInvalid(ValueError):
    """The request cannot be served as sent; the message names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True, slots=True)
class BudgetRules:
    max_clock_skew_ms: float = 1000.0
    return_estimate_ms: float | None = None  # None: mirror the upload leg (paper 2 * T_input)
    max_sla_ms: float = MAX_SLA_MS
    use_deadline: bool = True            # False: the send time only (the paper's measurement)
    # A deadline leaving more than SLA + tolerance_ms + tolerance_rel * SLA was not set from the SLA.
    # gRPC rounds a timeout of 1 s or more up on the wire (by up to ~1 %: +8 ms at 1 s, +98 ms at 20 s).
    deadline_tolerance_ms: float = 2.0
    deadline_tolerance_rel: float = 0.01
    cutoff_quantile: float = 0.05        # learned-leg budgets: T_U = left - this quantile of R

    def __post_init__(self) -> None:
        if not (math.isfinite(self.max_clock_skew_ms) and self.max_clock_skew_ms >= 0):
            raise ValueError(f"max_clock_skew_ms must be >= 0, got {self.max_clock_skew_ms!r}")
        if not (math.isfinite(self.deadline_tolerance_ms) and self.deadline_tolerance_ms >= 0
                and 0 <= self.deadline_tolerance_rel < 1):
            raise ValueError(f"deadline tolerance must be >= 0 ms and a share in [0, 1), got "
                             f"{self.deadline_tolerance_ms!r} ms, {self.deadline_tolerance_rel!r}")
        if not 0.0 <= self.cutoff_quantile < 1.0:
            raise ValueError(f"cutoff_quantile must be in [0, 1), got {self.cutoff_quantile!r}")
        if self.return_estimate_ms is not None and not (math.isfinite(self.return_estimate_ms)
                                                        and self.return_estimate_ms >= 0):
            raise ValueError(f"return_estimate_ms must be >= 0, got {self.return_estimate_ms!r}")


class ServingOverhead:
    """Milliseconds the Selector itself adds around a model's run (its Executor round trip,
    (de)serialisation, scheduling), which the model profiles (queue + run, measured inside the
    Executor) do not contain. Subtracted from the budget so the policy's hard limit is honest.

    Fixed (the default 0: the paper's budget), or learned: an EWMA mean and variance (the models'
    formula) of server_ms - (queue + run) over served requests, per replica (so replicas agree only
    as far as their estimates do). The mean is budgeted; `std_ms` goes to risk_aware."""

    def __init__(self, fixed_ms: float | None = 0.0, *, alpha: float = 0.05, initial_ms: float = 1.0,
                 max_ms: float = 1000.0) -> None:
        self.learned = fixed_ms is None
        self.value_ms = initial_ms if fixed_ms is None else fixed_ms
        self.std_ms = 0.0
        self._var = 0.0
        self._alpha = alpha
        self._max = max_ms

    def observe(self, overhead_ms: float) -> None:
        if self.learned and 0.0 <= overhead_ms < self._max:
            # from the initial guess, not from the first sample: one slow first request moves it by alpha
            self.value_ms, self._var = ewma_step(self.value_ms, self._var, 1, overhead_ms, self._alpha)
            self.std_ms = math.sqrt(self._var)


def parse_overhead(text: str) -> float | None:
    """`--serving-overhead-ms auto` (learned) or a fixed number of ms (default 0)."""
    if text.strip().lower() == "auto":
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"serving overhead must be 'auto' or a number of ms >= 0, got {text!r}")
    return value


def check_sla(sla_ms: float, rules: BudgetRules) -> float:
    if not math.isfinite(sla_ms) or sla_ms <= 0:
        raise RequestInvalid("sla_ms", f"must be a positive number of ms, got {sla_ms!r}")
    if sla_ms > rules.max_sla_ms:
        raise RequestInvalid("sla_ms", f"{sla_ms:g} ms is longer than the maximum {rules.max_sla_ms:g} ms")
    return sla_ms


def elapsed_since_send_ms(send_time: Timestamp | None, receive_ns: int) -> float | None:
    """receive - client_send_time in ms, both as read (the client's clock against ours)."""
    if send_time is None:
        return None
    return (receive_ns - (send_time.seconds * 1_000_000_000 + send_time.nanos)) / 1e6


def upload_ms(send_time: Timestamp | None, receive_ns: int, sla_ms: float, rules: BudgetRules,
              clock_offset_ms: float = 0.0) -> float:
    if send_time is None:
        raise RequestInvalid("client_send_time", "is required (the client stamps it just before sending) "
                             "unless the call carries a gRPC deadline of at most the SLA")
    elapsed_ms = elapsed_since_send_ms(send_time, receive_ns) - clock_offset_ms
    if elapsed_ms < -rules.max_clock_skew_ms:
        raise RequestInvalid("client_send_time", f"is {-elapsed_ms:.0f} ms in the future (more than the "
                             f"{rules.max_clock_skew_ms:g} ms clock-skew tolerance): is the client clock right?")
    if elapsed_ms > sla_ms + rules.max_clock_skew_ms:
        raise RequestInvalid("client_send_time", f"is {elapsed_ms:.0f} ms in the past, beyond the SLA of "
                             f"{sla_ms:g} ms plus the {rules.max_clock_skew_ms:g} ms clock-skew tolerance: "
                             f"is the client clock right?")
    return elapsed_ms if elapsed_ms > 0.0 else 0.0


def deadline_slack_ms(metadata: Iterable[tuple[str, object]] | None) -> float:
    """The slack a client added to its deadline beyond the SLA (metadata DEADLINE_SLACK_KEY)."""
    for key, value in metadata or ():
        if key == DEADLINE_SLACK_KEY:
            try:
                slack = float(value.decode() if isinstance(value, bytes) else value)
            except ValueError:
                slack = float("nan")
            if not (math.isfinite(slack) and slack >= 0):
                raise RequestInvalid(DEADLINE_SLACK_KEY, f"metadata must be a number of ms >= 0, got {value!r}")
            return slack
    return 0.0


def deadline_upload_ms(sla_ms: float, left_s: float | None, slack_ms: float, rules: BudgetRules) -> float | None:
    """sla - time left to the deadline (without the client's slack), or None when the call has no
    deadline or one that was not set from the SLA."""
    if left_s is None or not rules.use_deadline:
        return None
    left_ms = left_s * 1000.0 - slack_ms
    if not math.isfinite(left_ms) or left_ms > sla_ms * (1.0 + rules.deadline_tolerance_rel) + rules.deadline_tolerance_ms:
        return None
    spent = sla_ms - left_ms
    return spent if spent > 0.0 else 0.0


def uses_return_leg(policy: "Policy") -> bool:
    return policy.name in RETURN_LEG_POLICIES


@dataclass(slots=True)  # never changed once made; frozen would triple its cost per request
class RequestBudget:
    """One request's budget and what the Selector remembers of how it was made."""

    budget: Budget                 # what the policy gets (upload_ms includes the serving overhead)
    upload_ms: float               # U: spent before the decision, as measured (no overhead)
    source: str                    # "deadline" | "send_time"
    client_id: str
    elapsed_ms: float | None       # receive - send stamp as read (clock offset included); None: no stamp
    clock_offset_ms: float | None  # the client's estimated offset (None: unknown / anonymous)
    leg: ReturnLegEstimate | None  # the learned return-leg distribution for U (None: not learning)
    leg_owner: str = ""            # "client" | "class": which model's basis_ms `leg` carries
    leg_source: str = ""           # "client" | "class" | "prior": which model answered ("": none learned)


class Budgeter:
    """Builds every request's budget: from the deadline (or send time), the clock offsets, the
    learned return legs (`returns`, None: not learning) and the serving overhead."""

    def __init__(self, rules: BudgetRules = BudgetRules(), overhead: ServingOverhead | None = None, *,
                 returns: "ReturnLegBook | None" = None, clocks: ClockOffsets | None = None,
                 fixed_leg_ms: float | None = None) -> None:
        self.rules = rules
        self.overhead = overhead or ServingOverhead(0.0)
        self.returns = returns
        self.clocks = clocks if clocks is not None else ClockOffsets()
        self._fixed_leg = None if fixed_leg_ms is None else ReturnLegEstimate.exact(fixed_leg_ms)

    def make(self, *, sla_ms: float, send_time: Timestamp | None, receive_ns: int, left_s: float | None,
             slack_ms: float = 0.0, client_id: str = "", with_leg: bool = False) -> RequestBudget:
        rules = self.rules
        sla = check_sla(sla_ms, rules)
        elapsed = elapsed_since_send_ms(send_time, receive_ns)
        upload = deadline_upload_ms(sla, left_s, slack_ms, rules)
        if upload is not None:
            source = "deadline"
            if elapsed is not None and client_id:
                self.clocks.observe(client_id, elapsed - upload, "deadline")
            offset = self.clocks.offset(client_id)
        else:
            source = "send_time"
            offset = self.clocks.offset(client_id)
            upload = upload_ms(send_time, receive_ns, sla, rules, offset or 0.0)
        leg, owner, leg_source = self._fixed_leg, "", ""
        if self.returns is not None:
            found = self.returns.estimate(client_id, upload)
            leg, owner, leg_source = found.estimate, found.owner, found.source
        if with_leg and leg is not None:
            back = leg.quantile(rules.cutoff_quantile)
        else:
            back = upload if rules.return_estimate_ms is None else rules.return_estimate_ms
        overhead = self.overhead
        budget = Budget(sla, upload + overhead.value_ms, back, return_leg=leg if with_leg else None,
                        overhead_std_ms=overhead.std_ms)
        return RequestBudget(budget, upload, source, client_id, elapsed, offset, leg, owner, leg_source)

