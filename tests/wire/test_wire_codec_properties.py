"""The hand-written wire code against protobuf's own encoder and decoder, by property.

The reference is protobuf: messages are built and serialized by protobuf (in several layouts:
shuffled field order, unknown fields, unpacked and split repeated fields, one-value broadcasts),
then decoded both by layertap's fast path and by protobuf + the message-level codec; results must
be identical, down to the bits and the error class. Encoded bytes must parse with protobuf into
exactly the message protobuf itself would build.
"""

from __future__ import annotations

import random
from typing import Any

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from layertap.errors import TensorFormatError
from layertap.proto import serving_pb2 as pb
from layertap.wire import codec, dtypes, tensors

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NUMERIC = [info.numpy for info in dtypes.DTYPES.values() if info.enum != pb.DT_STRING]


def _unpacked_types() -> tuple[Any, Any]:
    """TensorProto and PredictResponse twins whose repeated scalars are NOT packed, plus unknown
    fields of every wire type, declared in a private pool: protobuf's encoder writes the layouts."""
    file = descriptor_pb2.FileDescriptorProto()
    pb.DESCRIPTOR.CopyToProto(file)
    file.name = "layertap_test_unpacked.proto"
    file.package = "layertap.test_unpacked"
    for message in file.message_type:
        for field in message.field:
            if field.label == field.LABEL_REPEATED and field.type not in (
                field.TYPE_MESSAGE,
                field.TYPE_BYTES,
                field.TYPE_STRING,
            ):
                field.options.packed = False
            if field.type_name.startswith(".layertap.serving."):
                field.type_name = field.type_name.replace(".layertap.serving.", ".layertap.test_unpacked.")
        for nested in message.nested_type:
            for field in nested.field:
                if field.type_name.startswith(".layertap.serving."):
                    field.type_name = field.type_name.replace(
                        ".layertap.serving.", ".layertap.test_unpacked."
                    )
        if message.name in ("TensorProto", "PredictResponse", "TensorShapeProto"):
            for number, kind in (
                (90, "TYPE_INT64"),
                (91, "TYPE_STRING"),
                (92, "TYPE_FIXED32"),
                (93, "TYPE_DOUBLE"),
            ):
                extra = message.field.add(name=f"unknown_{number}", number=number)
                extra.type = getattr(descriptor_pb2.FieldDescriptorProto, kind)
                extra.label = extra.LABEL_OPTIONAL
    pool = descriptor_pool.DescriptorPool()
    from google.protobuf import any_pb2, wrappers_pb2

    for module in (any_pb2, wrappers_pb2):
        dependency = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(dependency)
        pool.Add(dependency)
    pool.Add(file)
    tensor = message_factory.GetMessageClass(pool.FindMessageTypeByName("layertap.test_unpacked.TensorProto"))
    response = message_factory.GetMessageClass(
        pool.FindMessageTypeByName("layertap.test_unpacked.PredictResponse")
    )
    return tensor, response


UnpackedTensor, UnpackedResponse = _unpacked_types()


def numeric_arrays(dtype: np.dtype[Any], shape: Any) -> st.SearchStrategy[np.ndarray]:
    """hypothesis arrays of `dtype`; bfloat16 (which hypothesis cannot draw) as every 16-bit pattern."""
    if dtype.name == "bfloat16":
        return hnp.arrays(dtype=np.uint16, shape=shape).map(lambda bits: bits.view(dtype))
    return hnp.arrays(dtype=dtype, shape=shape)


def arrays(dtype: np.dtype[Any]) -> st.SearchStrategy[np.ndarray]:
    shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5)
    if dtype.kind == "O":
        return hnp.arrays(dtype=object, shape=shapes, elements=st.binary(max_size=8))
    return numeric_arrays(dtype, shapes)


any_array = st.sampled_from([*NUMERIC, np.dtype(object)]).flatmap(arrays)


