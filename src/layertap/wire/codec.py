"""PredictRequest / PredictResponse to and from bytes: the one codec client and server share.

Client side: `encode_predict_request` writes inputs as `tensor_content` with a single copy of each
array, and `decode_predict_response` reads outputs in either encoding, viewing fixed-width
little-endian data in place (see `layertap.wire._fast`). Server side: `decode_predict_request`
validates every tensor before allocating anything, and `encode_predict_response` writes TF
Serving's default encoding (typed fields) unless asked for `tensor_content`.

Arrays returned by the decoders may be read-only views of the message bytes (zero-copy); call
`.copy()` before writing into one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from layertap.errors import TensorFormatError
from layertap.proto import serving_pb2 as pb
from layertap.wire import tensors

__all__ = [
    "PredictCall",
    "PredictResult",
    "decode_predict_request",
    "decode_predict_response",
    "encode_predict_request",
    "encode_predict_response",
]


@dataclass
class PredictResult:
    """A decoded PredictResponse: the model spec the server echoed and the output arrays by alias."""

    model_spec: pb.ModelSpec
    outputs: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class PredictCall:
    """A decoded PredictRequest: the model spec, the input arrays by alias, and the output filter."""

    model_spec: pb.ModelSpec
    inputs: dict[str, np.ndarray] = field(default_factory=dict)
    output_filter: list[str] = field(default_factory=list)


def encode_predict_request(
    spec: pb.ModelSpec, inputs: Mapping[str, np.ndarray], output_filter: Sequence[str] = ()
) -> bytes:
    """Serialize a PredictRequest whose tensors carry `tensor_content` (one copy of each array).

    Raises:
        TensorFormatError: an input's dtype has no TensorFlow DataType.
    """
    request = pb.PredictRequest(output_filter=list(output_filter))
    request.model_spec.CopyFrom(spec)
    for alias, array in inputs.items():
        request.inputs[alias].CopyFrom(tensors.array_to_proto(array))
    return request.SerializeToString()


def decode_predict_response(data: bytes | memoryview) -> PredictResult:
    """Parse PredictResponse bytes into arrays, from `tensor_content` or the typed fields.

    Raises:
        TensorFormatError: the bytes do not parse, or a tensor disagrees with its shape or dtype.
    """
    response = _parse(pb.PredictResponse, bytes(data), "PredictResponse")
    outputs: dict[str, np.ndarray] = {}
    for alias, proto in response.outputs.items():
        try:
            outputs[alias] = tensors.proto_to_array(proto)
        except TensorFormatError as error:
            raise TensorFormatError(f"output {alias!r}: {error}") from None
    return PredictResult(model_spec=response.model_spec, outputs=outputs)


def encode_predict_response(
    spec: pb.ModelSpec, outputs: Mapping[str, np.ndarray], *, tensor_content: bool = False
) -> bytes:
    """Serialize a PredictResponse the way TF Serving does: typed fields unless `tensor_content`."""
    response = pb.PredictResponse()
    response.model_spec.CopyFrom(spec)
    for alias, array in outputs.items():
        response.outputs[alias].CopyFrom(tensors.array_to_proto(array, typed=not tensor_content))
    return response.SerializeToString()


def decode_predict_request(data: bytes | memoryview) -> PredictCall:
    """Parse PredictRequest bytes, validating every tensor before anything is allocated.

    Raises:
        TensorFormatError: the bytes do not parse, or a tensor has an unsupported dtype, a negative
            or absurd shape, or content whose length disagrees with its shape.
    """
    request = _parse(pb.PredictRequest, bytes(data), "PredictRequest")
    inputs: dict[str, np.ndarray] = {}
    for alias, proto in request.inputs.items():
        try:
            inputs[alias] = tensors.proto_to_array(proto)
        except TensorFormatError as error:
            raise TensorFormatError(f"input {alias!r}: {error}") from None
    return PredictCall(
        model_spec=request.model_spec, inputs=inputs, output_filter=list(request.output_filter)
    )


_M = TypeVar("_M", pb.PredictRequest, pb.PredictResponse)


def _parse(message_type: type[_M], data: bytes, what: str) -> _M:
    try:
        return message_type.FromString(data)
    except Exception as error:  # protobuf raises its own DecodeError, not exported in every version
        raise TensorFormatError(f"{what} does not parse: {error}") from None
