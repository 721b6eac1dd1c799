"""TFRecord files of tf.train.Example: records read by TensorFlow's own TFRecord reader, each Example
parsed by layertap's protobuf messages and one feature taken as the input.

A feature's `float_list` becomes float32 values, `int64_list` int64 values; a `bytes_list` is the
string itself for a string input, else one encoded image (PNG, JPEG...) decoded as `images` does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf.message import DecodeError

from layertap.errors import InvalidInputError
from layertap.extract.images import ImagePreprocessing, decode_image
from layertap.extract.records import InputSpec
from layertap.proto import serving_pb2 as pb

__all__ = ["example_loader", "read_tfrecord"]


def read_tfrecord(path: Path) -> Iterator[bytes]:
    """The serialized records of one TFRecord file (uncompressed), in order."""
    from layertap.server.runtime.servable import import_tensorflow

    import_tensorflow()
    import tensorflow as tf

    yield from tf.compat.v1.io.tf_record_iterator(str(path))


def example_loader(
    serialized: bytes, feature: str, preprocessing: ImagePreprocessing
) -> Callable[[InputSpec], Any]:
    """A `Pending.load` that parses the Example and returns its `feature` as one input."""

    def load(spec: InputSpec) -> Any:
        try:
            example = pb.Example.FromString(serialized)
        except DecodeError as error:
            raise InvalidInputError(f"not a serialized tf.train.Example: {error}") from error
        features = example.features.feature
        if feature not in features:
            raise InvalidInputError(
                f"the Example has no feature {feature!r}; it has {', '.join(sorted(features)) or 'none'}"
            )
        value = features[feature]
        kind = value.WhichOneof("kind")
        if kind == "float_list":
            return np.asarray(value.float_list.value, dtype=np.float32)
        if kind == "int64_list":
            return np.asarray(value.int64_list.value, dtype=np.int64)
        if kind == "bytes_list" and len(value.bytes_list.value) == 1:
            data = value.bytes_list.value[0]
            return (
                data if spec.is_string else decode_image(data, spec, preprocessing, preprocessing.resolve())
            )
        raise InvalidInputError(
            f"feature {feature!r} holds {kind or 'nothing'}"
            + (f" with {len(value.bytes_list.value)} values" if kind == "bytes_list" else "")
            + "; accepted: float_list, int64_list, or a bytes_list of one string or encoded image"
        )

    return load
