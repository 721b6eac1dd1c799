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
    "MAX_BROADCAST_BYTES",
    "MAX_ELEMENTS",
    "array_to_proto",
    "element_count",
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
        if info.enum == pb.DT_HALF:
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
    count = element_count(shape)
    if info.enum == pb.DT_STRING:
        _check_expansion(count, info.numpy.itemsize, shape, proto)
        strings = np.empty(len(proto.string_val), dtype=object)
        strings[:] = list(proto.string_val)
        if strings.size == 0:
            return np.full(shape, b"", dtype=object)
        return _fill(strings, count, shape, proto)
    if proto.tensor_content:
        expected = count * info.numpy.itemsize
        if len(proto.tensor_content) != expected:
            raise TensorFormatError(
                f"tensor_content has {len(proto.tensor_content)} bytes but shape {list(shape)} of "
                f"{info.name} needs {expected}"
            )
        return np.frombuffer(proto.tensor_content, dtype=info.numpy).reshape(shape).copy()
    raw = getattr(proto, info.typed_field)
    _check_expansion(count, info.numpy.itemsize, shape, proto)
    if info.enum == pb.DT_HALF:
        values = np.array(raw, dtype=np.uint16).view(np.float16)
    elif info.values_per_element == 2:
        parts = np.array(raw, dtype=info.numpy.type(0).real.dtype)
        if parts.size % 2:
            raise TensorFormatError(f"{info.typed_field} has an odd number of values for {info.name}")
        values = parts.view(info.numpy)
    else:
        values = np.array(raw, dtype=info.numpy)
    if values.size == 0:
        return np.zeros(shape, dtype=info.numpy)
    return _fill(values, count, shape, proto)


def _check_expansion(count: int, itemsize: int, shape: tuple[int, ...], proto: pb.TensorProto) -> None:
    if count * itemsize > MAX_BROADCAST_BYTES:
        raise TensorFormatError(
            f"{dtypes.name_of(proto.dtype)} tensor of shape {list(shape)} would expand to "
            f"{count * itemsize} bytes from its typed values; at most {MAX_BROADCAST_BYTES} are accepted"
        )


def _fill(values: np.ndarray, count: int, shape: tuple[int, ...], proto: pb.TensorProto) -> np.ndarray:
    """Apply TensorFlow's rule for typed fields: the last value repeats up to the element count."""
    if values.size > count:
        raise TensorFormatError(
            f"{dtypes.name_of(proto.dtype)} tensor of shape {list(shape)} holds {values.size} values, "
            f"more than its {count} elements"
        )
    if values.size < count:
        values = np.concatenate([values, np.full(count - values.size, values[-1], dtype=values.dtype)])
    return values.reshape(shape)


def _as_bytes(item: object) -> bytes:
    if isinstance(item, bytes):
        return item
    if isinstance(item, str):
        return item.encode("utf-8")
    raise TensorFormatError(f"string tensors hold bytes or str, got {type(item).__name__}")