def reference_response(data: bytes) -> dict[str, np.ndarray] | str:
    """What protobuf + the message-level codec make of response bytes ("error" if refused)."""
    try:
        message = pb.PredictResponse.FromString(data)
    except Exception:
        return "error"
    try:
        return {alias: tensors.proto_to_array(proto) for alias, proto in message.outputs.items()}
    except TensorFormatError:
        return "error"


def fast_response(data: bytes) -> dict[str, np.ndarray] | str:
    try:
        return codec.decode_predict_response(data).outputs
    except TensorFormatError:
        return "error"


def assert_same(
    got: dict[str, np.ndarray] | str, expected: dict[str, np.ndarray] | str, *, ordered: bool = True
) -> None:
    """Equal outputs, bit for bit. `ordered`: in the same alias order too, which the codec keeps from
    the wire; off where `expected` comes from protobuf's own map, whose iteration order is its own."""
    if isinstance(expected, str) or isinstance(got, str):
        assert got == expected
        return
    if ordered:
        assert list(got) == list(expected)
    else:
        assert sorted(got) == sorted(expected)
    for alias, want in expected.items():
        have = got[alias]
        assert have.dtype == want.dtype and have.shape == want.shape, alias
        if want.dtype == object:
            assert have.tolist() == want.tolist()
        else:
            assert have.tobytes() == want.tobytes()  # bit-identical, NaNs and signed zeros included


def response_bytes(tensor: Any, extra: bytes = b"") -> bytes:
    response = pb.PredictResponse()
    response.model_spec.name = "m"
    response.outputs["y"].CopyFrom(tensor)
    return response.SerializeToString() + extra


@SETTINGS
@given(array=any_array, typed=st.booleans())
def test_decoding_equals_protobuf_in_both_encodings(array: np.ndarray, typed: bool) -> None:
    data = response_bytes(tensors.array_to_proto(array, typed=typed))
    expected = reference_response(data)
    assert_same(fast_response(data), expected, ordered=False)
    assert not isinstance(expected, str)
    assert_same(expected, {"y": array})


