"""google.rpc.Status details on the statuses the services answer with (errors.proto): an
ErrorInfo whose reason is a stable modipick.v1.ErrorReason, and a RetryInfo on RESOURCE_EXHAUSTED,
so that clients act on the reason instead of matching the message text.

    await abort_with_details(context, grpc.StatusCode.UNAVAILABLE, message, errors_pb2.ERROR_REASON_...)
"""

from __future__ import annotations

from typing import Mapping, NoReturn

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from modipick.v1 import errors_pb2
from modipick.v1.reasons import ERROR_DOMAIN, reason_name

# Overload with nothing better known: about one short execution frees a slot.
DEFAULT_RETRY_AFTER_S = 0.05
# gRPC's retry pushback: a negative value tells a client's retry policy not to retry this call,
# which the server has processed (a status it answers itself, not a connection that failed).
NO_RETRY_PUSHBACK = ("grpc-retry-pushback-ms", "-1")

# The reason of a failed execution, by the status the Executor ended it with.
EXECUTION_REASONS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: errors_pb2.ERROR_REASON_INVALID_INPUT,
    grpc.StatusCode.RESOURCE_EXHAUSTED: errors_pb2.ERROR_REASON_OVERLOADED,
    grpc.StatusCode.DEADLINE_EXCEEDED: errors_pb2.ERROR_REASON_BUDGET_EXCEEDED,
    grpc.StatusCode.CANCELLED: errors_pb2.ERROR_REASON_EXECUTION_CANCELLED,
    grpc.StatusCode.UNAVAILABLE: errors_pb2.ERROR_REASON_EXECUTOR_UNAVAILABLE,
    grpc.StatusCode.NOT_FOUND: errors_pb2.ERROR_REASON_MODEL_UNAVAILABLE,
    grpc.StatusCode.FAILED_PRECONDITION: errors_pb2.ERROR_REASON_MODEL_UNAVAILABLE,
}


def execution_reason(code: grpc.StatusCode) -> int:
    return EXECUTION_REASONS.get(code, errors_pb2.ERROR_REASON_EXECUTION_FAILED)


def rich_status(code: grpc.StatusCode, message: str, reason: int, *, metadata: Mapping[str, str] | None = None,
                retry_after_s: float | None = None) -> grpc.Status:
    """The status with its details in the trailing metadata (grpc-status-details-bin); on
    RESOURCE_EXHAUSTED a RetryInfo of `retry_after_s` (None: DEFAULT_RETRY_AFTER_S)."""
    status = status_pb2.Status(code=code.value[0], message=message)
    info = error_details_pb2.ErrorInfo(reason=reason_name(reason), domain=ERROR_DOMAIN,
                                       metadata={k: str(v) for k, v in (metadata or {}).items()})
    status.details.append(_packed(info))
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        retry = error_details_pb2.RetryInfo()
        delay_s = DEFAULT_RETRY_AFTER_S if retry_after_s is None else max(0.0, retry_after_s)
        retry.retry_delay.FromNanoseconds(round(delay_s * 1e9))
        status.details.append(_packed(retry))
    return rpc_status.to_status(status)


async def abort_with_details(context: grpc.aio.ServicerContext, code: grpc.StatusCode, message: str, reason: int,
                             *, metadata: Mapping[str, str] | None = None,
                             retry_after_s: float | None = None) -> NoReturn:
    """context.abort with the details: the call ends here (raises, like abort)."""
    status = rich_status(code, message, reason, metadata=metadata, retry_after_s=retry_after_s)
    trailing = tuple(status.trailing_metadata)
    if code == grpc.StatusCode.UNAVAILABLE:
        trailing += (NO_RETRY_PUSHBACK,)
    await context.abort(status.code, status.details, trailing)
    raise AssertionError("context.abort returned")  # pragma: no cover - abort always raises


def _packed(message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed
