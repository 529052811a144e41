"""TensorProto <-> numpy conversion on the request path.

tf.make_tensor_proto / tf.make_ndarray are general but slow per request; these
read and write the proto fields directly, numeric tensors as raw bytes
(`tensor_content`), which every TF Serving client decodes.
"""
import math

import numpy as np
from tensorflow.core.framework import tensor_pb2, types_pb2

from common.serving_contract import MAX_MESSAGE_BYTES
from serving import errors

MAX_EXPANDED_TENSOR_BYTES = MAX_MESSAGE_BYTES

_NUMPY_DTYPES = {
    types_pb2.DT_FLOAT: np.float32,
    types_pb2.DT_DOUBLE: np.float64,
    types_pb2.DT_HALF: np.float16,
    types_pb2.DT_INT8: np.int8,
    types_pb2.DT_INT16: np.int16,
    types_pb2.DT_INT32: np.int32,
    types_pb2.DT_INT64: np.int64,
    types_pb2.DT_UINT8: np.uint8,
    types_pb2.DT_UINT16: np.uint16,
    types_pb2.DT_UINT32: np.uint32,
    types_pb2.DT_UINT64: np.uint64,
    types_pb2.DT_BOOL: np.bool_,
}
_DTYPES_BY_NUMPY = {np.dtype(value): key for key, value in _NUMPY_DTYPES.items()}

# The repeated field holding values when tensor_content is empty.
_VALUE_FIELDS = {
    types_pb2.DT_FLOAT: "float_val",
    types_pb2.DT_DOUBLE: "double_val",
    types_pb2.DT_HALF: "half_val",
    types_pb2.DT_INT8: "int_val",
    types_pb2.DT_INT16: "int_val",
    types_pb2.DT_INT32: "int_val",
    types_pb2.DT_UINT8: "int_val",
    types_pb2.DT_UINT16: "int_val",
    types_pb2.DT_INT64: "int64_val",
    types_pb2.DT_UINT32: "uint32_val",
    types_pb2.DT_UINT64: "uint64_val",
    types_pb2.DT_BOOL: "bool_val",
    types_pb2.DT_STRING: "string_val",
}


def dtype_name(dtype: int) -> str:
    """'float' for DT_FLOAT, as TensorFlow's error messages spell dtypes."""
    return types_pb2.DataType.Name(dtype)[3:].lower()


def to_ndarray(proto: tensor_pb2.TensorProto, alias: str) -> np.ndarray:
    """The numpy value of a request tensor; a malformed tensor is INVALID_ARGUMENT.

    Follows Tensor::FromProto: values listed in the repeated field fill the
    shape, the last one repeated when fewer are given.
    """
    if proto.dtype not in _VALUE_FIELDS:
        raise _parse_error(alias)
    shape = tuple(dim.size for dim in proto.tensor_shape.dim)
    if any(size < 0 for size in shape) or proto.tensor_shape.unknown_rank:
        raise _parse_error(alias)
    count = math.prod(shape)
    if proto.dtype == types_pb2.DT_STRING:
        if proto.tensor_content:
            raise _parse_error(alias)
        values = np.array(list(proto.string_val), dtype=object)
    elif proto.tensor_content:
        numpy_dtype = np.dtype(_NUMPY_DTYPES[proto.dtype])
        if len(proto.tensor_content) != count * numpy_dtype.itemsize:
            raise _parse_error(alias)
        return np.frombuffer(proto.tensor_content, dtype=numpy_dtype).reshape(shape)
    else:
        values = _repeated_values(proto)
    if values.size == count:
        return values.reshape(shape)
    # A few bytes of request may not expand into more memory than the largest
    # request accepted: that is how a malformed shape would take the server down.
    if values.size > count or count * values.itemsize > MAX_EXPANDED_TENSOR_BYTES:
        raise _parse_error(alias)
    if values.size == 0:  # TF fills with the dtype's zero value
        return np.full(shape, b"" if values.dtype == object else 0, dtype=values.dtype)
    filled = np.empty(count, dtype=values.dtype)
    filled[:values.size] = values
    filled[values.size:] = values[-1]
    return filled.reshape(shape)


def _parse_error(alias: str) -> errors.ServingError:
    return errors.invalid_argument(f"tensor parsing error: {alias}")


def _repeated_values(proto: tensor_pb2.TensorProto) -> np.ndarray:
    field = getattr(proto, _VALUE_FIELDS[proto.dtype])
    if proto.dtype == types_pb2.DT_HALF:
        return np.array(field, dtype=np.uint16).view(np.float16)
    return np.array(field, dtype=_NUMPY_DTYPES[proto.dtype])


def write_tensor_proto(array: np.ndarray, proto: tensor_pb2.TensorProto) -> None:
    """Fills `proto` (e.g. a response's map entry) with a numpy array: numeric data
    as raw bytes, strings listed."""
    shape = proto.tensor_shape
    shape.Clear()
    for size in array.shape:
        shape.dim.add().size = size
    if array.dtype == object or array.dtype.kind in ("S", "U"):
        proto.dtype = types_pb2.DT_STRING
        proto.string_val.extend(
            value if isinstance(value, bytes) else str(value).encode() for value in array.ravel())
        return
    dtype = _DTYPES_BY_NUMPY.get(array.dtype)
    if dtype is None:
        raise errors.internal(f"cannot encode an output of numpy dtype {array.dtype}")
    proto.dtype = dtype
    proto.tensor_content = np.ascontiguousarray(array).tobytes()


def to_tensor_proto(array: np.ndarray) -> tensor_pb2.TensorProto:
    """A new TensorProto holding a numpy array."""
    proto = tensor_pb2.TensorProto()
    write_tensor_proto(array, proto)
    return proto


def numpy_dtype_of(dtype: int):
    """The numpy dtype for a TF DataType enum, object for strings."""
    if dtype == types_pb2.DT_STRING:
        return np.dtype(object)
    return np.dtype(_NUMPY_DTYPES[dtype])

