"""The one table between TensorFlow's DataType enum and numpy dtypes, which TensorProto field carries each
dtype's values when they are not in `tensor_content`, and TensorFlow's own spelling of each DataType."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from layertap.errors import TensorFormatError
from layertap.proto import serving_pb2 as pb

__all__ = [
    "DTYPES",
    "HALF_BITS",
    "DtypeInfo",
    "from_numpy",
    "from_proto",
    "name_of",
    "supported_names",
    "tf_type_name",
]


@dataclass(frozen=True)
class DtypeInfo:
    """How one DataType is represented.

    Attributes:
        enum: the DataType value on the wire.
        name: TensorFlow's spelling ("float32", "int64", ...).
        numpy_name: the numpy dtype's spelling, little-endian ("O" holds bytes objects for DT_STRING);
            "bfloat16" is ml_dtypes' type, imported the first time `numpy` is read (importing
            ml_dtypes costs ~0.5 s, more than the rest of layertap.client).
        typed_field: the repeated TensorProto field TF Serving writes values to by default.
        values_per_element: 2 for complex types, whose real and imaginary parts are stored side by side.
    """

    enum: int
    name: str
    numpy_name: str = field(repr=False)
    typed_field: str
    values_per_element: int = 1

    @cached_property
    def numpy(self) -> np.dtype[np.generic]:
        """The numpy dtype."""
        if self.numpy_name == "bfloat16":
            import ml_dtypes  # numpy has no bfloat16

            bfloat16: np.dtype[np.generic] = np.dtype(ml_dtypes.bfloat16)
            return bfloat16
        return np.dtype(self.numpy_name)


DTYPES: dict[int, DtypeInfo] = {
    info.enum: info
    for info in (
        DtypeInfo(pb.DT_FLOAT, "float32", "<f4", "float_val"),
        DtypeInfo(pb.DT_DOUBLE, "float64", "<f8", "double_val"),
        DtypeInfo(pb.DT_HALF, "float16", "<f2", "half_val"),
        DtypeInfo(pb.DT_INT8, "int8", "i1", "int_val"),
        DtypeInfo(pb.DT_INT16, "int16", "<i2", "int_val"),
        DtypeInfo(pb.DT_INT32, "int32", "<i4", "int_val"),
        DtypeInfo(pb.DT_INT64, "int64", "<i8", "int64_val"),
        DtypeInfo(pb.DT_UINT8, "uint8", "u1", "int_val"),
        DtypeInfo(pb.DT_UINT16, "uint16", "<u2", "int_val"),
        DtypeInfo(pb.DT_UINT32, "uint32", "<u4", "uint32_val"),
        DtypeInfo(pb.DT_UINT64, "uint64", "<u8", "uint64_val"),
        DtypeInfo(pb.DT_BOOL, "bool", "?", "bool_val"),
        DtypeInfo(pb.DT_COMPLEX64, "complex64", "<c8", "scomplex_val", 2),
        DtypeInfo(pb.DT_COMPLEX128, "complex128", "<c16", "dcomplex_val", 2),
        DtypeInfo(pb.DT_STRING, "string", "O", "string_val"),
        # Like float16, bfloat16's bits travel in `half_val`.
        DtypeInfo(pb.DT_BFLOAT16, "bfloat16", "bfloat16", "half_val"),
    )
}

# DataTypes whose 16-bit patterns travel in `half_val`, one per int32 slot.
HALF_BITS = frozenset({pb.DT_HALF, pb.DT_BFLOAT16})

# Where TensorFlow's DataTypeString differs from the names above (`tensorflow/core/framework/types.cc`).
_TF_SPELLINGS: dict[int, str] = {pb.DT_FLOAT: "float", pb.DT_DOUBLE: "double", pb.DT_HALF: "half"}

# bfloat16 is left out so that building this table does not import ml_dtypes; a bfloat16 array exists
# only once its caller imported ml_dtypes, and from_numpy finds it by name.
_BY_NUMPY: dict[np.dtype[np.generic], DtypeInfo] = {
    info.numpy.newbyteorder("="): info
    for info in DTYPES.values()
    if info.enum not in (pb.DT_STRING, pb.DT_BFLOAT16)
}


def supported_names() -> str:
    """The dtype names layertap converts, for error messages."""
    return ", ".join(info.name for info in DTYPES.values())


def from_proto(enum: int) -> DtypeInfo:
    """The DtypeInfo for a DataType value; TensorFormatError for one layertap cannot convert."""
    try:
        return DTYPES[enum]
    except KeyError:
        raise TensorFormatError(
            f"unsupported tensor dtype {name_of(enum)}; supported: {supported_names()}"
        ) from None


def from_numpy(dtype: np.dtype[np.generic]) -> DtypeInfo:
    """The DtypeInfo for a numpy dtype. Bytes and str arrays map to DT_STRING."""
    if dtype.kind in "OSU":
        return DTYPES[pb.DT_STRING]
    try:
        return _BY_NUMPY[dtype.newbyteorder("=")]
    except KeyError:
        if dtype.name == "bfloat16":
            return DTYPES[pb.DT_BFLOAT16]
        raise TensorFormatError(
            f"numpy dtype {dtype} has no TensorFlow DataType; supported: {supported_names()}"
        ) from None


def name_of(enum: int) -> str:
    """A readable name for any DataType value, known to layertap or not ("DT_BFLOAT16", "DataType(99)")."""
    if enum in DTYPES:
        return DTYPES[enum].name
    try:
        return pb.DataType.Name(enum)  # type: ignore[arg-type]
    except ValueError:
        return f"DataType({enum})"


def tf_type_name(enum: int) -> str:
    """TensorFlow's DataTypeString ("float", "half", "int32", "qint8"), as TF Serving's messages spell it.

    TensorFlow names a type numpy has after numpy, except float, double and half, and any other type by its
    enum name in lower case; a value that is no DataType reads "unknown dtype enum (N)", as in TensorFlow.
    """
    if enum in _TF_SPELLINGS:
        return _TF_SPELLINGS[enum]
    if enum in DTYPES:
        return DTYPES[enum].name
    try:
        name = pb.DataType.Name(enum)  # type: ignore[arg-type]
    except ValueError:
        name = "DT_INVALID"
    if name == "DT_INVALID":
        return f"unknown dtype enum ({enum})"
    return name.removeprefix("DT_").lower()
