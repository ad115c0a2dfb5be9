"""The ErrorInfo side of the wire contract (errors.proto): the domain every modipick ErrorInfo
carries and the reason strings, which are ErrorReason names without their "ERROR_REASON_" prefix.
Shared by the services, which set them, and the client SDK, which reads them."""

from __future__ import annotations

from modipick.v1 import errors_pb2

ERROR_DOMAIN = "modipick"
_PREFIX = "ERROR_REASON_"


def reason_name(reason: int) -> str:
    """The ErrorInfo.reason string of an ErrorReason value, e.g. "OVERLOADED"."""
    return errors_pb2.ErrorReason.Name(reason).removeprefix(_PREFIX)


def reason_value(name: str) -> int:
    """The ErrorReason of an ErrorInfo.reason string; ERROR_REASON_UNSPECIFIED for one this
    version does not know (a newer server may add reasons)."""
    try:
        return errors_pb2.ErrorReason.Value(_PREFIX + name)
    except ValueError:
        return errors_pb2.ERROR_REASON_UNSPECIFIED
