import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SelectionReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SELECTION_REASON_UNSPECIFIED: _ClassVar[SelectionReason]
    SELECTION_REASON_BASE: _ClassVar[SelectionReason]
    SELECTION_REASON_EXPLORED: _ClassVar[SelectionReason]
    SELECTION_REASON_FALLBACK: _ClassVar[SelectionReason]

class ModelState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODEL_STATE_UNSPECIFIED: _ClassVar[ModelState]
    MODEL_STATE_LOADING: _ClassVar[ModelState]
    MODEL_STATE_WARMING: _ClassVar[ModelState]
    MODEL_STATE_ELIGIBLE: _ClassVar[ModelState]
    MODEL_STATE_FAILING: _ClassVar[ModelState]
    MODEL_STATE_UNAVAILABLE: _ClassVar[ModelState]
SELECTION_REASON_UNSPECIFIED: SelectionReason
SELECTION_REASON_BASE: SelectionReason
SELECTION_REASON_EXPLORED: SelectionReason
SELECTION_REASON_FALLBACK: SelectionReason
MODEL_STATE_UNSPECIFIED: ModelState
MODEL_STATE_LOADING: ModelState
MODEL_STATE_WARMING: ModelState
MODEL_STATE_ELIGIBLE: ModelState
MODEL_STATE_FAILING: ModelState
MODEL_STATE_UNAVAILABLE: ModelState

class ModelRef(_message.Message):
    __slots__ = ("name", "version", "version_label")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    VERSION_LABEL_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    version_label: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ..., version_label: _Optional[str] = ...) -> None: ...

class Tensor(_message.Message):
    __slots__ = ("dtype", "shape", "content")
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    dtype: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    content: bytes
    def __init__(self, dtype: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., content: _Optional[bytes] = ...) -> None: ...

class Input(_message.Message):
    __slots__ = ("encoded_image", "tensor")
    ENCODED_IMAGE_FIELD_NUMBER: _ClassVar[int]
    TENSOR_FIELD_NUMBER: _ClassVar[int]
    encoded_image: bytes
    tensor: Tensor
    def __init__(self, encoded_image: _Optional[bytes] = ..., tensor: _Optional[_Union[Tensor, _Mapping]] = ...) -> None: ...

class Prediction(_message.Message):
    __slots__ = ("label", "label_name", "score", "scores")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    LABEL_NAME_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    label: int
    label_name: str
    score: float
    scores: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, label: _Optional[int] = ..., label_name: _Optional[str] = ..., score: _Optional[float] = ..., scores: _Optional[_Iterable[float]] = ...) -> None: ...

class Timings(_message.Message):
    __slots__ = ("upload_ms", "budget_ms", "selection_ms", "queue_ms", "execution_ms", "server_ms")
    UPLOAD_MS_FIELD_NUMBER: _ClassVar[int]
    BUDGET_MS_FIELD_NUMBER: _ClassVar[int]
    SELECTION_MS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_MS_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_MS_FIELD_NUMBER: _ClassVar[int]
    SERVER_MS_FIELD_NUMBER: _ClassVar[int]
    upload_ms: float
    budget_ms: float
    selection_ms: float
    queue_ms: float
    execution_ms: float
    server_ms: float
    def __init__(self, upload_ms: _Optional[float] = ..., budget_ms: _Optional[float] = ..., selection_ms: _Optional[float] = ..., queue_ms: _Optional[float] = ..., execution_ms: _Optional[float] = ..., server_ms: _Optional[float] = ...) -> None: ...

class Profile(_message.Message):
    __slots__ = ("model", "mean_ms", "std_ms", "samples", "updated_at_unix", "declared_accuracy", "measured_accuracy", "correct", "served", "state", "updated_at")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MEAN_MS_FIELD_NUMBER: _ClassVar[int]
    STD_MS_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_UNIX_FIELD_NUMBER: _ClassVar[int]
    DECLARED_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    MEASURED_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    CORRECT_FIELD_NUMBER: _ClassVar[int]
    SERVED_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    model: ModelRef
    mean_ms: float
    std_ms: float
    samples: int
    updated_at_unix: float
    declared_accuracy: float
    measured_accuracy: float
    correct: int
    served: int
    state: ModelState
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, model: _Optional[_Union[ModelRef, _Mapping]] = ..., mean_ms: _Optional[float] = ..., std_ms: _Optional[float] = ..., samples: _Optional[int] = ..., updated_at_unix: _Optional[float] = ..., declared_accuracy: _Optional[float] = ..., measured_accuracy: _Optional[float] = ..., correct: _Optional[int] = ..., served: _Optional[int] = ..., state: _Optional[_Union[ModelState, str]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
