"""TF Serving's messages spell DataTypes as TensorFlow's DataTypeString (`core/framework/types.cc`)."""

from __future__ import annotations

from layertap.proto import serving_pb2 as pb
from layertap.wire.dtypes import tf_type_name


def test_every_datatype_is_spelled_as_tensorflow_spells_it() -> None:
    spelled = {name: tf_type_name(value) for name, value in pb.DataType.items()}
    assert spelled == {
        "DT_INVALID": "unknown dtype enum (0)",
        "DT_FLOAT": "float",
        "DT_DOUBLE": "double",
        "DT_INT32": "int32",
        "DT_UINT8": "uint8",
        "DT_INT16": "int16",
        "DT_INT8": "int8",
        "DT_STRING": "string",
        "DT_COMPLEX64": "complex64",
        "DT_INT64": "int64",
        "DT_BOOL": "bool",
        "DT_QINT8": "qint8",
        "DT_QUINT8": "quint8",
        "DT_QINT32": "qint32",
        "DT_BFLOAT16": "bfloat16",
        "DT_QINT16": "qint16",
        "DT_QUINT16": "quint16",
        "DT_UINT16": "uint16",
        "DT_COMPLEX128": "complex128",
        "DT_HALF": "half",
        "DT_RESOURCE": "resource",
        "DT_VARIANT": "variant",
        "DT_UINT32": "uint32",
        "DT_UINT64": "uint64",
    }
    assert tf_type_name(99) == "unknown dtype enum (99)"
