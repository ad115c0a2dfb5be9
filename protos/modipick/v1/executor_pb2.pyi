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

class ExecuteStreamRequest(_message.Message):
    __slots__ = ("calls",)
    CALLS_FIELD_NUMBER: _ClassVar[int]
    calls: _containers.RepeatedCompositeFieldContainer[ExecuteCall]
    def __init__(self, calls: _Optional[_Iterable[_Union[ExecuteCall, _Mapping]]] = ...) -> None: ...

class ExecuteCall(_message.Message):
    __slots__ = ("call_id", "request", "timeout_ms", "cancel")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    call_id: int
    request: ExecuteRequest
    timeout_ms: float
    cancel: bool
    def __init__(self, call_id: _Optional[int] = ..., request: _Optional[_Union[ExecuteRequest, _Mapping]] = ..., timeout_ms: _Optional[float] = ..., cancel: _Optional[bool] = ...) -> None: ...

class ExecuteStreamResponse(_message.Message):
    __slots__ = ("answers",)
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    answers: _containers.RepeatedCompositeFieldContainer[ExecuteAnswer]
    def __init__(self, answers: _Optional[_Iterable[_Union[ExecuteAnswer, _Mapping]]] = ...) -> None: ...

class ExecuteAnswer(_message.Message):
    __slots__ = ("call_id", "response", "error")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    call_id: int
    response: ExecuteResponse
    error: ExecuteError
    def __init__(self, call_id: _Optional[int] = ..., response: _Optional[_Union[ExecuteResponse, _Mapping]] = ..., error: _Optional[_Union[ExecuteError, _Mapping]] = ...) -> None: ...

class ExecuteError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

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
