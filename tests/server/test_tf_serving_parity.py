"""The official tensorflow_serving.apis stubs against `layertap serve`: TF Serving's messages and
errors, row by row."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import wrappers_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from layertap.server.grpc.servicer import grpc_message
from layertap.server.status import QUEUE_FULL_MESSAGE


@pytest.fixture
def stubs(
    make_repo: Callable[..., Path], start_server: Callable[..., tuple[object, grpc.Channel]]
) -> tuple[prediction_service_pb2_grpc.PredictionServiceStub, model_service_pb2_grpc.ModelServiceStub]:
    base = make_repo("m", {1: "1", 2: "2"})
    _, channel = start_server(model_config_file="", model_name="m", model_base_path=str(base))
    return (
        prediction_service_pb2_grpc.PredictionServiceStub(channel),
        model_service_pb2_grpc.ModelServiceStub(channel),
    )


def _request(name: str = "m", signature: str = "", **inputs: np.ndarray) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = signature
    for alias, array in (inputs or {"x": np.array([[1.0, 1.0]], np.float32)}).items():
        request.inputs[alias].CopyFrom(tf.make_tensor_proto(array))
    return request


def _error(call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value.code(), caught.value.details()


def test_predict_defaults_to_serving_default_and_echoes_resolved_spec(stubs: tuple) -> None:
    prediction, _ = stubs
    response = prediction.Predict(_request(), timeout=10)
    assert response.model_spec.name == "m"
    assert response.model_spec.signature_name == "serving_default"
    assert response.model_spec.version.value == 2
    assert sorted(response.outputs) == ["y", "z"]
    # Typed fields by default, not tensor_content.
    assert list(response.outputs["y"].float_val) == [8.0, 12.0]
    assert response.outputs["y"].tensor_content == b""
    np.testing.assert_array_equal(tf.make_ndarray(response.outputs["z"]), [[2.0, 2.0]])


def test_label_is_never_echoed_and_specific_version_is(
    make_repo: Callable[..., Path], start_server: Callable[..., tuple[object, grpc.Channel]], tmp_path: Path
) -> None:
    base = make_repo("m", {1: "1", 2: "2"})
    config = tmp_path / "models.config"
    config.write_text(
        f'model_config_list {{ config {{ name: "m" base_path: "{base}" model_platform: "tensorflow" '
        'model_version_policy { all {} } version_labels { key: "stable" value: 1 } } }\n'
    )
    _, channel = start_server(model_config_file=str(config), allow_version_labels_for_unavailable_models=True)
    prediction = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = _request()
    request.model_spec.version_label = "stable"
    response = prediction.Predict(request, timeout=10)
    assert response.model_spec.WhichOneof("version_choice") == "version"
    assert response.model_spec.version.value == 1
    assert list(response.outputs["y"].float_val) == [4.0, 6.0]
    request.model_spec.version.value = 2
    assert prediction.Predict(request, timeout=10).model_spec.version.value == 2


def test_int_and_half_dtypes_and_tensor_content_flag(
    make_repo: Callable[..., Path], start_server: Callable[..., tuple[object, grpc.Channel]]
) -> None:
    base = make_repo("m", {1: "1"})
    _, channel = start_server(
        model_name="m", model_base_path=str(base), enable_serialization_as_tensor_content=True
    )
    prediction = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    added = prediction.Predict(
        _request(signature="add", a=np.array([1, 2], np.int64), b=np.array([10, 20], np.int64)), timeout=10
    )
    assert added.outputs["sum"].tensor_content == np.array([11, 22], np.int64).tobytes()
    halved = prediction.Predict(
        _request(signature="outer/half", n=np.array([[2, 4, 7]], np.int32)), timeout=10
    )
    assert halved.outputs["halved"].dtype == tf.float16.as_datatype_enum
    np.testing.assert_array_equal(
        tf.make_ndarray(halved.outputs["halved"]), np.array([[1, 2, 3.5]], np.float16)
    )


def test_half_outputs_use_half_val_by_default(stubs: tuple) -> None:
    prediction, _ = stubs
    response = prediction.Predict(
        _request(signature="outer/half", n=np.array([[2, 4, 7]], np.int32)), timeout=10
    )
    halved = response.outputs["halved"]
    assert list(halved.half_val) == [int(v) for v in np.array([1, 2, 3.5], np.float16).view(np.uint16)]


# TF Serving's answers (predict_util.cc, server_core.cc, get_model_status_impl.cc), one row each:
# (request builder, code, exact message).
ROWS: list[tuple[str, Callable[[], predict_pb2.PredictRequest], grpc.StatusCode, str]] = [
    (
        "unknown model",
        lambda: _request(name="nope"),
        grpc.StatusCode.NOT_FOUND,
        "Servable not found for request: Latest(nope)",
    ),
    (
        "empty model name",
        lambda: _request(name=""),
        grpc.StatusCode.INVALID_ARGUMENT,
        "ModelSpec has no name specified.",
    ),
    (
        "unknown signature",
        lambda: _request(signature="conv_9"),
        grpc.StatusCode.FAILED_PRECONDITION,
        'Serving signature key "conv_9" not found.',
    ),
    (
        "missing input",
        lambda: _request(signature="add", a=np.array([1], np.int64)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "input size does not match signature: 1!=2 len({a}) != len({a,b}). Sent extra: {}. "
        "Missing but required: {b}.",
    ),
    (
        "extra input",
        lambda: _request(x=np.ones((1, 2), np.float32), w=np.ones((1, 2), np.float32)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "input size does not match signature: 2!=1 len({w,x}) != len({x}). Sent extra: {w}. "
        "Missing but required: {}.",
    ),
    (
        "wrong alias",
        lambda: _request(images=np.ones((1, 2), np.float32)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "input tensor alias not found in signature: images. Inputs expected to be in the set {x}.",
    ),
    (
        "dtype mismatch",
        lambda: _request(x=np.ones((1, 2), np.int32)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "Expects arg[0] to be float but int32 is provided",
    ),
]


@pytest.mark.parametrize(("builder", "code", "message"), [row[1:] for row in ROWS], ids=[r[0] for r in ROWS])
def test_error_rows(
    stubs: tuple, builder: Callable[[], predict_pb2.PredictRequest], code: grpc.StatusCode, message: str
) -> None:
    prediction, _ = stubs
    assert _error(lambda: prediction.Predict(builder(), timeout=10)) == (code, message)


def test_version_not_loaded_and_unknown_label(stubs: tuple) -> None:
    prediction, _ = stubs
    request = _request()
    request.model_spec.version.value = 3
    assert _error(lambda: prediction.Predict(request, timeout=10)) == (
        grpc.StatusCode.NOT_FOUND,
        "Servable not found for request: Specific(m, 3)",
    )
    # Version 1 is on disk but latest{1} does not serve it.
    request.model_spec.version.value = 1
    assert _error(lambda: prediction.Predict(request, timeout=10)) == (
        grpc.StatusCode.NOT_FOUND,
        "Servable not found for request: Specific(m, 1)",
    )
    request.model_spec.version_label = "canary"
    assert _error(lambda: prediction.Predict(request, timeout=10)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "Unrecognized servable version label: canary",
    )


def test_output_filter(stubs: tuple) -> None:
    prediction, _ = stubs
    request = _request()
    request.output_filter.append("z")
    response = prediction.Predict(request, timeout=10)
    assert list(response.outputs) == ["z"]
    request.output_filter[:] = ["logits"]
    assert _error(lambda: prediction.Predict(request, timeout=10)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "output tensor alias not found in signature: logits Outputs expected to be in the set {y,z}.",
    )
    request.output_filter[:] = ["y", "y"]
    assert _error(lambda: prediction.Predict(request, timeout=10)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "duplicate output tensor alias: y",
    )


def test_long_messages_are_truncated_like_tf_serving(stubs: tuple) -> None:
    prediction, _ = stubs
    name = "s" * 2000
    code, message = _error(lambda: prediction.Predict(_request(signature=name), timeout=10))
    full = f'Serving signature key "{name}" not found.'
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert message == full[:1024] + "...TRUNCATED"
    assert grpc_message(full) == message


def test_metadata_is_any_packed_signature_def_map(stubs: tuple) -> None:
    prediction, _ = stubs
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "m"
    assert _error(lambda: prediction.GetModelMetadata(request, timeout=10)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "GetModelMetadataRequest must specify at least one metadata_field",
    )
    request.metadata_field.append("signature_def")
    response = prediction.GetModelMetadata(request, timeout=10)
    assert response.model_spec.name == "m"
    assert response.model_spec.version.value == 2
    packed = response.metadata["signature_def"]
    assert packed.type_url == "type.googleapis.com/tensorflow.serving.SignatureDefMap"
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    assert packed.Unpack(signature_map)
    assert sorted(signature_map.signature_def) == [
        "__saved_model_init_op",
        "add",
        "outer/half",
        "serving_default",
        "spin",
    ]
    add = signature_map.signature_def["add"]
    assert sorted(add.inputs) == ["a", "b"]
    assert add.inputs["a"].dtype == tf.int64.as_datatype_enum
    assert add.method_name == "tensorflow/serving/predict"


def test_model_status_states_and_missing_version(stubs: tuple) -> None:
    _, model = stubs
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "m"
    response = model.GetModelStatus(request, timeout=10)
    assert [(s.version, s.state, s.status.error_code) for s in response.model_version_status] == [
        (2, get_model_status_pb2.ModelVersionStatus.AVAILABLE, 0)
    ]
    request.model_spec.version.CopyFrom(wrappers_pb2.Int64Value(value=7))
    assert _error(lambda: model.GetModelStatus(request, timeout=10)) == (
        grpc.StatusCode.NOT_FOUND,
        "Could not find version 7 of model m",
    )
    # A label is ignored by GetModelStatus.
    request.model_spec.version_label = "whatever"
    assert len(model.GetModelStatus(request, timeout=10).model_version_status) == 1


def test_classify_needs_a_classification_signature(stubs: tuple) -> None:
    # Classify is served (tests/server/test_inference.py); a signature without the classification
    # keys is refused by them, as TF Serving does without --enable_signature_method_name_check
    # (its default), printing the signature.
    prediction, _ = stubs
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "m"
    code, message = _error(lambda: prediction.Classify(request, timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert message.startswith('No classification inputs found in SignatureDef: inputs {\n  key: "x"\n')
    assert message.endswith('method_name: "tensorflow/serving/predict"\n')


def test_deadline_becomes_the_session_timeout(stubs: tuple) -> None:
    prediction, _ = stubs
    code, _ = _error(lambda: prediction.Predict(_request(signature="spin", n=np.int32(10**8)), timeout=0.5))
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED
    # The server is still healthy afterwards.
    assert prediction.Predict(_request(), timeout=10).model_spec.version.value == 2


def test_full_queue_answers_unavailable(
    make_repo: Callable[..., Path], start_server: Callable[..., tuple[object, grpc.Channel]]
) -> None:
    base = make_repo("m", {1: "1"})
    _, channel = start_server(
        model_name="m", model_base_path=str(base), grpc_max_threads=1, max_queued_requests=1
    )
    prediction = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    calls = [
        prediction.Predict.future(_request(signature="spin", n=np.int32(20000)), timeout=60) for _ in range(8)
    ]
    outcomes = []
    for call in calls:
        try:
            call.result()
            outcomes.append("ok")
        except grpc.RpcError as error:
            outcomes.append((error.code(), error.details()))
    refused = (grpc.StatusCode.UNAVAILABLE, QUEUE_FULL_MESSAGE)
    assert set(outcomes) == {"ok", refused}
    assert QUEUE_FULL_MESSAGE == "The batch scheduling queue to which this task was submitted is full"
