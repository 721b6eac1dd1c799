"""tf.Example inputs of Classify, Regress and MultiInference, built without TensorFlow.

An example is given as a dict of features (name -> value), as the bytes of a serialized
tf.Example, or as a tf.train.Example / layertap Example message. A feature value becomes the list
TensorFlow's own `tf.train.Feature` would hold:

- bytes or str (one or a list of them) -> BytesList (str as UTF-8);
- int or bool, a list of them, or an integer/bool numpy array -> Int64List;
- float, a list holding a float, or a floating numpy array -> FloatList (float32, as tf.Example stores).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from google.protobuf.message import DecodeError

from layertap.errors import InvalidInputError
from layertap.proto import serving_pb2 as pb

__all__ = ["ExampleLike", "FeatureValue", "input_message"]

Scalar = bytes | str | int | float | bool | np.generic
FeatureValue = Scalar | Sequence[Scalar] | np.ndarray
# A dict of features, a serialized tf.Example, or an Example message (TensorFlow's or ours).
ExampleLike = Mapping[str, FeatureValue] | bytes | Any

_EXAMPLE_TYPES = ("tensorflow.Example", "layertap.serving.Example")
_ACCEPTED = "bytes/str, int/bool or float values, lists of one of those, or a numpy array"
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_INT64 = np.iinfo(np.int64)


def input_message(examples: Sequence[ExampleLike], context: ExampleLike | None = None) -> pb.Input:
    """The `Input` of a Classify/Regress/MultiInference request.

    Args:
        examples: one entry per example, each a dict of features or an Example (see module doc).
        context: features shared by every example (TF Serving merges them into each one), sent as
            `example_list_with_context`; None sends a plain `example_list`.

    Raises:
        InvalidInputError: no examples, an example or feature that cannot be encoded, said with
            its position and what is accepted.
    """
    if isinstance(examples, (bytes, bytearray, str, Mapping)) or not isinstance(examples, Sequence):
        raise InvalidInputError(
            f"examples must be a list of examples (dicts of features or serialized tf.Examples), "
            f"got {type(examples).__name__}; wrap a single example in a list"
        )
    if not examples:
        raise InvalidInputError("examples is empty: Classify and Regress need at least one example")
    built = [example_message(example, f"example {index}") for index, example in enumerate(examples)]
    message = pb.Input()
    if context is None:
        message.example_list.examples.extend(built)
    else:
        message.example_list_with_context.examples.extend(built)
        message.example_list_with_context.context.CopyFrom(example_message(context, "context"))
    return message


def example_message(example: ExampleLike, where: str) -> pb.Example:
    """One example as our Example message."""
    if isinstance(example, Mapping):
        message = pb.Example()
        for name, value in example.items():
            if not isinstance(name, str) or not name:
                raise InvalidInputError(f"{where}: feature names must be non-empty strings, got {name!r}")
            _fill(message.features.feature[name], value, f"{where}, feature {name!r}")
        return message
    if isinstance(example, (bytes, bytearray, memoryview)):
        return _parse(bytes(example), where)
    descriptor = getattr(example, "DESCRIPTOR", None)
    if getattr(descriptor, "full_name", None) in _EXAMPLE_TYPES:
        return _parse(example.SerializeToString(), where)
    raise InvalidInputError(
        f"{where}: expected a dict of features, the bytes of a serialized tf.Example or a "
        f"tf.train.Example, got {type(example).__name__}"
    )


def _parse(data: bytes, where: str) -> pb.Example:
    try:
        return pb.Example.FromString(data)
    except DecodeError as error:
        raise InvalidInputError(
            f"{where}: not a serialized tf.Example ({len(data)} bytes): {error}"
        ) from None


def _fill(feature: pb.Feature, value: FeatureValue, where: str) -> None:
    if isinstance(value, (bytes, str)):
        feature.bytes_list.value.append(_as_bytes(value))
        return
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, (bytes, str)) for v in value):
        # Not through numpy: its fixed-width bytes dtype drops trailing NUL bytes.
        feature.bytes_list.value.extend(_as_bytes(v) for v in value)
        return
    array = _as_array(value, where)
    flat = array.reshape(-1)
    if array.dtype.kind in "biu":
        if array.dtype.kind == "u" and flat.size and int(flat.max()) > _INT64.max:
            raise InvalidInputError(f"{where}: {int(flat.max())} does not fit an Int64List (int64)")
        feature.int64_list.value.extend(flat.astype(np.int64).tolist())
    elif array.dtype.kind == "f":
        finite = flat[np.isfinite(flat)]
        if finite.size and float(np.abs(finite).max()) > _FLOAT32_MAX:
            raise InvalidInputError(
                f"{where}: {float(np.abs(finite).max())!r} does not fit a FloatList (float32)"
            )
        feature.float_list.value.extend(flat.astype(np.float32).tolist())
    elif array.dtype.kind in "SUO" and all(isinstance(v, (bytes, str)) for v in flat.tolist()):
        feature.bytes_list.value.extend(_as_bytes(v) for v in flat.tolist())
    else:
        raise InvalidInputError(
            f"{where}: a {array.dtype} value cannot be a tf.Example feature; give {_ACCEPTED}"
        )


def _as_array(value: FeatureValue, where: str) -> np.ndarray:
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "SU" or value.dtype == object:
            return value.astype(object)  # keep each item whole
        return value
    if isinstance(value, (list, tuple)) and not value:
        raise InvalidInputError(
            f"{where}: an empty list has no kind (bytes, int64 or float); give a typed numpy array "
            f"such as np.array([], np.float32), or leave the feature out"
        )
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as error:
        raise InvalidInputError(
            f"{where}: cannot read {type(value).__name__} as a feature ({error}); give {_ACCEPTED}"
        ) from None
    if array.dtype == object or array.dtype.kind not in "biuf":
        raise InvalidInputError(
            f"{where}: cannot encode {type(value).__name__} {value!r:.80}; give {_ACCEPTED}"
        )
    return array


def _as_bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)
