"""TensorFlow's graph messages, read without TensorFlow: the subset `compat` and the op registries need.

The schema is declared here in code (as `layertap.config.repository` does for signatures), with TensorFlow's
field numbers from tensorflow/core/framework/{graph,node_def,attr_value,function,op_def,versions}.proto and
tensorflow/core/protobuf/{saved_model,meta_graph}.proto. `DataType`, `TensorShapeProto` and `TensorProto` are
layertap's own declarations (layertap/proto/serving.proto). Fields not declared are skipped by protobuf.
Map fields are repeated key/value entry messages, which is what a map is on the wire.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

from layertap.proto import serving_pb2

__all__ = ["ATTR_VALUE", "OP_LIST", "SAVED_MODEL"]

_PACKAGE = "layertap.config.graph_subset"
_F = descriptor_pb2.FieldDescriptorProto
_STRING, _BYTES, _INT64, _INT32, _FLOAT, _BOOL, _MESSAGE, _ENUM = (
    _F.TYPE_STRING,
    _F.TYPE_BYTES,
    _F.TYPE_INT64,
    _F.TYPE_INT32,
    _F.TYPE_FLOAT,
    _F.TYPE_BOOL,
    _F.TYPE_MESSAGE,
    _F.TYPE_ENUM,
)
_ONE, _MANY = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
_OURS, _SERVING = f".{_PACKAGE}.", ".layertap.serving."
DATA_TYPE = _SERVING + "DataType"

# message -> fields (name, number, type, label, type name, oneof index or None)
_Field = tuple[str, int, int, int, str, int | None]
_LAYOUT: dict[str, tuple[list[_Field], list[str]]] = {
    "NameAttrList": (
        [("name", 1, _STRING, _ONE, "", None), ("attr", 2, _MESSAGE, _MANY, _OURS + "AttrEntry", None)],
        [],
    ),
    "ListValue": (
        [
            ("s", 2, _BYTES, _MANY, "", None),
            ("i", 3, _INT64, _MANY, "", None),
            ("f", 4, _FLOAT, _MANY, "", None),
            ("b", 5, _BOOL, _MANY, "", None),
            ("type", 6, _ENUM, _MANY, DATA_TYPE, None),
            ("shape", 7, _MESSAGE, _MANY, _SERVING + "TensorShapeProto", None),
            ("tensor", 8, _MESSAGE, _MANY, _SERVING + "TensorProto", None),
            ("func", 9, _MESSAGE, _MANY, _OURS + "NameAttrList", None),
        ],
        [],
    ),
    "AttrValue": (
        [
            ("list", 1, _MESSAGE, _ONE, _OURS + "ListValue", 0),
            ("s", 2, _BYTES, _ONE, "", 0),
            ("i", 3, _INT64, _ONE, "", 0),
            ("f", 4, _FLOAT, _ONE, "", 0),
            ("b", 5, _BOOL, _ONE, "", 0),
            ("type", 6, _ENUM, _ONE, DATA_TYPE, 0),
            ("shape", 7, _MESSAGE, _ONE, _SERVING + "TensorShapeProto", 0),
            ("tensor", 8, _MESSAGE, _ONE, _SERVING + "TensorProto", 0),
            ("placeholder", 9, _STRING, _ONE, "", 0),
            ("func", 10, _MESSAGE, _ONE, _OURS + "NameAttrList", 0),
        ],
        ["value"],
    ),
    "AttrEntry": (
        [("key", 1, _STRING, _ONE, "", None), ("value", 2, _MESSAGE, _ONE, _OURS + "AttrValue", None)],
        [],
    ),
    "NodeDef": (
        [
            ("name", 1, _STRING, _ONE, "", None),
            ("op", 2, _STRING, _ONE, "", None),
            ("attr", 5, _MESSAGE, _MANY, _OURS + "AttrEntry", None),
        ],
        [],
    ),
    "ArgDef": ([("name", 1, _STRING, _ONE, "", None), ("type", 3, _ENUM, _ONE, DATA_TYPE, None)], []),
    "OpAttrDef": (
        [
            ("name", 1, _STRING, _ONE, "", None),
            ("type", 2, _STRING, _ONE, "", None),
            ("default_value", 3, _MESSAGE, _ONE, _OURS + "AttrValue", None),
            ("has_minimum", 5, _BOOL, _ONE, "", None),
            ("minimum", 6, _INT64, _ONE, "", None),
            ("allowed_values", 7, _MESSAGE, _ONE, _OURS + "AttrValue", None),
        ],
        [],
    ),
    "OpDef": (
        [
            ("name", 1, _STRING, _ONE, "", None),
            ("input_arg", 2, _MESSAGE, _MANY, _OURS + "ArgDef", None),
            ("output_arg", 3, _MESSAGE, _MANY, _OURS + "ArgDef", None),
            ("attr", 4, _MESSAGE, _MANY, _OURS + "OpAttrDef", None),
        ],
        [],
    ),
    "OpList": ([("op", 1, _MESSAGE, _MANY, _OURS + "OpDef", None)], []),
    "FunctionDef": (
        [
            ("signature", 1, _MESSAGE, _ONE, _OURS + "OpDef", None),
            ("node_def", 3, _MESSAGE, _MANY, _OURS + "NodeDef", None),
        ],
        [],
    ),
    "FunctionDefLibrary": ([("function", 1, _MESSAGE, _MANY, _OURS + "FunctionDef", None)], []),
    "VersionDef": (
        [("producer", 1, _INT32, _ONE, "", None), ("min_consumer", 2, _INT32, _ONE, "", None)],
        [],
    ),
    "GraphDef": (
        [
            ("node", 1, _MESSAGE, _MANY, _OURS + "NodeDef", None),
            ("library", 2, _MESSAGE, _ONE, _OURS + "FunctionDefLibrary", None),
            ("versions", 4, _MESSAGE, _ONE, _OURS + "VersionDef", None),
        ],
        [],
    ),
    "TensorInfo": (
        [
            ("name", 1, _STRING, _ONE, "", None),
            ("dtype", 2, _ENUM, _ONE, DATA_TYPE, None),
            ("tensor_shape", 3, _MESSAGE, _ONE, _SERVING + "TensorShapeProto", None),
        ],
        [],
    ),
    "TensorInfoEntry": (
        [("key", 1, _STRING, _ONE, "", None), ("value", 2, _MESSAGE, _ONE, _OURS + "TensorInfo", None)],
        [],
    ),
    "SignatureDef": (
        [
            ("inputs", 1, _MESSAGE, _MANY, _OURS + "TensorInfoEntry", None),
            ("outputs", 2, _MESSAGE, _MANY, _OURS + "TensorInfoEntry", None),
            ("method_name", 3, _STRING, _ONE, "", None),
        ],
        [],
    ),
    "SignatureEntry": (
        [("key", 1, _STRING, _ONE, "", None), ("value", 2, _MESSAGE, _ONE, _OURS + "SignatureDef", None)],
        [],
    ),
    "MetaInfoDef": (
        [
            ("tags", 4, _STRING, _MANY, "", None),
            ("tensorflow_version", 5, _STRING, _ONE, "", None),
            ("tensorflow_git_version", 6, _STRING, _ONE, "", None),
        ],
        [],
    ),
    "MetaGraphDef": (
        [
            ("meta_info_def", 1, _MESSAGE, _ONE, _OURS + "MetaInfoDef", None),
            ("graph_def", 2, _MESSAGE, _ONE, _OURS + "GraphDef", None),
            ("signature_def", 5, _MESSAGE, _MANY, _OURS + "SignatureEntry", None),
        ],
        [],
    ),
    "SavedModel": ([("meta_graphs", 2, _MESSAGE, _MANY, _OURS + "MetaGraphDef", None)], []),
}


def _build() -> dict[str, type[Message]]:
    file = descriptor_pb2.FileDescriptorProto(name="layertap/config/graph_subset.proto", package=_PACKAGE)
    file.syntax = "proto3"
    file.dependency.append(serving_pb2.DESCRIPTOR.name)
    for name, (fields, oneofs) in _LAYOUT.items():
        declared = file.message_type.add(name=name)
        for oneof in oneofs:
            declared.oneof_decl.add(name=oneof)
        for field_name, number, kind, label, type_name, oneof_index in fields:
            field = declared.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                field.type_name = type_name
            if oneof_index is not None:
                field.oneof_index = oneof_index
    # The default pool holds serving.proto, which this file imports.
    pool = descriptor_pool.Default()
    pool.AddSerializedFile(file.SerializeToString())
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{name}"))
        for name in _LAYOUT
    }


_CLASSES = _build()
SAVED_MODEL = _CLASSES["SavedModel"]
OP_LIST = _CLASSES["OpList"]
ATTR_VALUE = _CLASSES["AttrValue"]
