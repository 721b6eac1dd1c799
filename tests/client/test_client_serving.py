"""ServingClient and AsyncServingClient: Classify, Regress, MultiInference and Predict over real gRPC.

The peer is built on the official `tensorflow_serving.apis` stubs and runs TF Serving's test model
half_plus_two (the `half_plus_two` fixture) with TensorFlow: it feeds the serialized examples to the
signature's string input, the context's bytes before each example's as TF Serving does (protobuf
merge: an example's own feature wins), and maps `scores`/`classes`/`outputs` into the results.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from layertap.client import AsyncServingClient, Classification, ServingClient
from layertap.errors import InvalidInputError, ModelNotFoundError, ServerUnavailableError
from layertap.proto import serving_pb2 as pb
from tests.guarantees import import_or_skip

tf = import_or_skip("tensorflow")
from tensorflow_serving.apis import (  # noqa: E402
    classification_pb2,
    inference_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)


class InferencePeer(prediction_service_pb2_grpc.PredictionServiceServicer):  # type: ignore[misc]
    """half_plus_two behind the official servicer; records the last request of each method."""

    def __init__(self, export_dir: Path) -> None:
        self.model = tf.saved_model.load(str(export_dir))
        self.requests: dict[str, Any] = {}
        self.unavailable_left = 0

    def _signature(self, spec: Any, context: grpc.ServicerContext) -> Any:
        if spec.name != "half_plus_two":
            context.abort(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({spec.name})")
        if self.unavailable_left:
            self.unavailable_left -= 1
            context.abort(grpc.StatusCode.UNAVAILABLE, "restarting")
        return self.model.signatures[spec.signature_name or "serving_default"]

    @staticmethod
    def _serialized(request_input: Any) -> Any:
        if request_input.WhichOneof("kind") == "example_list":
            return tf.constant([e.SerializeToString() for e in request_input.example_list.examples])
        listed = request_input.example_list_with_context
        prefix = listed.context.SerializeToString()
        return tf.constant([prefix + e.SerializeToString() for e in listed.examples])

    def _classify(self, spec: Any, request_input: Any, context: grpc.ServicerContext) -> Any:
        outputs = self._signature(spec, context)(inputs=self._serialized(request_input))
        scores = outputs["scores"].numpy() if "scores" in outputs else None
        classes = outputs["classes"].numpy() if "classes" in outputs else None
        result = classification_pb2.ClassificationResult()
        for row in range(len(scores if scores is not None else classes)):
            entry = result.classifications.add()
            for column in range((scores if scores is not None else classes).shape[1]):
                item = entry.classes.add()
                if scores is not None:
                    item.score = scores[row, column]
                if classes is not None:
                    item.label = classes[row, column].decode()
        return result

    def _regress(self, spec: Any, request_input: Any, context: grpc.ServicerContext) -> Any:
        values = self._signature(spec, context)(inputs=self._serialized(request_input))["outputs"]
        result = regression_pb2.RegressionResult()
        result.regressions.extend(regression_pb2.Regression(value=v) for v in values.numpy().reshape(-1))
        return result

    def Classify(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self.requests["Classify"] = request
        result = self._classify(request.model_spec, request.input, context)
        return classification_pb2.ClassificationResponse(model_spec=request.model_spec, result=result)

    def Regress(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self.requests["Regress"] = request
        result = self._regress(request.model_spec, request.input, context)
        return regression_pb2.RegressionResponse(model_spec=request.model_spec, result=result)

    def MultiInference(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self.requests["MultiInference"] = request
        response = inference_pb2.MultiInferenceResponse()
        for task in request.tasks:
            result = response.results.add(model_spec=task.model_spec)
            if task.method_name == "tensorflow/serving/classify":
                result.classification_result.CopyFrom(self._classify(task.model_spec, request.input, context))
            else:
                result.regression_result.CopyFrom(self._regress(task.model_spec, request.input, context))
        return response

    def Predict(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self.requests["Predict"] = request
        feeds = {alias: tf.constant(tf.make_ndarray(proto)) for alias, proto in request.inputs.items()}
        outputs = self._signature(request.model_spec, context)(**feeds)
        response = predict_pb2.PredictResponse(model_spec=request.model_spec)
        for alias, value in outputs.items():
            if not request.output_filter or alias in request.output_filter:
                response.outputs[alias].CopyFrom(tf.make_tensor_proto(value.numpy()))
        return response


@pytest.fixture(scope="module")
def served(half_plus_two: Path) -> Iterator[tuple[InferencePeer, str]]:
    (export_dir,) = half_plus_two.iterdir()
    peer = InferencePeer(export_dir)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(peer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield peer, f"127.0.0.1:{port}"
    server.stop(None)


@pytest.fixture
def client(served: tuple[InferencePeer, str]) -> Iterator[ServingClient]:
    with ServingClient(served[1], "half_plus_two", timeout=30) as serving:
        yield serving


def test_regress_feature_dicts(client: ServingClient) -> None:
    values = client.regress([{"x": 1.0}, {"x": 5.0}, {"x": [-4.0]}], signature="regress_x_to_y")
    assert values.dtype == np.float32 and values.tolist() == [2.5, 4.5, 0.0]
    assert client.regress([{"x": np.float32(1.0)}], signature="regress_x_to_y2").tolist() == [3.5]


def test_classify_scores_only_signature(client: ServingClient) -> None:
    result = client.classify([{"x": 1.0}, {"x": 3.0}], signature="classify_x_to_y")
    assert isinstance(result, Classification)
    assert result.scores.dtype == np.float32 and result.scores.tolist() == [[2.5], [3.5]]
    assert result.labels.tolist() == [[""], [""]]  # the signature has no classes output


def test_examples_as_bytes_and_as_tensorflow_messages(client: ServingClient) -> None:
    official = tf.train.Example(
        features=tf.train.Features(
            feature={"x": tf.train.Feature(float_list=tf.train.FloatList(value=[7.0]))}
        )
    )
    ours = pb.Example()
    ours.features.feature["x"].float_list.value.append(9.0)
    values = client.regress([official, official.SerializeToString(), ours], signature="regress_x_to_y")
    assert values.tolist() == [5.5, 5.5, 6.5]


def test_context_features_are_merged_into_each_example(
    client: ServingClient, served: tuple[InferencePeer, str]
) -> None:
    values = client.regress(
        [{"x2": 1.0}, {"x2": 2.0, "x": 4.0}], context={"x": 2.0}, signature="regress_x_to_y"
    )
    assert values.tolist() == [3.0, 4.0]  # the second example's own x wins over the context's
    sent = served[0].requests["Regress"].input
    assert sent.WhichOneof("kind") == "example_list_with_context"
    assert list(sent.example_list_with_context.context.features.feature["x"].float_list.value) == [2.0]


def test_every_feature_kind_reaches_tensorflow_intact(
    client: ServingClient, served: tuple[InferencePeer, str]
) -> None:
    features = {
        "x": 1.0,
        "ids": np.array([[-(2**63), 2**63 - 1]]),
        "flag": True,
        "raw": [b"a\x00", b"\x00"],  # trailing NUL bytes survive (numpy's bytes dtype would drop them)
        "text": "é",
        "count": 3,
    }
    client.regress([features], signature="regress_x_to_y")
    (sent,) = served[0].requests["Regress"].input.example_list.examples
    parsed = tf.io.parse_single_example(
        sent.SerializeToString(),
        {
            "ids": tf.io.FixedLenFeature([2], tf.int64),
            "flag": tf.io.FixedLenFeature([1], tf.int64),
            "raw": tf.io.FixedLenFeature([2], tf.string),
            "text": tf.io.FixedLenFeature([1], tf.string),
            "count": tf.io.FixedLenFeature([1], tf.int64),
        },
    )
    assert parsed["ids"].numpy().tolist() == [-(2**63), 2**63 - 1]
    assert parsed["flag"].numpy().tolist() == [1] and parsed["count"].numpy().tolist() == [3]
    assert parsed["raw"].numpy().tolist() == [b"a\x00", b"\x00"]
    assert parsed["text"].numpy().tolist() == ["é".encode()]


def test_multi_inference_one_input_several_signatures(
    client: ServingClient, served: tuple[InferencePeer, str]
) -> None:
    tasks = {"classify_x_to_y": "classify", "regress_x_to_y2": "regress", "regress_x_to_y": "regress"}
    results = client.multi_inference([{"x": 1.0}, {"x": 2.0}], tasks)
    assert list(results) == list(tasks)
    classified = results["classify_x_to_y"]
    assert isinstance(classified, Classification) and classified.scores.tolist() == [[2.5], [3.0]]
    assert np.asarray(results["regress_x_to_y2"]).tolist() == [3.5, 4.0]
    assert np.asarray(results["regress_x_to_y"]).tolist() == [2.5, 3.0]
    sent = served[0].requests["MultiInference"]
    assert [t.method_name for t in sent.tasks] == [
        "tensorflow/serving/classify",
        "tensorflow/serving/regress",
        "tensorflow/serving/regress",
    ]
    assert {t.model_spec.name for t in sent.tasks} == {"half_plus_two"}


def test_predict_any_signature_with_output_filter(client: ServingClient) -> None:
    out = client.predict({"x": np.array([[1.0], [5.0]], np.float32)}, output_filter=["y"])
    assert list(out) == ["y"] and out["y"].tolist() == [[2.5], [4.5]]


def test_version_pinning_reaches_the_request(served: tuple[InferencePeer, str]) -> None:
    with ServingClient(served[1], "half_plus_two", version_label="stable") as labelled:
        labelled.regress([{"x": 1.0}], signature="regress_x_to_y")
    assert served[0].requests["Regress"].model_spec.version_label == "stable"
    with ServingClient(served[1], "half_plus_two", version=0) as pinned:
        pinned.classify([{"x": 1.0}], signature="classify_x_to_y")
    spec = served[0].requests["Classify"].model_spec
    assert spec.HasField("version") and spec.version.value == 0


def test_server_errors_map_to_layertap_errors_and_unavailable_is_retried(
    served: tuple[InferencePeer, str],
) -> None:
    peer, target = served
    with (
        ServingClient(target, "nope") as missing,
        pytest.raises(ModelNotFoundError, match="Servable not found"),
    ):
        missing.regress([{"x": 1.0}], signature="regress_x_to_y")
    with ServingClient(target, "half_plus_two") as client:
        peer.unavailable_left = 2
        assert client.regress([{"x": 1.0}], signature="regress_x_to_y").tolist() == [2.5]
    with ServingClient(target, "half_plus_two", retry=None) as client:
        peer.unavailable_left = 1
        with pytest.raises(ServerUnavailableError, match="restarting"):
            client.regress([{"x": 1.0}], signature="regress_x_to_y")


def test_async_client_gives_the_same_results(served: tuple[InferencePeer, str]) -> None:
    async def calls() -> tuple[Any, ...]:
        async with AsyncServingClient(served[1], "half_plus_two", timeout=30) as client:
            return await asyncio.gather(
                client.regress([{"x": 1.0}], signature="regress_x_to_y"),
                client.classify([{"x": 1.0}], signature="classify_x_to_y"),
                client.multi_inference([{"x": 3.0}], {"regress_x_to_y": "regress"}),
                client.predict({"x": np.array([[5.0]], np.float32)}),
            )

    regressed, classified, multi, predicted = asyncio.run(calls())
    assert regressed.tolist() == [2.5] and classified.scores.tolist() == [[2.5]]
    assert multi["regress_x_to_y"].tolist() == [3.5] and predicted["y"].tolist() == [[4.5]]


@pytest.mark.parametrize(
    ("examples", "message"),
    [
        ([], "examples is empty"),
        ({"x": 1.0}, "wrap a single example in a list"),
        (b"\x0a", "wrap a single example in a list"),
        ([{"x": []}], "example 0, feature 'x': an empty list has no kind"),
        ([{"x": 1.0}, {"x": {"nested": 1}}], "example 1, feature 'x': cannot encode dict"),
        ([{"x": np.array([2**64 - 1], np.uint64)}], "does not fit an Int64List"),
        ([{"x": 1e300}], "does not fit a FloatList"),
        ([{"x": np.array([1 + 2j])}], "complex128 value cannot be a tf.Example feature"),
        ([{"": 1.0}], "feature names must be non-empty strings"),
        ([b"\xff\xff"], "example 0: not a serialized tf.Example"),
        ([3.5], "expected a dict of features"),
    ],
)
def test_bad_examples_are_refused_before_sending(examples: Any, message: str) -> None:
    with ServingClient("127.0.0.1:1", "m") as client, pytest.raises(InvalidInputError, match=message):
        client.regress(examples)


def test_bad_tasks_and_predict_inputs_are_refused_before_sending() -> None:
    with ServingClient("127.0.0.1:1", "m") as client:
        with pytest.raises(InvalidInputError, match="accepted: 'classify', 'regress'"):
            client.multi_inference([{"x": 1.0}], {"s": "predict"})
        with pytest.raises(InvalidInputError, match="tasks is empty"):
            client.multi_inference([{"x": 1.0}], {})
        with pytest.raises(InvalidInputError, match="non-empty dict of arrays"):
            client.predict(np.ones(2))  # type: ignore[arg-type]
