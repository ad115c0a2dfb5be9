import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from modipick.v1 import common_pb2 as _common_pb2
from modipick.v1 import profiler_pb2 as _profiler_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Disposition(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DISPOSITION_UNSPECIFIED: _ClassVar[Disposition]
    DISPOSITION_SERVED: _ClassVar[Disposition]
    DISPOSITION_RUN_ON_DEVICE: _ClassVar[Disposition]

class ReturnLegSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RETURN_LEG_SOURCE_UNSPECIFIED: _ClassVar[ReturnLegSource]
    RETURN_LEG_SOURCE_CLIENT: _ClassVar[ReturnLegSource]
    RETURN_LEG_SOURCE_CLASS: _ClassVar[ReturnLegSource]
    RETURN_LEG_SOURCE_PRIOR: _ClassVar[ReturnLegSource]
DISPOSITION_UNSPECIFIED: Disposition
DISPOSITION_SERVED: Disposition
DISPOSITION_RUN_ON_DEVICE: Disposition
RETURN_LEG_SOURCE_UNSPECIFIED: ReturnLegSource
RETURN_LEG_SOURCE_CLIENT: ReturnLegSource
RETURN_LEG_SOURCE_CLASS: ReturnLegSource
RETURN_LEG_SOURCE_PRIOR: ReturnLegSource

class InferRequest(_message.Message):
    __slots__ = ("request_id", "input", "sla_ms", "client_send_time", "policy", "client_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    SLA_MS_FIELD_NUMBER: _ClassVar[int]
    CLIENT_SEND_TIME_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    input: _common_pb2.Input
    sla_ms: float
    client_send_time: _timestamp_pb2.Timestamp
    policy: str
    client_id: str
    def __init__(self, request_id: _Optional[str] = ..., input: _Optional[_Union[_common_pb2.Input, _Mapping]] = ..., sla_ms: _Optional[float] = ..., client_send_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., policy: _Optional[str] = ..., client_id: _Optional[str] = ...) -> None: ...

class InferResponse(_message.Message):
    __slots__ = ("request_id", "disposition", "model", "reason", "prediction", "timings", "ticket", "return_leg_source", "meet_probability")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DISPOSITION_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    TICKET_FIELD_NUMBER: _ClassVar[int]
    RETURN_LEG_SOURCE_FIELD_NUMBER: _ClassVar[int]
    MEET_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    disposition: Disposition
    model: _common_pb2.ModelRef
    reason: _common_pb2.SelectionReason
    prediction: _common_pb2.Prediction
    timings: _common_pb2.Timings
    ticket: OutcomeTicket
    return_leg_source: ReturnLegSource
    meet_probability: float
    def __init__(self, request_id: _Optional[str] = ..., disposition: _Optional[_Union[Disposition, str]] = ..., model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., reason: _Optional[_Union[_common_pb2.SelectionReason, str]] = ..., prediction: _Optional[_Union[_common_pb2.Prediction, _Mapping]] = ..., timings: _Optional[_Union[_common_pb2.Timings, _Mapping]] = ..., ticket: _Optional[_Union[OutcomeTicket, _Mapping]] = ..., return_leg_source: _Optional[_Union[ReturnLegSource, str]] = ..., meet_probability: _Optional[float] = ...) -> None: ...

class OutcomeTicket(_message.Message):
    __slots__ = ("request_id", "client_id", "upload_ms", "after_decision_ms", "server_ms", "basis_ms", "basis_owner", "send_elapsed_ms", "sla_ms", "signature", "key_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_MS_FIELD_NUMBER: _ClassVar[int]
    AFTER_DECISION_MS_FIELD_NUMBER: _ClassVar[int]
    SERVER_MS_FIELD_NUMBER: _ClassVar[int]
    BASIS_MS_FIELD_NUMBER: _ClassVar[int]
    BASIS_OWNER_FIELD_NUMBER: _ClassVar[int]
    SEND_ELAPSED_MS_FIELD_NUMBER: _ClassVar[int]
    SLA_MS_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    client_id: str
    upload_ms: float
    after_decision_ms: float
    server_ms: float
    basis_ms: float
    basis_owner: _profiler_pb2.ReturnLegOwner
    send_elapsed_ms: float
    sla_ms: float
    signature: bytes
    key_id: str
    def __init__(self, request_id: _Optional[str] = ..., client_id: _Optional[str] = ..., upload_ms: _Optional[float] = ..., after_decision_ms: _Optional[float] = ..., server_ms: _Optional[float] = ..., basis_ms: _Optional[float] = ..., basis_owner: _Optional[_Union[_profiler_pb2.ReturnLegOwner, str]] = ..., send_elapsed_ms: _Optional[float] = ..., sla_ms: _Optional[float] = ..., signature: _Optional[bytes] = ..., key_id: _Optional[str] = ...) -> None: ...

class SelectRequest(_message.Message):
    __slots__ = ("request_id", "sla_ms", "client_send_time", "policy", "client_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SLA_MS_FIELD_NUMBER: _ClassVar[int]
    CLIENT_SEND_TIME_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    sla_ms: float
    client_send_time: _timestamp_pb2.Timestamp
    policy: str
    client_id: str
    def __init__(self, request_id: _Optional[str] = ..., sla_ms: _Optional[float] = ..., client_send_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., policy: _Optional[str] = ..., client_id: _Optional[str] = ...) -> None: ...

class SelectResponse(_message.Message):
    __slots__ = ("request_id", "disposition", "model", "reason", "budget_ms", "probability", "exploration_set_size", "base_model", "return_leg_source", "meet_probability")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DISPOSITION_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    BUDGET_MS_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    EXPLORATION_SET_SIZE_FIELD_NUMBER: _ClassVar[int]
    BASE_MODEL_FIELD_NUMBER: _ClassVar[int]
    RETURN_LEG_SOURCE_FIELD_NUMBER: _ClassVar[int]
    MEET_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    disposition: Disposition
    model: _common_pb2.ModelRef
    reason: _common_pb2.SelectionReason
    budget_ms: float
    probability: float
    exploration_set_size: int
    base_model: _common_pb2.ModelRef
    return_leg_source: ReturnLegSource
    meet_probability: float
    def __init__(self, request_id: _Optional[str] = ..., disposition: _Optional[_Union[Disposition, str]] = ..., model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., reason: _Optional[_Union[_common_pb2.SelectionReason, str]] = ..., budget_ms: _Optional[float] = ..., probability: _Optional[float] = ..., exploration_set_size: _Optional[int] = ..., base_model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., return_leg_source: _Optional[_Union[ReturnLegSource, str]] = ..., meet_probability: _Optional[float] = ...) -> None: ...

class ReportOutcomeRequest(_message.Message):
    __slots__ = ("request_id", "model", "e2e_ms", "sla_ms", "true_label", "client_id", "predicted_label", "ticket")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    E2E_MS_FIELD_NUMBER: _ClassVar[int]
    SLA_MS_FIELD_NUMBER: _ClassVar[int]
    TRUE_LABEL_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_LABEL_FIELD_NUMBER: _ClassVar[int]
    TICKET_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    model: _common_pb2.ModelRef
    e2e_ms: float
    sla_ms: float
    true_label: int
    client_id: str
    predicted_label: int
    ticket: OutcomeTicket
    def __init__(self, request_id: _Optional[str] = ..., model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., e2e_ms: _Optional[float] = ..., sla_ms: _Optional[float] = ..., true_label: _Optional[int] = ..., client_id: _Optional[str] = ..., predicted_label: _Optional[int] = ..., ticket: _Optional[_Union[OutcomeTicket, _Mapping]] = ...) -> None: ...

class ReportOutcomeResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
