"""numpy arrays to and from TensorProto messages, with TensorFlow's rules.

This is the message-level codec: correct for every dtype and both encodings (`tensor_content` and
the typed repeated fields), and the reference the wire-level fast paths are tested against.

Decoding follows TensorFlow's C++ `Tensor::FromProto`: values come from `tensor_content` when it is
set, else from the dtype's typed field, where fewer values than elements means the last value
repeats (so one value fills the whole tensor) and no values means zeros.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from layertap.errors import TensorFormatError
from layertap.proto import serving_pb2 as pb
from layertap.wire import dtypes

__all__ = [
    "FIELD_DTYPES",
    "MAX_BROADCAST_BYTES",
    "MAX_ELEMENTS",
    "array_to_proto",
    "element_count",
    "from_content",
    "from_values",
    "proto_to_array",
    "shape_of",
]

# A shape claiming more elements than this is refused before anything is allocated (2**40 elements
# is already far beyond any message gRPC can carry: messages are limited to 2 GiB).
MAX_ELEMENTS = 2**40

# Typed fields may hold fewer values than elements (the last one repeats), so a few bytes can claim
# a huge tensor. Expanding beyond gRPC's own 2 GiB message limit is refused before allocating.
MAX_BROADCAST_BYTES = 2**31


def shape_of(shape_proto: pb.TensorShapeProto) -> tuple[int, ...]:
    """The dimensions of a TensorShapeProto; TensorFormatError for negative or unknown dimensions."""
    if shape_proto.unknown_rank:
        raise TensorFormatError("tensor shape has unknown rank; a tensor on the wire needs a full shape")
    dims = tuple(dim.size for dim in shape_proto.dim)
    for dim in dims:
        if dim < 0:
            raise TensorFormatError(f"tensor shape {list(dims)} has a negative dimension")
    return dims


def element_count(shape: Sequence[int]) -> int:
    """The number of elements of a shape, refusing absurd ones without allocating."""
    count = 1
    for dim in shape:
        count *= dim
        if count > MAX_ELEMENTS:
            raise TensorFormatError(
                f"tensor shape {list(shape)} has more than {MAX_ELEMENTS} elements; refusing to allocate it"
            )
    return count


def array_to_proto(array: object, *, typed: bool = False) -> pb.TensorProto:
    """A TensorProto holding `array`.

    Args:
        array: anything numpy.asarray accepts; bytes and str arrays become DT_STRING.
        typed: write values to the dtype's typed field (TF Serving's default response encoding)
            instead of `tensor_content` (the compact encoding requests use).
    """
    values = np.asarray(array)
    info = dtypes.from_numpy(values.dtype)
    proto = pb.TensorProto(dtype=info.enum)  # type: ignore[arg-type]
    proto.tensor_shape.dim.extend(pb.TensorShapeProto.Dim(size=size) for size in values.shape)
    if info.enum == pb.DT_STRING:
        proto.string_val.extend(_as_bytes(item) for item in values.reshape(-1))
    elif not typed:
        proto.tensor_content = np.ascontiguousarray(values, dtype=info.numpy).tobytes()
    else:
        flat = np.ascontiguousarray(values, dtype=info.numpy).reshape(-1)
        field = getattr(proto, info.typed_field)
        if info.enum in dtypes.HALF_BITS:
            field.extend(flat.view(np.uint16).tolist())
        elif info.values_per_element == 2:
            field.extend(flat.view(flat.real.dtype).tolist())
        else:
            field.extend(flat.tolist())
    return proto


def proto_to_array(proto: pb.TensorProto) -> np.ndarray:
    """A new numpy array with the contents of `proto` (DT_STRING gives an object array of bytes)."""
    info = dtypes.from_proto(proto.dtype)
    shape = shape_of(proto.tensor_shape)
    if info.enum == pb.DT_STRING:
        strings = np.empty(len(proto.string_val), dtype=object)
        strings[:] = list(proto.string_val)
        return from_values(info, shape, strings)
    if proto.tensor_content:
        return from_content(info, shape, proto.tensor_content).copy()
    field = FIELD_DTYPES[info.typed_field]
    return from_values(info, shape, np.array(getattr(proto, info.typed_field), dtype=field))


# The numpy type of each typed TensorProto field's values, as protobuf hands them over.
FIELD_DTYPES: dict[str, np.dtype[np.generic]] = {
    name: np.dtype(kind)
    for name, kind in (
        ("float_val", "<f4"),
        ("double_val", "<f8"),
        ("scomplex_val", "<f4"),
        ("dcomplex_val", "<f8"),
        ("half_val", "<i4"),
        ("int_val", "<i4"),
        ("int64_val", "<i8"),
        ("uint32_val", "<u4"),
        ("uint64_val", "<u8"),
        ("bool_val", "?"),
        ("string_val", "O"),
    )
}


def from_content(info: dtypes.DtypeInfo, shape: tuple[int, ...], content: object) -> np.ndarray:
    """A read-only view of `tensor_content` bytes as an array of `shape` (no copy).

    Raises:
        TensorFormatError: the content's length disagrees with the shape.
    """
    count = element_count(shape)
    view = memoryview(content)  # type: ignore[arg-type]
    expected = count * info.numpy.itemsize
    if view.nbytes != expected:
        raise TensorFormatError(
            f"tensor_content has {view.nbytes} bytes but shape {list(shape)} of {info.name} needs {expected}"
        )
    return np.frombuffer(view, dtype=info.numpy).reshape(shape)


def from_values(info: dtypes.DtypeInfo, shape: tuple[int, ...], values: np.ndarray) -> np.ndarray:
    """An array of `shape` from a typed field's values, with TensorFlow's rules.

    Fewer values than elements: the last one repeats; none: zeros (empty bytes for strings).
    Returns `values` itself (reshaped) when nothing needs converting.

    Raises:
        TensorFormatError: more values than elements, values out of the dtype's range, an odd
            count of complex parts, or an expansion past MAX_BROADCAST_BYTES.
    """
    count = element_count(shape)
    if count * info.numpy.itemsize > MAX_BROADCAST_BYTES and values.size < count:
        raise TensorFormatError(
            f"{info.name} tensor of shape {list(shape)} would expand to {count * info.numpy.itemsize} "
            f"bytes from {values.size} typed values; at most {MAX_BROADCAST_BYTES} bytes are accepted"
        )
    values = _convert(info, values)
    if values.size > count:
        raise TensorFormatError(
            f"{info.name} tensor of shape {list(shape)} holds {values.size} values in "
            f"{info.typed_field}, more than its {count} elements"
        )
    if values.size == 0:
        if info.enum == pb.DT_STRING:
            return np.full(shape, b"", dtype=object)
        return np.zeros(shape, dtype=info.numpy)
    if values.size < count:
        values = np.concatenate([values, np.full(count - values.size, values[-1], dtype=values.dtype)])
    return values.reshape(shape)


def _convert(info: dtypes.DtypeInfo, values: np.ndarray) -> np.ndarray:
    """Typed-field values as the tensor's dtype (half bits, complex pairs, narrower integers)."""
    if info.enum in dtypes.HALF_BITS:
        return _narrow(values, np.dtype(np.uint16), info).view(info.numpy)
    if info.values_per_element == 2:
        if values.size % 2:
            raise TensorFormatError(
                f"{info.typed_field} holds {values.size} values; {info.name} needs real and "
                "imaginary parts in pairs"
            )
        return np.ascontiguousarray(values).view(info.numpy)
    if values.dtype.kind in "iu" and values.dtype != info.numpy:
        return _narrow(values, info.numpy, info)
    return values


def _narrow(values: np.ndarray, target: np.dtype[np.generic], info: dtypes.DtypeInfo) -> np.ndarray:
    if values.size:
        limits = np.iinfo(target)  # type: ignore[type-var]
        low, high = values.min(), values.max()
        if low < limits.min or high > limits.max:
            raise TensorFormatError(
                f"{info.typed_field} of a {info.name} tensor holds values in [{low}, {high}]; "
                f"accepted: [{limits.min}, {limits.max}]"
            )
    return values.astype(target)


def _as_bytes(item: object) -> bytes:
    if isinstance(item, bytes):
        return item
    if isinstance(item, str):
        return item.encode("utf-8")
    raise TensorFormatError(f"string tensors hold bytes or str, got {type(item).__name__}")
