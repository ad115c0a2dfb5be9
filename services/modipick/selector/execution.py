"""What running one request on the Executors gives the Selector: an `Execution`, or one
`ExecutionFailed` saying what kind of failure ended it (in the pool's terms, not gRPC's)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from modipick.v1 import common_pb2


class Failure(enum.Enum):
    INVALID_INPUT = "invalid_input"   # the request's own fault: final
    CANCELLED = "cancelled"           # the caller gave up: final
    TIMED_OUT = "timed_out"           # the attempt's deadline passed
    UNAVAILABLE = "unavailable"       # the replica did not answer, or is shutting down
    OVERLOADED = "overloaded"         # the replica shed the request (its queue is full)
    MODEL_MISSING = "model_missing"   # the replica does not serve the model (yet)
    MODEL_FAILED = "model_failed"     # the model's run failed
    REFUSED = "refused"               # anything else (credentials, an Executor that lacks the method): final


# a retry on another replica may succeed
REPLICA_FAILURES = frozenset({Failure.TIMED_OUT, Failure.UNAVAILABLE, Failure.OVERLOADED, Failure.MODEL_MISSING})
# the replica looks down: it leaves the rotation for a while
EJECTING = frozenset({Failure.UNAVAILABLE, Failure.TIMED_OUT})


@dataclass(slots=True)  # never changed once made; frozen would triple its cost per request
class Execution:
    model: common_pb2.ModelRef        # what ran (a retry may have run a faster model than decided)
    prediction: common_pb2.Prediction
    queue_ms: float
    execution_ms: float
    replica: str                      # the target that answered
    attempts: int = 1


class ExecutionFailed(Exception):
    """The last attempt's failure; `detail` names every attempt and why no other was made."""

    def __init__(self, failure: Failure, detail: str, *, attempts: int = 1) -> None:
        super().__init__(detail)
        self.failure = failure
        self.detail = detail
        self.attempts = attempts
