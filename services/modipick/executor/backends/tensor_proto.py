"""numpy <-> tensorflow.TensorProto without running TensorFlow ops (what TF Serving sends and takes).

Dense row-major bytes in tensor_content (what tf.make_tensor_proto writes for arrays); replies may
use either tensor_content or the typed repeated fields, so both are read.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# tensorflow.DataType enum values (types.proto), stable across releases.
DT_FLOAT, DT_DOUBLE, DT_INT32, DT_UINT8, DT_INT64, DT_HALF = 1, 2, 3, 4, 9, 19
_NUMPY = {DT_FLOAT: np.float32, DT_DOUBLE: np.float64, DT_INT32: np.int32, DT_UINT8: np.uint8,
          DT_INT64: np.int64, DT_HALF: np.float16}
_DTYPE_OF = {np.dtype(v): k for k, v in _NUMPY.items()}
_VALUE_FIELD = {DT_FLOAT: "float_val", DT_DOUBLE: "double_val", DT_INT32: "int_val", DT_UINT8: "int_val",
                DT_INT64: "int64_val", DT_HALF: "half_val"}
DTYPE_NAMES = {DT_FLOAT: "float32", DT_DOUBLE: "float64", DT_INT32: "int32", DT_UINT8: "uint8",
               DT_INT64: "int64", DT_HALF: "float16"}


def to_tensor_proto(array: np.ndarray) -> Any:
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2

    array = np.ascontiguousarray(array)
    dtype = _DTYPE_OF.get(array.dtype)
    if dtype is None:
        raise TypeError(f"no TensorProto dtype for numpy {array.dtype}")
    shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in array.shape])
    return tensor_pb2.TensorProto(dtype=dtype, tensor_shape=shape, tensor_content=array.tobytes())


def from_tensor_proto(proto: Any) -> np.ndarray:
    dtype = _NUMPY.get(proto.dtype)
    if dtype is None:
        raise TypeError(f"unsupported TensorProto dtype {proto.dtype}")
    shape = tuple(d.size for d in proto.tensor_shape.dim)
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if proto.tensor_content:
        return np.frombuffer(proto.tensor_content, dtype=dtype).reshape(shape).copy()
    values = getattr(proto, _VALUE_FIELD[proto.dtype])
    if proto.dtype == DT_HALF:
        flat = np.array(values, dtype=np.uint16).view(np.float16)
    else:
        flat = np.array(values, dtype=dtype)
    if flat.size == count:
        return flat.reshape(shape)
    if flat.size == 1:  # a splat: one value stands for all
        return np.full(shape, flat[0], dtype=dtype)
    raise ValueError(f"TensorProto holds {flat.size} values for shape {list(shape)}")
