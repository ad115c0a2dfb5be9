import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from modipick.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReturnLegOwner(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RETURN_LEG_OWNER_UNSPECIFIED: _ClassVar[ReturnLegOwner]
    RETURN_LEG_OWNER_CLIENT: _ClassVar[ReturnLegOwner]
    RETURN_LEG_OWNER_CLASS: _ClassVar[ReturnLegOwner]
RETURN_LEG_OWNER_UNSPECIFIED: ReturnLegOwner
RETURN_LEG_OWNER_CLIENT: ReturnLegOwner
RETURN_LEG_OWNER_CLASS: ReturnLegOwner

class Observation(_message.Message):
    __slots__ = ("model", "queue_ms", "execution_ms", "observed_at", "request_id", "probe", "failed", "error_code")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    QUEUE_MS_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_MS_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_AT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PROBE_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    model: _common_pb2.ModelRef
    queue_ms: float
    execution_ms: float
    observed_at: _timestamp_pb2.Timestamp
    request_id: str
    probe: bool
    failed: bool
    error_code: str
    def __init__(self, model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., queue_ms: _Optional[float] = ..., execution_ms: _Optional[float] = ..., observed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., request_id: _Optional[str] = ..., probe: _Optional[bool] = ..., failed: _Optional[bool] = ..., error_code: _Optional[str] = ...) -> None: ...

class RecordObservationsRequest(_message.Message):
    __slots__ = ("observations",)
    OBSERVATIONS_FIELD_NUMBER: _ClassVar[int]
    observations: _containers.RepeatedCompositeFieldContainer[Observation]
    def __init__(self, observations: _Optional[_Iterable[_Union[Observation, _Mapping]]] = ...) -> None: ...

class RecordObservationsResponse(_message.Message):
    __slots__ = ("accepted", "rejected")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    rejected: int
    def __init__(self, accepted: _Optional[int] = ..., rejected: _Optional[int] = ...) -> None: ...

class RecordOutcomeRequest(_message.Message):
    __slots__ = ("request_id", "model", "e2e_ms", "sla_ms", "true_label", "predicted_label", "client_id", "return_leg")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    E2E_MS_FIELD_NUMBER: _ClassVar[int]
    SLA_MS_FIELD_NUMBER: _ClassVar[int]
    TRUE_LABEL_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_LABEL_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    RETURN_LEG_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    model: _common_pb2.ModelRef
    e2e_ms: float
    sla_ms: float
    true_label: int
    predicted_label: int
    client_id: str
    return_leg: ReturnLeg
    def __init__(self, request_id: _Optional[str] = ..., model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., e2e_ms: _Optional[float] = ..., sla_ms: _Optional[float] = ..., true_label: _Optional[int] = ..., predicted_label: _Optional[int] = ..., client_id: _Optional[str] = ..., return_leg: _Optional[_Union[ReturnLeg, _Mapping]] = ...) -> None: ...

class ReturnLeg(_message.Message):
    __slots__ = ("client_id", "upload_ms", "return_ms", "basis_ms", "basis_owner")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_MS_FIELD_NUMBER: _ClassVar[int]
    RETURN_MS_FIELD_NUMBER: _ClassVar[int]
    BASIS_MS_FIELD_NUMBER: _ClassVar[int]
    BASIS_OWNER_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    upload_ms: float
    return_ms: float
    basis_ms: float
    basis_owner: ReturnLegOwner
    def __init__(self, client_id: _Optional[str] = ..., upload_ms: _Optional[float] = ..., return_ms: _Optional[float] = ..., basis_ms: _Optional[float] = ..., basis_owner: _Optional[_Union[ReturnLegOwner, str]] = ...) -> None: ...

class RecordOutcomeResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListProfilesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListProfilesResponse(_message.Message):
    __slots__ = ("profiles",)
    PROFILES_FIELD_NUMBER: _ClassVar[int]
    profiles: _containers.RepeatedCompositeFieldContainer[_common_pb2.Profile]
    def __init__(self, profiles: _Optional[_Iterable[_Union[_common_pb2.Profile, _Mapping]]] = ...) -> None: ...

class RegisterModelRequest(_message.Message):
    __slots__ = ("model", "declared_accuracy", "skip_warmup")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DECLARED_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    SKIP_WARMUP_FIELD_NUMBER: _ClassVar[int]
    model: _common_pb2.ModelRef
    declared_accuracy: float
    skip_warmup: bool
    def __init__(self, model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., declared_accuracy: _Optional[float] = ..., skip_warmup: _Optional[bool] = ...) -> None: ...

class RegisterModelResponse(_message.Message):
    __slots__ = ("profile",)
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    profile: _common_pb2.Profile
    def __init__(self, profile: _Optional[_Union[_common_pb2.Profile, _Mapping]] = ...) -> None: ...

class DeregisterModelRequest(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: _common_pb2.ModelRef
    def __init__(self, model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ...) -> None: ...

class DeregisterModelResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListRegisteredModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListRegisteredModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[_common_pb2.Profile]
    def __init__(self, models: _Optional[_Iterable[_Union[_common_pb2.Profile, _Mapping]]] = ...) -> None: ...

class ProbeModelRequest(_message.Message):
    __slots__ = ("model", "runs")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    RUNS_FIELD_NUMBER: _ClassVar[int]
    model: _common_pb2.ModelRef
    runs: int
    def __init__(self, model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., runs: _Optional[int] = ...) -> None: ...

class ProbeModelResponse(_message.Message):
    __slots__ = ("observations", "profile")
    OBSERVATIONS_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    observations: _containers.RepeatedCompositeFieldContainer[Observation]
    profile: _common_pb2.Profile
    def __init__(self, observations: _Optional[_Iterable[_Union[Observation, _Mapping]]] = ..., profile: _Optional[_Union[_common_pb2.Profile, _Mapping]] = ...) -> None: ...
