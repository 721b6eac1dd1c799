"""The bodies of REST `:classify` and `:regress` calls: JSON "context" and "examples" as an Input.

As TF Serving's FillClassifyRegressRequestFromJson (`json_tensor.cc`) reads them: each example is a
JSON object of features; a feature's JSON type chooses its list (string or `{"b64": ...}` bytes,
float, int or bool int64), and one feature holds one kind.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from layertap.proto import serving_pb2 as pb
from layertap.server.rest.decode import INT64_MAX, is_b64, json_type, leaf
from layertap.server.rest.encode import debug_string
from layertap.server.status import InvalidArgument

__all__ = ["example_input"]


def example_input(document: Mapping[str, Any]) -> pb.Input:
    """FillClassifyRegressRequestFromJson: the request's "context" and "examples" as an Input."""
    message = pb.Input()
    has_context = "context" in document
    if has_context:
        _fill_example(document["context"], message.example_list_with_context.context)
    if "examples" not in document:
        # TF Serving says "classify" for :regress too.
        raise InvalidArgument(
            f"JSON Value: {debug_string(document)} When method is classify, key 'examples' is expected "
            "and was not found"
        )
    examples = document["examples"]
    if not isinstance(examples, list):
        raise InvalidArgument(
            f"JSON Value: {debug_string(document)} Expecting 'examples' value to be an list/array"
        )
    if not examples:
        raise InvalidArgument(f"JSON Value: {debug_string(document)} 'examples' value is an empty array")
    target = message.example_list_with_context.examples if has_context else message.example_list.examples
    for value in examples:
        _fill_example(value, target.add())
    return message


def _fill_example(value: Any, example: pb.Example) -> None:
    if not isinstance(value, dict):
        raise InvalidArgument(f"Example must be JSON object but got JSON {json_type(value)}")
    for name, content in value.items():
        feature = pb.Feature()
        for item in content if isinstance(content, list) else [content]:
            _add_to_feature(item, name, feature)
        example.features.feature[name].CopyFrom(feature)


def _add_to_feature(value: Any, name: str, feature: pb.Feature) -> None:
    """AddValueToFeature: the JSON type chooses the list; one feature holds one kind."""
    if value is None or isinstance(value, list) or (isinstance(value, dict) and not is_b64(value)):
        raise InvalidArgument(f"Feature: {name} has element with unexpected JSON type: {json_type(value)}")
    if isinstance(value, bool):
        _expect_kind(feature, "int64_list", name).value.append(int(value))
    elif isinstance(value, dict):
        kind = _expect_kind(feature, "bytes_list", name)
        kind.value.append(leaf(value, pb.DT_STRING))
    elif isinstance(value, str):
        _expect_kind(feature, "bytes_list", name).value.append(value.encode("utf-8", "surrogateescape"))
    elif isinstance(value, float):
        _expect_kind(feature, "float_list", name).value.append(value)
    else:
        kind = _expect_kind(feature, "int64_list", name)
        if value > INT64_MAX:
            raise InvalidArgument(f"Feature: {name} has uint64_t element. Only int64_t is supported.")
        kind.value.append(value)


def _expect_kind(feature: pb.Feature, kind: str, name: str) -> Any:
    current = feature.WhichOneof("kind")
    if current not in (None, kind):
        spelled = {"bytes_list": "bytes", "float_list": "float", "int64_list": "int64"}[current]
        raise InvalidArgument(f"Unexpected element type in feature: {name} expecting type: {spelled}")
    return getattr(feature, kind)
