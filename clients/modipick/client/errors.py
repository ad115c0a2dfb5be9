"""Typed errors the client raises; each maps one gRPC status the suite answers with.

    ModiPickError            any failed call (code, details, reason, request_id)
    ├── SlaExpired           DEADLINE_EXCEEDED: the SLA ran out before an answer came back
    ├── InvalidRequest       INVALID_ARGUMENT: the server named what is wrong with the request
    │                        (also a message over the size limit, which gRPC reports as RESOURCE_EXHAUSTED)
    ├── Overloaded           RESOURCE_EXHAUSTED: shed early; retry after `retry_delay_s` or run on device
    └── Unavailable          UNAVAILABLE: no Selector reachable, or nothing eligible to run yet

`reason` is the stable ErrorInfo reason the suite sets (modipick.v1.ErrorReason without its
prefix, e.g. "NO_ELIGIBLE_MODEL"): act on it, not on the message. The gRPC error the client caught
stays the exception's `__cause__`, with its `trailing_metadata` copied here.

"Run on the device" is not an error: it is a normal answer (`InferResult.run_on_device`).
"""

from __future__ import annotations

from typing import Any

import grpc

from modipick.client.status import StatusDetails, status_details


class ModiPickError(Exception):
    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, *, code: grpc.StatusCode | None = None, request_id: str = "",
                 details: str | None = None, status: StatusDetails | None = None,
                 trailing_metadata: tuple[tuple[str, Any], ...] = ()) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.request_id = request_id
        self._details = details
        self.status = status if status is not None else StatusDetails()
        self.trailing_metadata = trailing_metadata

    @property
    def details(self) -> str:
        """The server's status message (the whole message for errors raised before a call)."""
        return self._details if self._details is not None else str(self)

    @property
    def reason(self) -> str:
        """The ErrorInfo reason, e.g. "OVERLOADED"; "" when the status carried none."""
        return self.status.reason

    @property
    def retry_delay_s(self) -> float | None:
        """How long the server asked to wait before retrying (RetryInfo); None: it did not say."""
        return self.status.retry_delay_s

    @property
    def error_metadata(self) -> dict[str, str]:
        """ErrorInfo.metadata, e.g. {"field": "sla_ms"}."""
        return self.status.metadata


class SlaExpired(ModiPickError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class InvalidRequest(ModiPickError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class Overloaded(ModiPickError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(ModiPickError):
    code = grpc.StatusCode.UNAVAILABLE


_BY_CODE: dict[grpc.StatusCode, type[ModiPickError]] = {
    grpc.StatusCode.DEADLINE_EXCEEDED: SlaExpired,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidRequest,
    grpc.StatusCode.RESOURCE_EXHAUSTED: Overloaded,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
}


def from_rpc_error(error: grpc.RpcError, request_id: str = "") -> ModiPickError:
    """The typed error for a failed call; raise it `from error` to keep the original."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    code = code or grpc.StatusCode.UNKNOWN
    details = (error.details() if hasattr(error, "details") else None) or ""
    trailing = tuple(error.trailing_metadata() or ()) if hasattr(error, "trailing_metadata") else ()
    status = status_details(trailing)
    cls = _BY_CODE.get(code, ModiPickError)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and not status.reason and "larger than max" in details:
        cls = InvalidRequest  # gRPC's own message size limit, not load: retrying will not help
    return cls(f"{code.name}: {details or code.name}", code=code, request_id=request_id, details=details,
               status=status, trailing_metadata=trailing)
