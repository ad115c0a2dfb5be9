from modipick.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ExecuteRequest(_message.Message):
    __slots__ = ("request_id", "model", "input", "signature_name", "probe")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_NAME_FIELD_NUMBER: _ClassVar[int]
    PROBE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    model: _common_pb2.ModelRef
    input: _common_pb2.Input
    signature_name: str
    probe: bool
    def __init__(self, request_id: _Optional[str] = ..., model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., input: _Optional[_Union[_common_pb2.Input, _Mapping]] = ..., signature_name: _Optional[str] = ..., probe: _Optional[bool] = ...) -> None: ...

class ExecuteResponse(_message.Message):
    __slots__ = ("request_id", "model", "prediction", "queue_ms", "execution_ms")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_FIELD_NUMBER: _ClassVar[int]
    QUEUE_MS_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_MS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    model: _common_pb2.ModelRef
    prediction: _common_pb2.Prediction
    queue_ms: float
    execution_ms: float
    def __init__(self, request_id: _Optional[str] = ..., model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., prediction: _Optional[_Union[_common_pb2.Prediction, _Mapping]] = ..., queue_ms: _Optional[float] = ..., execution_ms: _Optional[float] = ...) -> None: ...

class ModelStatus(_message.Message):
    __slots__ = ("model", "state", "input_shape", "input_name", "declared_accuracy", "queue_depth", "max_concurrency")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    INPUT_SHAPE_FIELD_NUMBER: _ClassVar[int]
    INPUT_NAME_FIELD_NUMBER: _ClassVar[int]
    DECLARED_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    QUEUE_DEPTH_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    model: _common_pb2.ModelRef
    state: _common_pb2.ModelState
    input_shape: _containers.RepeatedScalarFieldContainer[int]
    input_name: str
    declared_accuracy: float
    queue_depth: int
    max_concurrency: int
    def __init__(self, model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., state: _Optional[_Union[_common_pb2.ModelState, str]] = ..., input_shape: _Optional[_Iterable[int]] = ..., input_name: _Optional[str] = ..., declared_accuracy: _Optional[float] = ..., queue_depth: _Optional[int] = ..., max_concurrency: _Optional[int] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelStatus]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelStatus, _Mapping]]] = ...) -> None: ...
