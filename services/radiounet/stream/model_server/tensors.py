"""``TensorProto`` <-> NumPy, without ``tf.make_tensor_proto`` (slow on megabyte tensors).

Numeric tensors travel as raw little-endian bytes in ``tensor_content``, what
TF Serving sends back; requests written with the typed ``*_val`` fields (as
``tf.make_tensor_proto`` does for small tensors) are read too.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._protos import tensor_pb2, tensor_shape_pb2, types_pb2
from .status import ServingError

__all__ = ["dtype_name", "from_ndarray", "proto_shape", "to_ndarray"]

_NUMPY: dict[int, np.dtype[Any]] = {
    types_pb2.DT_FLOAT: np.dtype("<f4"),
    types_pb2.DT_DOUBLE: np.dtype("<f8"),
    types_pb2.DT_HALF: np.dtype("<f2"),
    types_pb2.DT_INT8: np.dtype("i1"),
    types_pb2.DT_INT16: np.dtype("<i2"),
    types_pb2.DT_INT32: np.dtype("<i4"),
    types_pb2.DT_INT64: np.dtype("<i8"),
    types_pb2.DT_UINT8: np.dtype("u1"),
    types_pb2.DT_UINT16: np.dtype("<u2"),
    types_pb2.DT_UINT32: np.dtype("<u4"),
    types_pb2.DT_UINT64: np.dtype("<u8"),
    types_pb2.DT_BOOL: np.dtype("?"),
}
_BY_KIND = {(dt.kind, dt.itemsize): code for code, dt in _NUMPY.items()}
# The typed field each dtype uses when tensor_content is empty (see tensor.proto).
_VALUE_FIELD = {
    types_pb2.DT_FLOAT: "float_val",
    types_pb2.DT_DOUBLE: "double_val",
    types_pb2.DT_HALF: "half_val",
    types_pb2.DT_INT8: "int_val",
    types_pb2.DT_INT16: "int_val",
    types_pb2.DT_INT32: "int_val",
    types_pb2.DT_INT64: "int64_val",
    types_pb2.DT_UINT8: "int_val",
    types_pb2.DT_UINT16: "int_val",
    types_pb2.DT_UINT32: "uint32_val",
    types_pb2.DT_UINT64: "uint64_val",
    types_pb2.DT_BOOL: "bool_val",
}


def dtype_name(code: int) -> str:
    """``DT_FLOAT`` for 1, and so on; ``DT_<code>`` for unknown codes."""
    try:
        return str(types_pb2.DataType.Name(code))
    except ValueError:
        return f"DT_{code}"


def proto_shape(shape: Any) -> tuple[int, ...] | None:
    """The dimensions of a ``TensorShapeProto`` (-1 = unknown); ``None`` for unknown rank."""
    if shape.unknown_rank:
        return None
    return tuple(int(d.size) for d in shape.dim)


def to_ndarray(proto: Any, name: str = "tensor") -> NDArray[Any]:
    """Decode a ``TensorProto``.

    Raises
    ------
    ServingError
        INVALID_ARGUMENT for an unsupported dtype or values that do not fill the shape.
    """
    dtype = _NUMPY.get(proto.dtype)
    if dtype is None:
        raise ServingError.invalid_argument(
            f"input {name!r}: dtype {dtype_name(proto.dtype)} is not supported"
        )
    shape = proto_shape(proto.tensor_shape)
    if shape is None or any(d < 0 for d in shape):
        raise ServingError.invalid_argument(f"tensor parsing error: {name} has no full shape")
    size = math.prod(shape)
    if proto.tensor_content:
        if len(proto.tensor_content) != size * dtype.itemsize:
            raise ServingError.invalid_argument(
                f"tensor parsing error: {name}: {len(proto.tensor_content)} bytes of content "
                f"for shape {list(shape)} of {dtype_name(proto.dtype)}"
            )
        flat = np.frombuffer(proto.tensor_content, dtype=dtype)
    else:
        values = getattr(proto, _VALUE_FIELD[proto.dtype])
        if proto.dtype == types_pb2.DT_HALF:  # half_val holds the raw 16 bits as ints
            flat = np.asarray(values, dtype=np.uint16).view(dtype)
        else:
            flat = np.asarray(values, dtype=dtype)
        if flat.size > size:
            raise ServingError.invalid_argument(
                f"tensor parsing error: {name}: {flat.size} values for shape {list(shape)}"
            )
        if 0 < flat.size < size:  # TensorFlow repeats the last value to fill the shape
            flat = np.concatenate([flat, np.full(size - flat.size, flat[-1], dtype=dtype)])
        elif flat.size == 0:
            flat = np.zeros(size, dtype=dtype)
    return flat.reshape(shape)


def from_ndarray(array: NDArray[Any]) -> Any:
    """Encode an array as a ``TensorProto`` with ``tensor_content``.

    Raises
    ------
    ValueError
        For a dtype TensorFlow has no code for here.
    """
    array = np.asarray(array)
    code = _BY_KIND.get((array.dtype.kind, array.dtype.itemsize))
    if code is None:
        raise ValueError(f"cannot encode an array of dtype {array.dtype}")
    little = np.ascontiguousarray(array, dtype=_NUMPY[code])
    return tensor_pb2.TensorProto(
        dtype=code,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=int(s)) for s in little.shape]
        ),
        tensor_content=little.tobytes(),
    )
