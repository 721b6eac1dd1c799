"""Classify, Regress and MultiInference over gRPC, as TF Serving answers them, with the official stubs.

On TF Serving's own test model `half_plus_two` (tests/fixtures/half_plus_two.py: y = 0.5x + 2, y2 = 0.5x + 3,
classify_x_to_y scores y), saved as a TF1 graph and as a TF2 module, the values are the ones TF
Serving's model server tests expect, with `--enable_signature_method_name_check` off (its default)
and on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import numpy as np
import pytest
from tensorflow_serving.apis import (
    classification_pb2,
    inference_pb2,
    input_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from layertap.server import ServerOptions, create_server

Stub = prediction_service_pb2_grpc.PredictionServiceStub


@contextmanager
def _serving(base: Path, *, check_method_names: bool = False) -> Iterator[Stub]:
    server, port = create_server(
        ServerOptions(
            port=0,
            model_name="half_plus_two",
            model_base_path=str(base),
            enable_signature_method_name_check=check_method_names,
        )
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield Stub(channel)
    finally:
        server.stop(grace=1.0)


@pytest.fixture(scope="module")
def stub(half_plus_two: Path) -> Iterator[Stub]:
    with _serving(half_plus_two) as served:
        yield served


@pytest.fixture(scope="module")
def checked_stub(half_plus_two: Path) -> Iterator[Stub]:
    """The TF1 model under `--enable_signature_method_name_check`."""
    with _serving(half_plus_two, check_method_names=True) as served:
        yield served


def _input(*xs: float | None, context: float | None = None) -> input_pb2.Input:
    request_input = input_pb2.Input()
    listed = request_input.example_list_with_context if context is not None else request_input.example_list
    if context is not None:
        listed.context.features.feature["x"].float_list.value.append(context)  # type: ignore[union-attr]
    for x in xs:
        example = listed.examples.add()
        if x is not None:
            example.features.feature["x"].float_list.value.append(x)
    return request_input


def _classify(signature: str, request_input: input_pb2.Input) -> classification_pb2.ClassificationRequest:
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "half_plus_two"
    request.model_spec.signature_name = signature
    request.input.CopyFrom(request_input)
    return request


def _regress(signature: str, request_input: input_pb2.Input) -> regression_pb2.RegressionRequest:
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = "half_plus_two"
    request.model_spec.signature_name = signature
    request.input.CopyFrom(request_input)
    return request


def _error(call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value.code(), caught.value.details()


def test_classify_maps_scores_into_classification_results(stub: Stub) -> None:
    response = stub.Classify(_classify("classify_x_to_y", _input(2.0, 4.0)), timeout=30)
    assert (response.model_spec.name, response.model_spec.signature_name) == (
        "half_plus_two",
        "classify_x_to_y",
    )
    assert response.model_spec.version.value == 123
    assert [[(c.label, c.score) for c in row.classes] for row in response.result.classifications] == [
        [("", 3.0)],
        [("", 4.0)],
    ]


def test_regress_and_context_merged_into_each_example(stub: Stub) -> None:
    response = stub.Regress(_regress("regress_x_to_y", _input(2.0)), timeout=30)
    assert [r.value for r in response.result.regressions] == [3.0]
    assert response.model_spec.signature_name == "regress_x_to_y"
    response = stub.Regress(_regress("regress_x_to_y2", _input(2.0)), timeout=30)
    assert [r.value for r in response.result.regressions] == [4.0]
    # The context's x applies where the example has none; the example's own x wins.
    response = stub.Regress(_regress("regress_x_to_y", _input(None, 2.0, context=4.0)), timeout=30)
    assert [r.value for r in response.result.regressions] == [4.0, 3.0]


def test_method_names_are_checked_only_under_the_flag(stub: Stub, checked_stub: Stub) -> None:
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    assert _error(lambda: checked_stub.Classify(_classify("", _input(1.0)), timeout=30)) == (
        invalid,
        "Expected classification signature method_name to be tensorflow/serving/classify. "
        "Was: tensorflow/serving/predict",
    )
    assert _error(lambda: checked_stub.Regress(_regress("classify_x_to_y", _input(1.0)), timeout=30)) == (
        invalid,
        "Expected regression signature method_name to be tensorflow/serving/regress. "
        "Was: tensorflow/serving/classify",
    )
    # Without the flag (TF Serving's default) the same calls fail on the signatures' keys instead:
    # serving_default has the input "x", not "inputs"; classify_x_to_y has "scores", not "outputs".
    code, message = _error(lambda: stub.Classify(_classify("", _input(1.0)), timeout=30))
    assert (code, message.split("\n")[0]) == (
        invalid,
        "No classification inputs found in SignatureDef: inputs {",
    )
    assert 'key: "x"' in message
    code, message = _error(lambda: stub.Regress(_regress("classify_x_to_y", _input(1.0)), timeout=30))
    assert (code, message.split("\n")[0]) == (
        invalid,
        "No regression outputs found in SignatureDef: inputs {",
    )
    assert 'key: "scores"' in message


def test_inputs_and_runtime_errors(stub: Stub) -> None:
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    assert _error(lambda: stub.Regress(_regress("nope", _input(1.0)), timeout=30)) == (
        invalid,
        "No signature was found with the name: nope",
    )
    assert _error(lambda: stub.Regress(_regress("regress_x_to_y", _input()), timeout=30)) == (
        invalid,
        "Input is empty.",
    )
    # An example without the required feature: the parsing kernel's own error.
    code, message = _error(lambda: stub.Regress(_regress("regress_x_to_y", _input(None)), timeout=30))
    assert code == invalid
    assert message.startswith(
        "Name: <unknown>, Feature: x (data type: float) is required but could not be found."
    )
    # regress_x2_to_y3 takes a float tensor, not examples: the runtime refuses the string feed.
    code, message = _error(lambda: stub.Regress(_regress("regress_x2_to_y3", _input(1.0)), timeout=30))
    assert (code, message) == (invalid, "Expects arg[0] to be float but string is provided")
    missing = classification_pb2.ClassificationRequest()
    missing.model_spec.name = "other"
    assert _error(lambda: stub.Classify(missing, timeout=30)) == (
        grpc.StatusCode.NOT_FOUND,
        "Servable not found for request: Latest(other)",
    )


def _task(
    request: inference_pb2.MultiInferenceRequest, signature: str, method: str, model: str = "half_plus_two"
) -> None:
    task = request.tasks.add()
    task.model_spec.name = model
    task.model_spec.signature_name = signature
    task.method_name = method


def test_multi_inference_runs_classify_and_regress_tasks_on_one_input(stub: Stub) -> None:
    request = inference_pb2.MultiInferenceRequest()
    _task(request, "regress_x_to_y", "tensorflow/serving/regress")
    _task(request, "regress_x_to_y2", "tensorflow/serving/regress")
    _task(request, "classify_x_to_y", "tensorflow/serving/classify")
    request.input.CopyFrom(_input(2.0))
    response = stub.MultiInference(request, timeout=30)
    assert [r.model_spec.signature_name for r in response.results] == [
        "regress_x_to_y",
        "regress_x_to_y2",
        "classify_x_to_y",
    ]
    assert {r.model_spec.version.value for r in response.results} == {123}
    assert response.results[0].regression_result.regressions[0].value == 3.0
    assert response.results[1].regression_result.regressions[0].value == 4.0
    assert response.results[2].classification_result.classifications[0].classes[0].score == 3.0


def test_multi_inference_refuses_other_methods_models_and_repeats(stub: Stub) -> None:
    def refused(*tasks: tuple[str, str, str]) -> tuple[grpc.StatusCode, str]:
        request = inference_pb2.MultiInferenceRequest()
        for signature, method, model in tasks:
            _task(request, signature, method, model)
        request.input.CopyFrom(_input(2.0))
        return _error(lambda: stub.MultiInference(request, timeout=30))

    regress = ("regress_x_to_y", "tensorflow/serving/regress", "half_plus_two")
    assert refused(regress, ("serving_default", "tensorflow/serving/predict", "half_plus_two")) == (
        grpc.StatusCode.UNIMPLEMENTED,
        "Unsupported signature method_name: tensorflow/serving/predict",
    )
    assert refused(regress, ("regress_x_to_y2", "tensorflow/serving/regress", "other")) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "All ModelSpecs in a MultiInferenceRequest must access the same model name.",
    )
    assert refused(regress, regress) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "Duplicate evaluation of signature: regress_x_to_y",
    )
    # Two signatures with different input tensors: the one Input is fed to both (util.cc's
    # PerformOneShotTensorComputation at 2.20.0), and x2 is a float tensor, so the session refuses
    # the string feed to the second input in the sorted set {tf_example:0, x2:0}.
    assert refused(regress, ("regress_x2_to_y3", "tensorflow/serving/regress", "half_plus_two")) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "Expects arg[1] to be float but string is provided",
    )
    assert refused() == (grpc.StatusCode.INVALID_ARGUMENT, "ModelSpec has no name specified.")


def test_tf_serving_tf2_cases_classify_regress_and_multi_infer_a_tf2_savedmodel(
    half_plus_two_tf2: Path,
) -> None:
    import tensorflow as tf

    # testClassifyTf2, testRegressTf2 and testMultiInferenceTf2 of TF Serving's model server test: every
    # signature of a TF2 SavedModel says tensorflow/serving/predict, and is served all the same.
    with _serving(half_plus_two_tf2) as tf2:
        classified = tf2.Classify(_classify("classify_x_to_y", _input(2.0)), timeout=30)
        assert [[c.score for c in row.classes] for row in classified.result.classifications] == [[3.0]]
        assert (classified.model_spec.signature_name, classified.model_spec.version.value) == (
            "classify_x_to_y",
            123,
        )
        regressed = tf2.Regress(_regress("regress_x_to_y", _input(2.0)), timeout=30)
        assert [r.value for r in regressed.result.regressions] == [3.0]
        assert regressed.model_spec.signature_name == "regress_x_to_y"
        request = inference_pb2.MultiInferenceRequest()
        _task(request, "regress_x_to_y", "tensorflow/serving/regress")
        _task(request, "classify_x_to_y", "tensorflow/serving/classify")
        request.input.CopyFrom(_input(2.0))
        multi = tf2.MultiInference(request, timeout=30)
        assert multi.results[0].regression_result.regressions[0].value == 3.0
        assert multi.results[1].classification_result.classifications[0].classes[0].score == 3.0
        assert [(r.model_spec.signature_name, r.model_spec.version.value) for r in multi.results] == [
            ("regress_x_to_y", 123),
            ("classify_x_to_y", 123),
        ]
    with _serving(half_plus_two_tf2, check_method_names=True) as checked:
        assert _error(lambda: checked.Classify(_classify("classify_x_to_y", _input(2.0)), timeout=30)) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "Expected classification signature method_name to be tensorflow/serving/classify. "
            "Was: tensorflow/serving/predict",
        )
        assert _error(lambda: checked.MultiInference(request, timeout=30)) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "Expected regression signature method_name to be tensorflow/serving/regress. "
            "Was: tensorflow/serving/predict",
        )
        # Predict accepts predict, classify and regress signatures even under the check.
        predict = predict_pb2.PredictRequest()
        predict.model_spec.name = "half_plus_two"
        predict.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([[2.0]], np.float32)))
        assert list(checked.Predict(predict, timeout=30).outputs["y"].float_val) == [3.0]


def test_warmup_replays_classify_regress_and_multi_inference_records(
    half_plus_two: Path, tmp_path: Path
) -> None:
    import shutil

    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    from layertap.errors import ServerError

    def repository(name: str, example: float | None) -> Path:
        base = tmp_path / name
        shutil.copytree(half_plus_two, base)
        (version,) = base.iterdir()
        (version / "assets.extra").mkdir()
        logs = [prediction_log_pb2.PredictionLog() for _ in range(3)]
        logs[0].classify_log.request.CopyFrom(_classify("classify_x_to_y", _input(1.0)))
        logs[1].regress_log.request.CopyFrom(_regress("regress_x_to_y", _input(example)))
        multi = logs[2].multi_inference_log.request
        _task(multi, "regress_x_to_y2", "tensorflow/serving/regress")
        multi.input.CopyFrom(_input(1.0))
        with tf.io.TFRecordWriter(str(version / "assets.extra" / "tf_serving_warmup_requests")) as writer:
            for log in logs:
                writer.write(log.SerializeToString())
        return base

    options = {"port": 0, "model_name": "half_plus_two", "max_num_load_retries": 0}
    server, _ = create_server(ServerOptions(**options, model_base_path=str(repository("good", 2.0))))
    server.stop(grace=1.0)
    # A record the model cannot run fails the load, as in TF Serving: the regress record has no x.
    with pytest.raises(ServerError, match=r"warmup record 2 of .* failed: Name: <unknown>, Feature: x "):
        create_server(ServerOptions(**options, model_base_path=str(repository("bad", None))))