@SETTINGS
@given(array=any_array, typed=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_any_field_order(array: np.ndarray, typed: bool, seed: int) -> None:
    proto = tensors.array_to_proto(array, typed=typed)
    # Each field serialized alone by protobuf, then the pieces shuffled: still the same message.
    pieces = []
    names = [descriptor.name for descriptor, _ in proto.ListFields()]
    for name in names:
        single = pb.TensorProto()
        single.CopyFrom(proto)
        for other in names:
            if other != name:
                single.ClearField(other)
        pieces.append(single.SerializeToString())
    random.Random(seed).shuffle(pieces)
    tensor_bytes = b"".join(pieces)
    entry = b"\x0a" + bytes([1]) + b"y" + b"\x12" + _varint(len(tensor_bytes)) + tensor_bytes
    spec = pb.ModelSpec(name="m").SerializeToString()
    top = [b"\x0a" + _varint(len(entry)) + entry, b"\x12" + _varint(len(spec)) + spec]
    random.Random(seed + 1).shuffle(top)
    data = b"".join(top)
    assert_same(fast_response(data), reference_response(data), ordered=False)
    assert_same(fast_response(data), {"y": array})


@SETTINGS
@given(array=any_array.filter(lambda a: a.dtype != object), split=st.integers(0, 200), unknown=st.booleans())
def test_unpacked_split_repeated_fields_and_unknown_fields(
    array: np.ndarray, split: int, unknown: bool
) -> None:
    typed = tensors.array_to_proto(array, typed=True)
    info = dtypes.from_numpy(array.dtype)
    values = list(getattr(typed, info.typed_field))
    cut = split % (len(values) + 1)
    parts = []
    for index, chunk in enumerate((values[:cut], values[cut:])):
        twin = UnpackedTensor()
        if index == 0:  # the second part holds only values: a repeated shape would merge dims
            twin.ParseFromString(typed.SerializeToString())
        field = getattr(twin, info.typed_field)
        del field[:]
        field.extend(chunk)
        if unknown:
            twin.unknown_90, twin.unknown_91, twin.unknown_92, twin.unknown_93 = -5, "x", 7, 1.5
        parts.append(twin.SerializeToString())
    # Two serializations of the same message concatenated: scalars repeat, repeated fields append,
    # and the values field occurs unpacked (one key per value) in two runs.
    tensor_bytes = parts[0] + parts[1]
    response = UnpackedResponse()
    response.outputs["y"].ParseFromString(tensor_bytes)
    if unknown:
        response.unknown_90 = 3
    data = response.SerializeToString()
    assert_same(fast_response(data), reference_response(data), ordered=False)
    assert_same(fast_response(data), {"y": array})


@SETTINGS
@given(
    dtype=st.sampled_from(NUMERIC),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4),
    given_values=st.integers(0, 3),
    data=st.data(),
)
def test_broadcast_rule_of_typed_fields(
    dtype: np.dtype[Any], shape: tuple[int, ...], given_values: int, data: st.DataObject
) -> None:
    full = data.draw(numeric_arrays(dtype, shape))
    count = full.size
    typed = tensors.array_to_proto(full, typed=True)
    info = dtypes.from_numpy(dtype)
    field = getattr(typed, info.typed_field)
    keep = min(given_values, count) * info.values_per_element
    del field[keep:]
    wire = response_bytes(typed)
    expected = reference_response(wire)
    assert_same(fast_response(wire), expected)
    assert not isinstance(expected, str)
    flat = expected["y"].reshape(-1)
    if keep == 0:
        assert not flat.astype(bool).any()  # no values: zeros
    else:
        kept = min(given_values, count)
        assert flat[:kept].tobytes() == full.reshape(-1)[:kept].tobytes()
        assert all(flat[i].tobytes() == full.reshape(-1)[kept - 1].tobytes() for i in range(kept, count))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    array=any_array,
    typed=st.booleans(),
    mutations=st.lists(
        st.tuples(st.sampled_from(["set", "insert", "delete"]), st.integers(0, 10_000), st.integers(0, 255)),
        min_size=1,
        max_size=4,
    ),
)
def test_corrupted_bytes_decode_like_protobuf(
    array: np.ndarray, typed: bool, mutations: list[tuple[str, int, int]]
) -> None:
    data = bytearray(response_bytes(tensors.array_to_proto(array, typed=typed)))
    for operation, position, value in mutations:
        where = position % len(data)
        if operation == "set":
            data[where] = value
        elif operation == "insert":
            data.insert(where, value)
        elif len(data) > 1:
            del data[where]
    corrupted = bytes(data)
    assert_same(fast_response(corrupted), reference_response(corrupted), ordered=False)


@SETTINGS
@given(
    inputs=st.dictionaries(st.text(max_size=6), any_array, max_size=3),
    output_filter=st.lists(st.text(max_size=5), max_size=3),
    version=st.one_of(st.none(), st.integers(0, 2**40)),
    label=st.text(max_size=4),
)
def test_encoded_requests_are_what_protobuf_builds(
    inputs: dict[str, np.ndarray], output_filter: list[str], version: int | None, label: str
) -> None:
    spec = pb.ModelSpec(name="model", signature_name="conv_2")
    if version is not None:
        spec.version.value = version
    elif label:
        spec.version_label = label
    data = codec.encode_predict_request(spec, inputs, output_filter)
    expected = pb.PredictRequest(output_filter=output_filter)
    expected.model_spec.CopyFrom(spec)
    for alias, array in inputs.items():
        expected.inputs[alias].CopyFrom(tensors.array_to_proto(array))
    assert pb.PredictRequest.FromString(data) == expected
    call = codec.decode_predict_request(data)
    assert call.model_spec == spec and call.output_filter == output_filter
    assert_same(call.inputs, {alias: np.asarray(array) for alias, array in inputs.items()})


