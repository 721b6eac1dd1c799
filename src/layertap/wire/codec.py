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
from typing import Generic, TypeVar

import numpy as np

from layertap.errors import TensorFormatError
from layertap.proto import serving_pb2 as pb
from layertap.wire import _fastpath, tensors
from layertap.wire._protowire import UnhandledLayoutError

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


_Predict = TypeVar("_Predict", pb.PredictRequest, pb.PredictResponse)


@dataclass(frozen=True)
class _Layout(Generic[_Predict]):
    """Where a Predict message keeps its parts: the numbers of its fields."""

    message: type[_Predict]
    role: str  # what its tensors are called in error messages
    spec: int
    tensors: int
    output_filter: int | None = None


# The field numbers of tensorflow_serving/apis/predict.proto (layertap/proto/serving.proto copies them).
_REQUEST = _Layout(pb.PredictRequest, "input", spec=1, tensors=2, output_filter=3)
_RESPONSE = _Layout(pb.PredictResponse, "output", spec=2, tensors=1)


def encode_predict_request(
    spec: pb.ModelSpec, inputs: Mapping[str, np.ndarray], output_filter: Sequence[str] = ()
) -> bytes:
    """Serialize a PredictRequest whose tensors carry `tensor_content` (one copy of each array).

    Raises:
        TensorFormatError: an input's dtype has no TensorFlow DataType.
    """
    return _encode(_REQUEST, spec, inputs, typed=False, output_filter=output_filter)


def decode_predict_response(data: bytes | memoryview) -> PredictResult:
    """Parse PredictResponse bytes into arrays, from `tensor_content` or the typed fields.

    Fixed-width outputs are read-only views of `data` (zero-copy).

    Raises:
        TensorFormatError: the bytes do not parse, or a tensor disagrees with its shape or dtype.
    """
    spec, outputs, _ = _decode(data, _RESPONSE)
    return PredictResult(model_spec=spec, outputs=outputs)


def encode_predict_response(
    spec: pb.ModelSpec, outputs: Mapping[str, np.ndarray], *, tensor_content: bool = False
) -> bytes:
    """Serialize a PredictResponse the way TF Serving does: typed fields unless `tensor_content`.

    Raises:
        TensorFormatError: an output's dtype has no TensorFlow DataType.
    """
    return _encode(_RESPONSE, spec, outputs, typed=not tensor_content)


def decode_predict_request(data: bytes | memoryview) -> PredictCall:
    """Parse PredictRequest bytes, validating every tensor before anything is allocated.

    Fixed-width inputs are read-only views of `data` (zero-copy).

    Raises:
        TensorFormatError: the bytes do not parse, or a tensor has an unsupported dtype, a negative
            or absurd shape, content whose length disagrees with its shape, or out-of-range values.
    """
    spec, inputs, output_filter = _decode(data, _REQUEST)
    return PredictCall(spec, inputs, output_filter)


def _encode(
    layout: _Layout[_Predict],
    spec: pb.ModelSpec,
    tensors: Mapping[str, np.ndarray],
    *,
    typed: bool,
    output_filter: Sequence[str] = (),
) -> bytes:
    """A Predict message's bytes, its fields in number order as protobuf writes them."""
    entries: list[tuple[int, bytes | str | _fastpath.TensorEntry]] = [
        (layout.spec, spec.SerializeToString()),
        *_fastpath.tensor_entries(layout.tensors, tensors, typed=typed),
    ]
    if layout.output_filter is not None:
        entries.extend((layout.output_filter, alias) for alias in output_filter)
    # A stable sort by field number: the tensors and the filter keep their own order.
    return _fastpath.encode_message(sorted(entries, key=lambda entry: entry[0]))


def _decode(
    data: bytes | memoryview, layout: _Layout[_Predict]
) -> tuple[pb.ModelSpec, dict[str, np.ndarray], list[str]]:
    """A Predict message's model spec, arrays by alias and output filter (a response has none).

    The fast path reads the tensors in place; a layout it does not handle (repeated map keys,
    groups, ...) is parsed by protobuf instead, with the same result.
    """
    data = bytes(data) if not isinstance(data, bytes) else data
    name = layout.message.DESCRIPTOR.name
    try:
        spec_bytes, spans, filters = _fastpath.decode_message(
            data, map_field=layout.tensors, spec_field=layout.spec, filter_field=layout.output_filter
        )
    except UnhandledLayoutError:
        message = _parse(layout.message, data, name)
        if isinstance(message, pb.PredictRequest):
            by_alias, filters = message.inputs, list(message.output_filter)
        else:
            by_alias, filters = message.outputs, []
        arrays = {alias: _reference(proto, layout.role, alias) for alias, proto in by_alias.items()}
        return message.model_spec, arrays, filters
    spec = _parse(pb.ModelSpec, spec_bytes, f"{name}.model_spec")
    return spec, _tensors(data, spans, layout.role), filters


def _tensors(data: bytes, spans: Mapping[str, tuple[int, int]], role: str) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    for alias, (start, end) in spans.items():
        try:
            arrays[alias] = _fastpath.decode_tensor(data, start, end)
        except UnhandledLayoutError:
            proto = _parse(pb.TensorProto, data[start:end], f"{role} {alias!r}")
            arrays[alias] = _reference(proto, role, alias)
        except TensorFormatError as error:
            raise TensorFormatError(f"{role} {alias!r}: {error}") from None
    return arrays


def _reference(proto: pb.TensorProto, role: str, alias: str) -> np.ndarray:
    try:
        return tensors.proto_to_array(proto)
    except TensorFormatError as error:
        raise TensorFormatError(f"{role} {alias!r}: {error}") from None


_M = TypeVar("_M", pb.PredictRequest, pb.PredictResponse, pb.ModelSpec, pb.TensorProto)


def _parse(message_type: type[_M], data: bytes, what: str) -> _M:
    try:
        return message_type.FromString(data)
    except Exception as error:  # protobuf's DecodeError moved between versions; any failure is ours
        raise TensorFormatError(f"{what} does not parse: {error}") from None
