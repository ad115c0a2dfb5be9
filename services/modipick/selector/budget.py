"""A request's time budget, without trusting the client's clock where it can.

Time left after the upload: the gRPC deadline the client set from its SLA at its send time
(`context.time_remaining()`, which already excludes the upload), so upload_ms = sla_ms - left,
measured on the server's clock alone. A client that waits past its SLA on purpose says so with
metadata `x-modipick-deadline-slack-ms`, which is taken off `left`. A deadline that leaves more
than the SLA (plus `deadline_tolerance_ms`) was not set from the SLA (e.g. a plain 5 s timeout) and
is ignored.

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

from google.protobuf.timestamp_pb2 import Timestamp

from modipick.core import Budget

MAX_SLA_MS = 3_600_000.0  # one hour: anything longer is a unit mistake, not an SLA


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

    def __post_init__(self) -> None:
        if not (math.isfinite(self.max_clock_skew_ms) and self.max_clock_skew_ms >= 0):
            raise ValueError(f"max_clock_skew_ms must be >= 0, got {self.max_clock_skew_ms!r}")
        if self.return_estimate_ms is not None and not (math.isfinite(self.return_estimate_ms)
                                                        and self.return_estimate_ms >= 0):
            raise ValueError(f"return_estimate_ms must be >= 0, got {self.return_estimate_ms!r}")


class ServingOverhead:
    """Milliseconds the Selector itself adds around a model's run (its Executor round trip,
    (de)serialisation, scheduling), which the model profiles (queue + run, measured inside the
    Executor) do not contain. Subtracted from the budget so the policy's hard limit is honest.

    Fixed (the default 0: the paper's budget), or learned: an EWMA of server_ms - (queue + run)
    over served requests, per replica (so replicas agree only as far as their estimates do)."""

    def __init__(self, fixed_ms: float | None = 0.0, *, alpha: float = 0.05, initial_ms: float = 1.0,
                 max_ms: float = 1000.0) -> None:
        self.learned = fixed_ms is None
        self.value_ms = initial_ms if fixed_ms is None else fixed_ms
        self._alpha = alpha
        self._max = max_ms

    def observe(self, overhead_ms: float) -> None:
        if self.learned and 0.0 <= overhead_ms < self._max:
            self.value_ms += self._alpha * (overhead_ms - self.value_ms)


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


def parse_return_leg(text: str) -> float | None:
    """`--return-leg mirror` (default) or a fixed number of ms."""
    if text.strip().lower() in ("", "mirror", "upload"):
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"return leg must be 'mirror' or a number of ms >= 0, got {text!r}")
    return value


def check_sla(sla_ms: float, rules: BudgetRules) -> float:
    if not math.isfinite(sla_ms) or sla_ms <= 0:
        raise RequestInvalid("sla_ms", f"must be a positive number of ms, got {sla_ms!r}")
    if sla_ms > rules.max_sla_ms:
        raise RequestInvalid("sla_ms", f"{sla_ms:g} ms is longer than the maximum {rules.max_sla_ms:g} ms")
    return sla_ms


def upload_ms(send_time: Timestamp | None, receive_ns: int, sla_ms: float, rules: BudgetRules) -> float:
    if send_time is None:
        raise RequestInvalid("client_send_time", "is required (the client stamps it just before sending)")
    elapsed_ms = (receive_ns - (send_time.seconds * 1_000_000_000 + send_time.nanos)) / 1e6
    if elapsed_ms < -rules.max_clock_skew_ms:
        raise RequestInvalid("client_send_time", f"is {-elapsed_ms:.0f} ms in the future (more than the "
                             f"{rules.max_clock_skew_ms:g} ms clock-skew tolerance): is the client clock right?")
    if elapsed_ms > sla_ms + rules.max_clock_skew_ms:
        raise RequestInvalid("client_send_time", f"is {elapsed_ms:.0f} ms in the past, beyond the SLA of "
                             f"{sla_ms:g} ms plus the {rules.max_clock_skew_ms:g} ms clock-skew tolerance: "
                             f"is the client clock right?")
    return elapsed_ms if elapsed_ms > 0.0 else 0.0


def request_budget(sla_ms: float, send_time: Timestamp | None, receive_ns: int, rules: BudgetRules,
                   overhead_ms: float = 0.0) -> Budget:
    """T_U = SLA - upload - estimated return leg - serving overhead (folded into the return estimate)."""
    sla = check_sla(sla_ms, rules)
    upload = upload_ms(send_time, receive_ns, sla, rules)
    if overhead_ms == 0.0:
        return Budget(sla, upload, rules.return_estimate_ms)
    back = upload if rules.return_estimate_ms is None else rules.return_estimate_ms
    return Budget(sla, upload, back + overhead_ms)