@SETTINGS
@given(outputs=st.dictionaries(st.text(max_size=6), any_array, max_size=3), tensor_content=st.booleans())
def test_encoded_responses_are_what_protobuf_builds(
    outputs: dict[str, np.ndarray], tensor_content: bool
) -> None:
    spec = pb.ModelSpec(name="model", signature_name="s")
    spec.version.value = 0
    data = codec.encode_predict_response(spec, outputs, tensor_content=tensor_content)
    expected = pb.PredictResponse()
    expected.model_spec.CopyFrom(spec)
    for alias, array in outputs.items():
        expected.outputs[alias].CopyFrom(tensors.array_to_proto(array, typed=not tensor_content))
    assert pb.PredictResponse.FromString(data) == expected
    result = codec.decode_predict_response(data)
    assert result.model_spec == spec and result.model_spec.HasField("version")
    assert_same(result.outputs, outputs)


def test_repeated_map_keys_decode_as_protobuf_merges_them() -> None:
    # A repeated map key is a layout the fast path leaves to protobuf: the last entry wins, for a
    # request (with its output filter) as for a response.
    spec = pb.ModelSpec(name="model", signature_name="s")
    first = codec.encode_predict_request(spec, {"x": np.arange(3, dtype=np.float32)}, ["y"])
    second = codec.encode_predict_request(spec, {"x": np.arange(4, dtype=np.int32)}, ["z"])
    call = codec.decode_predict_request(first + second)
    assert call.model_spec == spec and call.output_filter == ["y", "z"]
    assert_same(call.inputs, {"x": np.arange(4, dtype=np.int32)})
    first = codec.encode_predict_response(spec, {"y": np.ones(2, np.float32)})
    second = codec.encode_predict_response(spec, {"y": np.zeros(3, np.int64)})
    result = codec.decode_predict_response(first + second)
    assert result.model_spec == spec
    assert_same(result.outputs, {"y": np.zeros(3, np.int64)})


def test_fixed_width_outputs_are_views_of_the_reply() -> None:
    array = np.arange(1000, dtype=np.float32)
    for tensor_content in (False, True):
        data = codec.encode_predict_response(
            pb.ModelSpec(name="m"), {"y": array}, tensor_content=tensor_content
        )
        out = codec.decode_predict_response(data).outputs["y"]
        assert np.array_equal(out, array)
        assert not out.flags.writeable and out.base is not None  # zero-copy: no buffer of its own


def test_server_side_refuses_absurd_shapes_without_allocating() -> None:
    request = pb.PredictRequest()
    request.inputs["x"].dtype = pb.DT_FLOAT
    request.inputs["x"].tensor_shape.dim.add(size=10**12)
    request.inputs["x"].tensor_content = b"abcd"
    with pytest.raises(TensorFormatError, match="tensor_content has 4 bytes but shape"):
        codec.decode_predict_request(request.SerializeToString())
    request.inputs["x"].ClearField("tensor_content")
    request.inputs["x"].float_val.append(1.0)
    with pytest.raises(TensorFormatError, match="would expand to 4000000000000 bytes"):
        codec.decode_predict_request(request.SerializeToString())
    request.inputs["x"].tensor_shape.dim[0].size = -1
    with pytest.raises(TensorFormatError, match="negative dimension"):
        codec.decode_predict_request(request.SerializeToString())
    request.inputs["x"].tensor_shape.dim[0].size = 2**50
    with pytest.raises(TensorFormatError, match="more than"):
        codec.decode_predict_request(request.SerializeToString())
    request.inputs["x"].dtype = pb.DT_QINT8
    with pytest.raises(TensorFormatError, match="input 'x': unsupported tensor dtype DT_QINT8"):
        codec.decode_predict_request(request.SerializeToString())
    with pytest.raises(TensorFormatError, match="does not parse"):
        codec.decode_predict_request(b"\x12\xff")


def test_typed_values_out_of_range_are_refused() -> None:
    proto = pb.TensorProto(dtype=pb.DT_INT8, int_val=[300])
    proto.tensor_shape.dim.add(size=1)
    with pytest.raises(TensorFormatError, match=r"holds values in \[300, 300\]; accepted: \[-128, 127\]"):
        codec.decode_predict_response(response_bytes(proto))
    with pytest.raises(TensorFormatError, match=r"holds values in \[300, 300\]"):
        tensors.proto_to_array(proto)


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)
