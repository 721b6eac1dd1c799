"""The status and metadata JSON of TF Serving's REST API, field by field.

TF Serving prints these messages with protobuf's C++ JSON printer, `always_print_primitive_fields`
on (`http_rest_api_util.cc`): every scalar, repeated and map field appears even at its default
(`"name": ""`, `"unknown_rank": false`, `"dim": []`, `"defaults": {}`), 64-bit integers and
Int64Value wrappers as strings, enums by name, fields in declaration order with the members of a
oneof after the others (as its printer orders them), one-space indents. Metadata uses the proto
field names and is assembled from two printed messages, exactly as TF Serving concatenates them.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from layertap.proto import serving_pb2 as pb

__all__ = ["message_json", "metadata_body", "status_body"]

_STATE_NAMES = {value: name for name, value in pb.ModelVersionStatus.State.items()}
# tensorflow.error.Code names, which StatusProto.error_code prints (layertap declares it int32).
_CODE_NAMES = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
]
_WRAPPERS = {"google.protobuf.Int64Value", "google.protobuf.UInt64Value"}
_SIXTY_FOUR_BITS = {
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED64,
    FieldDescriptor.TYPE_SFIXED64,
}


def message_json(message: Message) -> dict[str, Any]:
    """`message` as protobuf's C++ printer with always-print-primitive-fields and proto field names."""
    descriptor = message.DESCRIPTOR
    if descriptor.full_name in _WRAPPERS:
        return str(message.value)  # type: ignore[attr-defined,return-value]
    plain = [field for field in descriptor.fields if field.containing_oneof is None]
    chosen = [
        descriptor.fields_by_name[name]
        for oneof in descriptor.oneofs
        if (name := message.WhichOneof(oneof.name)) is not None
    ]
    out: dict[str, Any] = {}
    for field in plain + chosen:
        value = getattr(message, field.name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            out[field.name] = {str(key): _scalar(value_field, value[key]) for key in sorted(value)}
        elif _repeated(field):
            out[field.name] = [_scalar(field, item) for item in value]
        elif field.message_type is not None:
            if message.HasField(field.name):  # unset messages are not primitive fields
                out[field.name] = message_json(value)
        else:
            out[field.name] = _scalar(field, value)
    return out


def _repeated(field: Any) -> bool:
    flag = getattr(field, "is_repeated", None)
    return bool(flag) if flag is not None else bool(field.label == FieldDescriptor.LABEL_REPEATED)


def _scalar(field: Any, value: Any) -> Any:
    if field.message_type is not None:
        return message_json(value)
    if field.enum_type is not None:
        number = field.enum_type.values_by_number.get(value)
        return number.name if number is not None else value
    if field.type in _SIXTY_FOUR_BITS:
        return str(value)
    if field.type == FieldDescriptor.TYPE_BYTES:
        return base64.b64encode(value).decode("ascii")
    return value


def _printed(value: Any) -> str:
    # C++'s add_whitespace: one-space indents, a newline after the closing brace.
    return json.dumps(value, indent=1, ensure_ascii=False) + "\n"


def metadata_body(spec: pb.ModelSpec, signatures: pb.SignatureDefMap) -> bytes:
    """GET .../metadata: TF Serving prints model_spec and the SignatureDefMap separately and joins
    them into one object (`http_rest_api_util.cc`'s ToJsonString)."""
    return (
        '{\n"model_spec":'
        + _printed(message_json(spec))
        + ',\n"metadata": {"signature_def": '
        + _printed(message_json(signatures))
        + "}\n}\n"
    ).encode()


def status_body(versions: list[pb.ModelVersionStatus]) -> bytes:
    """GET /v1/models/M[/versions/V]: GetModelStatusResponse, its json_name spellings included."""
    rows = []
    for status in versions:
        code = status.status.error_code
        rows.append(
            {
                "version": str(status.version),
                "state": _STATE_NAMES.get(status.state, str(status.state)),
                "status": {
                    "error_code": _CODE_NAMES[code] if 0 <= code < len(_CODE_NAMES) else str(code),
                    "error_message": status.status.error_message,
                },
            }
        )
    return _printed({"model_version_status": rows}).encode()
