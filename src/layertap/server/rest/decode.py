"""Request bodies of TF Serving's REST API read as TF Serving reads them (`util/json_tensor.cc`).

`:predict` takes `{"signature_name", "instances"}` (row format: a list with one entry per batch item,
objects by input alias when the signature has several inputs) or `{"inputs"}` (columnar); tensors
are dense, their shape read off the first element of each level, their values checked against the
signature's dtype. `:classify` and `:regress` take `{"signature_name", "context", "examples"}`, each
example a JSON object of features. Every refusal is a StatusError, INVALID_ARGUMENT with TF
Serving's message (a dtype its parser cannot read is UNIMPLEMENTED); the messages quote the offending
JSON as TF Serving does, arrays on one line, cut after 256 bytes.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from layertap.proto import serving_pb2 as pb
from layertap.server.rest.encode import debug_string
from layertap.server.status import InvalidArgument, StatusError, Unimplemented
from layertap.wire.dtypes import DTYPES, tf_type_name

__all__ = [
    "INT64_MAX",
    "Format",
    "is_b64",
    "json_type",
    "leaf",
    "parse_body",
    "predict_inputs",
    "signature_name",
]

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
INT64_MAX = _INT64[1]
_UINT32 = (0, 2**32 - 1)
_UINT64 = (0, 2**64 - 1)
# numpy cannot hold more dimensions; TensorFlow's own limit is 254.
_MAX_RANK = 64
# Python's parser recurses per level of nesting; deeper documents are refused, not crashed on.
_MAX_DEPTH = 512
# What Python's json module says -> rapidjson's English messages, which TF Serving quotes.
_PARSE_ERRORS = {
    "Expecting value": "Invalid value.",
    "Expecting property name enclosed in double quotes": "Missing a name for object member.",
    "Expecting ':' delimiter": "Missing a colon after a name of object member.",
    "Unterminated string starting at": "Missing a closing quotation mark in string.",
    "Invalid \\escape": "Invalid escape character in string.",
    "Invalid \\uXXXX escape": "Incorrect hex digit after \\u escape in string.",
    "Invalid control character at": "Invalid encoding in string.",
}
_INT_KINDS: dict[int, tuple[int, int]] = {
    pb.DT_INT32: _INT32,
    pb.DT_INT16: _INT32,
    pb.DT_INT8: _INT32,
    pb.DT_UINT8: _INT32,
    pb.DT_INT64: _INT64,
    pb.DT_UINT32: _UINT32,
    pb.DT_UINT64: _UINT64,
}
# The numeric DataTypes the JSON reader converts (json_tensor.cc's AddValueToTensor); strings apart.
_NUMERIC = frozenset({pb.DT_FLOAT, pb.DT_DOUBLE, pb.DT_BOOL, *_INT_KINDS})


class Format(enum.Enum):
    """How a :predict request gave its inputs, which is how the answer gives its outputs."""

    ROW = "instances"
    COLUMNAR = "inputs"


_invalid = InvalidArgument


def _status_text(error: StatusError) -> str:
    """absl::Status::ToString(): "CODE: message", as TF Serving nests one error in another."""
    return f"{error.status.name}: {error.message}"


def json_type(value: Any) -> str:
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


def _parse_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError("Number too big to be stored in double.")
    return value


def _parse_int(text: str) -> int | float:
    value = int(text)
    # rapidjson keeps integers beyond 64 bits as doubles.
    return value if _INT64[0] <= value <= _UINT64[1] else _parse_float(text)


def parse_body(body: bytes) -> dict[str, Any]:
    """ParseJson: the body as a JSON object (text after the first value is ignored, as rapidjson's
    kParseStopWhenDoneFlag does; NaN and Infinity are numbers).

    Raises:
        InvalidArgument: `JSON Parse error: ...` or `JSON Value: ... Is not object`.
    """
    if not body:
        raise _invalid("JSON Parse error: The document is empty")
    # rapidjson does not validate UTF-8; surrogateescape keeps every byte for string tensors.
    text = body.decode("utf-8", "surrogateescape")
    start = len(text) - len(text.lstrip(" \t\n\r"))
    if start == len(text):
        raise _invalid(f"JSON Parse error: The document is empty. at offset: {len(body)}")
    decoder = json.JSONDecoder(parse_float=_parse_float, parse_int=_parse_int)
    try:
        document, _ = decoder.raw_decode(text, start)
    except json.JSONDecodeError as error:
        reason = next((v for k, v in _PARSE_ERRORS.items() if error.msg.startswith(k)), None)
        if reason is None and error.msg.startswith("Expecting ',' delimiter"):
            reason = "Missing a comma or '" + _closer(text, error.pos) + "' after an element."
        offset = len(text[: error.pos].encode("utf-8", "surrogateescape"))
        raise _invalid(f"JSON Parse error: {reason or error.msg} at offset: {offset}") from None
    except ValueError as error:  # a number beyond a double
        raise _invalid(f"JSON Parse error: {error} at offset: {start}") from None
    except RecursionError:
        raise _invalid(
            f"JSON Parse error: the document nests deeper than layertap serve reads "
            f"({_MAX_DEPTH} levels) at offset: {start}"
        ) from None
    if not isinstance(document, dict):
        raise _invalid(f"JSON Value: {debug_string(document)} Is not object")
    if _depth_exceeds(document, _MAX_DEPTH):
        raise _invalid(
            f"JSON Parse error: the document nests deeper than layertap serve reads ({_MAX_DEPTH} levels) "
            f"at offset: {start}"
        )
    return document


def _closer(text: str, pos: int) -> str:
    """ "]" or "}": what the innermost container still open at `pos` would be closed by."""
    stack: list[str] = []
    in_string = escaped = False
    for char in text[:pos]:
        if in_string:
            escaped, in_string = (False, True) if escaped else (char == "\\", char != '"')
        elif char == '"':
            in_string = True
        elif char in "[{":
            stack.append("]" if char == "[" else "}")
        elif char in "]}" and stack:
            stack.pop()
    return stack[-1] if stack else "]"


def _depth_exceeds(value: Any, limit: int) -> bool:
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            pending.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            pending.extend((child, depth + 1) for child in item)
    return False


def signature_name(document: Mapping[str, Any]) -> str:
    """FillSignature: the optional "signature_name" ("" for serving_default)."""
    name = document.get("signature_name", "")
    if not isinstance(name, str):
        raise _invalid(
            f"JSON Value: {debug_string(document)} not formatted correctly. "
            "'signature_name' key must be a string value."
        )
    return name


# ---------------------------------------------------------------- :predict


def predict_inputs(
    document: Mapping[str, Any], inputs: Mapping[str, pb.TensorInfo], signature: str
) -> tuple[dict[str, np.ndarray], Format]:
    """FillPredictRequestFromJson after the signature is known: input arrays by alias, and the format.

    Args:
        document: the parsed body.
        inputs: the signature's inputs (alias -> TensorInfo).
        signature: the signature name the request gave ("" for the default), for messages.
    """
    if not inputs:
        raise _invalid(f"Failed to get input map for signature: {signature or 'DEFAULT'}")
    has_instances, has_inputs = "instances" in document, "inputs" in document
    if has_instances and has_inputs:
        raise _invalid(
            f"JSON Value: {debug_string(document)} Not formatted correctly expecting only one of "
            "'inputs' or 'instances' keys to exist "
        )
    if has_instances:
        instances = document["instances"]
        if not isinstance(instances, list):
            raise _invalid(f"JSON Value: {debug_string(document)} Expecting 'instances' to be an list/array")
        if not instances:
            raise _invalid(f"JSON Value: {debug_string(document)} No values in 'instances' array")
        return _from_instances(instances, inputs), Format.ROW
    if has_inputs:
        return _from_inputs(document["inputs"], inputs), Format.COLUMNAR
    raise _invalid("Missing 'inputs' or 'instances' key")


def is_b64(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _is_named(value: Any) -> bool:
    return isinstance(value, dict) and not is_b64(value)


def _from_instances(instances: list[Any], inputs: Mapping[str, pb.TensorInfo]) -> dict[str, np.ndarray]:
    if not isinstance(instances[0], dict) and len(inputs) > 1:
        raise _invalid(
            "instances is a plain list, but expecting list of objects as multiple input tensors "
            "required as per tensorinfo_map"
        )
    named = _is_named(instances[0])
    expected = sorted(inputs)
    items: dict[str, list[np.ndarray]] = {}
    for index, element in enumerate(instances):
        if named:
            if not _is_named(element):
                raise _invalid(f"Expecting object but got list at item {index} of input list")
            for key, value in element.items():
                try:
                    _add_item(items, key, value, inputs)
                except StatusError as error:
                    raise _invalid(
                        f"Failed to process element: {index} key: {key} of 'instances' list. "
                        f"Error: {_status_text(error)}"
                    ) from None
            if sorted(element) != expected:
                raise _invalid(
                    f"Failed to process element: {index} of 'instances' list. JSON object: "
                    f"{debug_string(element)} keys must be equal to: {','.join(expected)}"
                )
        else:
            if _is_named(element):
                raise _invalid(f"Expecting value/list but got object at item {index} of input list")
            try:
                _add_item(items, expected[0], element, inputs)
            except StatusError as error:
                raise _invalid(
                    f"Failed to process element: {index} of 'instances' list. Error: {_status_text(error)}"
                ) from None
    return {alias: np.stack(arrays) for alias, arrays in items.items()}


def _add_item(
    items: dict[str, list[np.ndarray]], name: str, value: Any, inputs: Mapping[str, pb.TensorInfo]
) -> None:
    """AddInstanceItem: one batch item of one input, the same size and shape as the first item."""
    if name not in inputs:
        raise _invalid(f"JSON object: does not have named input: {name}")
    array = _tensor(value, inputs[name].dtype)
    if name in items:
        first = items[name][0]
        if first.size != array.size:
            raise _invalid(f"Expecting tensor size: {first.size} but got: {array.size}")
        if first.shape != array.shape:
            raise _invalid(f"Expecting shape {_shape_text(first.shape)} but got: {_shape_text(array.shape)}")
    items.setdefault(name, []).append(array)


def _shape_text(shape: tuple[int, ...]) -> str:
    return "[" + ",".join(str(size) for size in shape) + "]"


def _from_inputs(value: Any, inputs: Mapping[str, pb.TensorInfo]) -> dict[str, np.ndarray]:
    if not isinstance(value, dict) or is_b64(value):
        if len(inputs) > 1:
            raise _invalid(
                "inputs is a plain value/list, but expecting an object as multiple input tensors "
                "required as per tensorinfo_map"
            )
        alias = next(iter(inputs))
        return {alias: _tensor(value, inputs[alias].dtype)}
    arrays: dict[str, np.ndarray] = {}
    for alias in sorted(inputs):
        if alias not in value:
            raise _invalid(f"Missing named input: {alias} in 'inputs' object.")
        arrays[alias] = _tensor(value[alias], inputs[alias].dtype)
    return arrays


def _tensor(value: Any, dtype: int) -> np.ndarray:
    """GetDenseTensorShape + FillTensorProto: a dense tensor whose shape is read off the first
    element at each level, every leaf at the same depth."""
    shape: list[int] = []
    probe = value
    while isinstance(probe, list):
        shape.append(len(probe))
        if len(shape) > _MAX_RANK:
            raise _invalid(
                f"JSON Value: {debug_string(value)} has more than {_MAX_RANK} dimensions, the most "
                "layertap serve reads"
            )
        probe = probe[0] if probe else None
    rank = len(shape)
    leaves: list[Any] = []
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, level = pending.pop()
        if not isinstance(item, list):
            if level != rank:
                raise _invalid(
                    f"JSON Value: {debug_string(item)} found at incorrect level: {level + 1} "
                    f"in the JSON DOM. Expected at level: {rank}"
                )
            leaves.append(leaf(item, dtype))
            continue
        if level >= rank:
            raise _invalid(f"Encountered list at unexpected level: {level} expected < {rank}")
        if len(item) != shape[level]:
            raise _invalid(
                f"Encountered list at unexpected size: {len(item)} at level: {level} "
                f"expected size: {shape[level]}"
            )
        pending.extend((child, level + 1) for child in reversed(item))
    if dtype == pb.DT_STRING:
        array = np.empty(len(leaves), dtype=object)
        array[:] = leaves
        return array.reshape(shape)
    if dtype not in _NUMERIC:  # an empty list of a dtype the reader has no conversion for
        raise Unimplemented(f"Conversion of JSON Value: {debug_string(value)} to type: {tf_type_name(dtype)}")
    with np.errstate(over="ignore"):  # a double beyond float32 becomes inf, as GetFloat() makes it
        if dtype in (pb.DT_INT8, pb.DT_INT16, pb.DT_UINT8):
            # TF Serving stores these in int_val (int32) and TensorFlow narrows them, wrapping around.
            return np.array(leaves, dtype=np.int64).astype(DTYPES[dtype].numpy).reshape(shape)
        return np.array(leaves, dtype=DTYPES[dtype].numpy).reshape(shape)


def leaf(value: Any, dtype: int) -> Any:
    """AddValueToTensor: one JSON value as an element of `dtype`."""
    if isinstance(value, dict):
        if dtype != pb.DT_STRING:
            raise _type_error(value, dtype)
        if not is_b64(value):
            raise _invalid(f"JSON Value: {debug_string(value)} not formatted correctly for base64 data")
        try:
            return base64.b64decode(value["b64"].encode("utf-8", "surrogateescape"), validate=True)
        except (binascii.Error, ValueError):
            raise _invalid("Unable to base64 decode") from None
    if dtype in (pb.DT_FLOAT, pb.DT_DOUBLE):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _type_error(value, dtype)
        return value
    if dtype in _INT_KINDS:
        low, high = _INT_KINDS[dtype]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise _type_error(value, dtype)
        return value
    if dtype == pb.DT_STRING:
        if not isinstance(value, str):
            raise _type_error(value, dtype)
        return value.encode("utf-8", "surrogateescape")
    if dtype == pb.DT_BOOL:
        if not isinstance(value, bool):
            raise _type_error(value, dtype)
        return value
    raise Unimplemented(f"Conversion of JSON Value: {debug_string(value)} to type: {tf_type_name(dtype)}")


def _type_error(value: Any, dtype: int) -> StatusError:
    return _invalid(
        f"JSON Value: {debug_string(value)} Type: {json_type(value)} is not of expected type: "
        f"{tf_type_name(dtype)}"
    )
