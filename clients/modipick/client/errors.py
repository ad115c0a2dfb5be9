"""Typed errors the client raises; each maps one gRPC status the suite answers with.

    ModiPickError            any failed call (code, details, request_id)
    ├── SlaExpired           DEADLINE_EXCEEDED: the SLA ran out before an answer came back
    ├── InvalidRequest       INVALID_ARGUMENT: the server named what is wrong with the request
    │                        (also a message over the size limit, which gRPC reports as RESOURCE_EXHAUSTED)
    ├── Overloaded           RESOURCE_EXHAUSTED: shed early; retry later or run on device
    └── Unavailable          UNAVAILABLE: no Selector reachable, or nothing eligible to run yet

"Run on the device" is not an error: it is a normal answer (`InferResult.run_on_device`).
"""

from __future__ import annotations

import grpc


class ModiPickError(Exception):
    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, *, code: grpc.StatusCode | None = None, request_id: str = "") -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.request_id = request_id

    @property
    def details(self) -> str:
        return str(self)


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
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = (error.details() if hasattr(error, "details") else None) or (code.name if code else "error")
    cls = _BY_CODE.get(code, ModiPickError)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in details:
        cls = InvalidRequest  # the message size limit, not load: retrying will not help
    return cls(f"{code.name}: {details}", code=code, request_id=request_id)
