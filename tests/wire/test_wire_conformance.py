"""Our wire messages against the official `tensorflow_serving.apis` ones, in one process, both ways."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from layertap.client._catalogue import parse_metadata
from layertap.proto import serving_pb2 as pb
from layertap.wire import codec, tensors
from tests.guarantees import import_or_skip

tf = import_or_skip("tensorflow")
official = import_or_skip("tensorflow_serving.apis.predict_pb2")

ARRAYS = {
    "float32": np.array([[1.5, -2.0], [np.inf, -0.0]], dtype=np.float32),
    "float64": np.array([1e300, -1e-300, np.nan]),
    "float16": np.array([[0.5, 65504.0, -1.0]], dtype=np.float16),
    "int8": np.array([-128, 127, 0], dtype=np.int8),
    "int16": np.array([-32768, 32767], dtype=np.int16),
    "int32": np.array([[-(2**31), 2**31 - 1]], dtype=np.int32),
    "int64": np.array([-(2**63), 2**63 - 1], dtype=np.int64),
    "uint8": np.array([0, 255], dtype=np.uint8),
    "uint16": np.array([65535], dtype=np.uint16),
    "uint32": np.array([2**32 - 1, 7], dtype=np.uint32),
    "uint64": np.array([2**64 - 1], dtype=np.uint64),
    "bool": np.array([[True, False]]),
    "complex64": np.array([1 + 2j, -3.5j], dtype=np.complex64),
    "complex128": np.array([[1e200 - 1j]], dtype=np.complex128),
    "string": np.array([b"", b"\x00\xff", "é".encode()], dtype=object),
    "empty": np.zeros((0, 3), np.float32),
    "scalar": np.array(4.25, dtype=np.float32),
}


def official_typed(array: np.ndarray) -> Any:
    """A TensorProto in TF Serving's default (typed field) encoding, built with TensorFlow's types."""
    from tensorflow.core.framework import tensor_pb2

    proto = tensor_pb2.TensorProto(dtype=tf.as_dtype(array.dtype).as_datatype_enum)
    for size in array.shape:
        proto.tensor_shape.dim.add(size=size)
    flat = array.reshape(-1)
    field = {
        "float32": "float_val",
        "float64": "double_val",
        "int8": "int_val",
        "int16": "int_val",
        "int32": "int_val",
        "uint8": "int_val",
        "uint16": "int_val",
        "int64": "int64_val",
        "uint32": "uint32_val",
        "uint64": "uint64_val",
        "bool": "bool_val",
        "object": "string_val",
    }
    if array.dtype == np.float16:
        proto.half_val.extend(flat.view(np.uint16).tolist())
    elif array.dtype.kind == "c":
        target = proto.scomplex_val if array.dtype == np.complex64 else proto.dcomplex_val
        target.extend(flat.view(flat.real.dtype).tolist())
    else:
        getattr(proto, field[str(array.dtype)]).extend(flat.tolist())
    return proto


def same(a: np.ndarray, b: np.ndarray) -> bool:
    if a.dtype == object:
        return a.dtype == b.dtype and a.shape == b.shape and a.tolist() == b.tolist()
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def test_our_requests_parse_with_the_official_messages() -> None:
    spec = pb.ModelSpec(name="cnn", signature_name="conv_2")
    spec.version.value = 0
    data = codec.encode_predict_request(spec, ARRAYS, ["conv_2", "pool_2"])
    theirs = official.PredictRequest.FromString(data)
    assert theirs.model_spec.name == "cnn" and theirs.model_spec.signature_name == "conv_2"
    assert theirs.model_spec.HasField("version") and theirs.model_spec.version.value == 0
    assert list(theirs.output_filter) == ["conv_2", "pool_2"]
    for alias, array in ARRAYS.items():
        assert same(tf.make_ndarray(theirs.inputs[alias]), array), alias
    # ... and the official bytes of that message parse back into ours, identically.
    assert pb.PredictRequest.FromString(theirs.SerializeToString()) == pb.PredictRequest.FromString(data)


@pytest.mark.parametrize("encoding", ["typed", "tensor_content", "make_tensor_proto"])
def test_official_responses_decode(encoding: str) -> None:
    response = official.PredictResponse()
    response.model_spec.name = "cnn"
    response.model_spec.version.value = 3
    response.model_spec.signature_name = "serving_default"
    for alias, array in ARRAYS.items():
        if encoding == "typed":
            response.outputs[alias].CopyFrom(official_typed(array))
        elif encoding == "make_tensor_proto":
            response.outputs[alias].CopyFrom(tf.make_tensor_proto(array))
        elif array.dtype == object:
            response.outputs[alias].CopyFrom(official_typed(array))  # strings have no tensor_content
        else:
            proto = response.outputs[alias]
            proto.dtype = tf.as_dtype(array.dtype).as_datatype_enum
            proto.tensor_shape.CopyFrom(tf.TensorShape(array.shape).as_proto())
            proto.tensor_content = array.astype(array.dtype.newbyteorder("<")).tobytes()
    result = codec.decode_predict_response(response.SerializeToString())
    assert result.model_spec.name == "cnn" and result.model_spec.version.value == 3
    assert sorted(result.outputs) == sorted(ARRAYS)
    for alias, array in ARRAYS.items():
        assert same(result.outputs[alias], array), (alias, result.outputs[alias], array)


def test_our_responses_read_by_tensorflow() -> None:
    spec = pb.ModelSpec(name="cnn", signature_name="s")
    for tensor_content in (False, True):
        data = codec.encode_predict_response(spec, ARRAYS, tensor_content=tensor_content)
        theirs = official.PredictResponse.FromString(data)
        for alias, array in ARRAYS.items():
            assert same(tf.make_ndarray(theirs.outputs[alias]), array), alias


def test_official_broadcast_of_one_value() -> None:
    proto = tf.make_tensor_proto(7, dtype=tf.int32, shape=[2, 3])  # TF writes one int_val for a constant
    assert list(proto.int_val) == [7] and not proto.tensor_content
    response = official.PredictResponse()
    response.outputs["c"].CopyFrom(proto)
    out = codec.decode_predict_response(response.SerializeToString()).outputs["c"]
    assert out.dtype == np.int32 and out.tolist() == [[7, 7, 7], [7, 7, 7]]


def test_every_message_round_trips_both_ways() -> None:
    from google.protobuf import unknown_fields
    from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, model_pb2

    spec = model_pb2.ModelSpec(name="m", signature_name="s", version_label="stable")
    status = get_model_status_pb2.GetModelStatusResponse()
    entry = status.model_version_status.add(
        version=2, state=get_model_status_pb2.ModelVersionStatus.AVAILABLE
    )
    entry.status.error_code = 5
    entry.status.error_message = "gone"
    metadata_request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    metadata_request.model_spec.CopyFrom(spec)
    pairs = [
        (spec, pb.ModelSpec),
        (status, pb.GetModelStatusResponse),
        (get_model_status_pb2.GetModelStatusRequest(model_spec=spec), pb.GetModelStatusRequest),
        (metadata_request, pb.GetModelMetadataRequest),
        (official_typed(ARRAYS["float16"]), pb.TensorProto),
        (tf.make_tensor_proto(ARRAYS["string"]), pb.TensorProto),
    ]
    for theirs, ours_type in pairs:
        ours = ours_type.FromString(theirs.SerializeToString())
        assert len(unknown_fields.UnknownFieldSet(ours)) == 0  # every field is declared by us
        assert type(theirs).FromString(ours.SerializeToString()) == theirs, type(theirs).__name__


def test_official_signature_def_map_in_an_any_becomes_a_catalogue() -> None:
    from tensorflow.core.protobuf import meta_graph_pb2
    from tensorflow_serving.apis import get_model_metadata_pb2

    signatures = get_model_metadata_pb2.SignatureDefMap()
    conv = signatures.signature_def["conv_2"]
    conv.method_name = "tensorflow/serving/predict"
    image = meta_graph_pb2.TensorInfo(name="serving_conv_2_image:0", dtype=tf.float32.as_datatype_enum)
    for size in (-1, 28, 28, 1):
        image.tensor_shape.dim.add(size=size)
    conv.inputs["image"].CopyFrom(image)
    out = meta_graph_pb2.TensorInfo(name="StatefulPartitionedCall:0", dtype=tf.float32.as_datatype_enum)
    out.tensor_shape.unknown_rank = True
    conv.outputs["conv_2"].CopyFrom(out)
    signatures.signature_def["__saved_model_init_op"].outputs["__saved_model_init_op"].name = "NoOp"
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = "cnn"
    response.model_spec.version.value = 0
    response.metadata["signature_def"].Pack(signatures)
    assert (
        response.metadata["signature_def"].type_url
        == "type.googleapis.com/tensorflow.serving.SignatureDefMap"
    )
    catalogue = parse_metadata(response.SerializeToString(), "cnn")
    assert catalogue.version == 0 and list(catalogue.layers) == ["conv_2"]
    layer = catalogue.layers["conv_2"]
    assert layer.inputs["image"].describe() == "float32[?, 28, 28, 1]" and layer.output.shape is None


def test_message_names_never_clash_with_tensorflow() -> None:
    assert pb.TensorProto.DESCRIPTOR.full_name == "layertap.serving.TensorProto"
    from tensorflow.core.framework import tensor_pb2

    assert tensor_pb2.TensorProto.DESCRIPTOR.full_name == "tensorflow.TensorProto"
    assert tensors.array_to_proto(np.ones(2)).DESCRIPTOR.file.package == "layertap.serving"
