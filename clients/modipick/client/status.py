"""The google.rpc.Status details of a failed call (trailing metadata "grpc-status-details-bin"):
the ErrorInfo reason and the RetryInfo delay the services set (modipick.v1 errors.proto).

The SDK needs only grpcio and protobuf, so google.rpc.Status, ErrorInfo and RetryInfo are declared
here from their published definitions (same wire format) in a private descriptor pool, which
cannot clash with googleapis-common-protos where an application also has it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, duration_pb2, message, message_factory

DETAILS_KEY = "grpc-status-details-bin"
_F = descriptor_pb2.FieldDescriptorProto


def _declare() -> dict[str, Any]:
    proto = descriptor_pb2.FileDescriptorProto(name="modipick_client/google_rpc.proto", package="google.rpc",
                                               syntax="proto3",
                                               dependency=["google/protobuf/any.proto",
                                                           "google/protobuf/duration.proto"])
    status = proto.message_type.add(name="Status")
    status.field.add(name="code", number=1, type=_F.TYPE_INT32, label=_F.LABEL_OPTIONAL)
    status.field.add(name="message", number=2, type=_F.TYPE_STRING, label=_F.LABEL_OPTIONAL)
    status.field.add(name="details", number=3, type=_F.TYPE_MESSAGE, label=_F.LABEL_REPEATED,
                     type_name=".google.protobuf.Any")
    info = proto.message_type.add(name="ErrorInfo")
    info.field.add(name="reason", number=1, type=_F.TYPE_STRING, label=_F.LABEL_OPTIONAL)
    info.field.add(name="domain", number=2, type=_F.TYPE_STRING, label=_F.LABEL_OPTIONAL)
    info.field.add(name="metadata", number=3, type=_F.TYPE_MESSAGE, label=_F.LABEL_REPEATED,
                   type_name=".google.rpc.ErrorInfo.MetadataEntry")
    entry = info.nested_type.add(name="MetadataEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=_F.TYPE_STRING, label=_F.LABEL_OPTIONAL)
    entry.field.add(name="value", number=2, type=_F.TYPE_STRING, label=_F.LABEL_OPTIONAL)
    retry = proto.message_type.add(name="RetryInfo")
    retry.field.add(name="retry_delay", number=1, type=_F.TYPE_MESSAGE, label=_F.LABEL_OPTIONAL,
                    type_name=".google.protobuf.Duration")
    pool = descriptor_pool.DescriptorPool()
    for dependency in (any_pb2, duration_pb2):
        pool.AddSerializedFile(dependency.DESCRIPTOR.serialized_pb)
    pool.AddSerializedFile(proto.SerializeToString())
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"google.rpc.{name}"))
            for name in ("Status", "ErrorInfo", "RetryInfo")}


_MESSAGES = _declare()


@dataclass(frozen=True, slots=True)
class StatusDetails:
    """What a failed call's details said (empty when it carried none, e.g. a status gRPC made)."""

    reason: str = ""                  # ErrorInfo.reason, e.g. "OVERLOADED" (modipick.v1.ErrorReason)
    domain: str = ""                  # ErrorInfo.domain, "modipick" for the suite's own
    metadata: dict[str, str] = field(default_factory=dict)  # ErrorInfo.metadata, e.g. {"field": "sla_ms"}
    retry_delay_s: float | None = None  # RetryInfo: wait this long before trying again


def status_details(trailing_metadata: Iterable[tuple[str, Any]] | None) -> StatusDetails:
    """The details in a call's trailing metadata; undecodable details read as none."""
    raw = next((value for key, value in trailing_metadata or () if key == DETAILS_KEY), None)
    if not isinstance(raw, bytes):
        return StatusDetails()
    try:
        status = _MESSAGES["Status"].FromString(raw)
        reason, domain, metadata, delay = "", "", {}, None
        for detail in status.details:
            kind = detail.type_url.rpartition("/")[2]
            if kind == "google.rpc.ErrorInfo" and not reason:
                info = _MESSAGES["ErrorInfo"].FromString(detail.value)
                reason, domain, metadata = info.reason, info.domain, dict(info.metadata)
            elif kind == "google.rpc.RetryInfo":
                retry = _MESSAGES["RetryInfo"].FromString(detail.value)
                delay = retry.retry_delay.seconds + retry.retry_delay.nanos / 1e9
    except message.DecodeError:  # a peer's garbage must not hide the status itself
        return StatusDetails()
    return StatusDetails(reason, domain, metadata, delay)
