"""Classify, Regress, MultiInference and tf.Example in our schema against the official messages.

Every message is built with TensorFlow's and TF Serving's own classes, parsed into ours with no
unknown field left over, and serialized back to bytes the official class reads as the same message;
then the other way, from ours to theirs.
"""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import unknown_fields
from google.protobuf.message import Message

from layertap.proto import methods
from layertap.proto import serving_pb2 as pb
from tests.guarantees import import_or_skip

tf = import_or_skip("tensorflow")
classification_pb2 = import_or_skip("tensorflow_serving.apis.classification_pb2")
from tensorflow_serving.apis import (  # noqa: E402
    inference_pb2,
    input_pb2,
    model_pb2,
    prediction_log_pb2,
    regression_pb2,
)


def official_example(index: int) -> Any:
    """A tf.train.Example with every kind of feature, extreme values included."""
    return tf.train.Example(
        features=tf.train.Features(
            feature={
                "x": tf.train.Feature(float_list=tf.train.FloatList(value=[index + 0.5, -0.0, 3.4e38])),
                "ids": tf.train.Feature(int64_list=tf.train.Int64List(value=[-(2**63), 2**63 - 1, index])),
                "text": tf.train.Feature(
                    bytes_list=tf.train.BytesList(value=[b"", b"\x00\xff", "é".encode()])
                ),
                "empty": tf.train.Feature(),
            }
        )
    )


def official_messages() -> list[tuple[Message, type[Message]]]:
    spec = model_pb2.ModelSpec(name="half_plus_two", signature_name="classify_x_to_y")
    spec.version.value = 123
    examples = [official_example(i) for i in range(3)]
    plain = input_pb2.Input(example_list=input_pb2.ExampleList(examples=examples))
    with_context = input_pb2.Input(
        example_list_with_context=input_pb2.ExampleListWithContext(examples=examples, context=examples[0])
    )
    classification = classification_pb2.ClassificationResult(
        classifications=[
            classification_pb2.Classifications(
                classes=[
                    classification_pb2.Class(label="cat", score=0.75),
                    classification_pb2.Class(label="", score=-1.5),
                ]
            ),
            classification_pb2.Classifications(),
        ]
    )
    regression = regression_pb2.RegressionResult(
        regressions=[regression_pb2.Regression(value=2.5), regression_pb2.Regression(value=-0.0)]
    )
    classify = classification_pb2.ClassificationRequest(model_spec=spec, input=plain)
    classified = classification_pb2.ClassificationResponse(model_spec=spec, result=classification)
    regress = regression_pb2.RegressionRequest(model_spec=spec, input=with_context)
    regressed = regression_pb2.RegressionResponse(model_spec=spec, result=regression)
    multi = inference_pb2.MultiInferenceRequest(
        tasks=[
            inference_pb2.InferenceTask(model_spec=spec, method_name=methods.CLASSIFY_METHOD_NAME),
            inference_pb2.InferenceTask(model_spec=spec, method_name=methods.REGRESS_METHOD_NAME),
        ],
        input=with_context,
    )
    multi_result = inference_pb2.MultiInferenceResponse(
        results=[
            inference_pb2.InferenceResult(model_spec=spec, classification_result=classification),
            inference_pb2.InferenceResult(model_spec=spec, regression_result=regression),
        ]
    )
    logs = [
        prediction_log_pb2.PredictionLog(
            classify_log=prediction_log_pb2.ClassifyLog(request=classify, response=classified)
        ),
        prediction_log_pb2.PredictionLog(
            regress_log=prediction_log_pb2.RegressLog(request=regress, response=regressed)
        ),
        prediction_log_pb2.PredictionLog(
            multi_inference_log=prediction_log_pb2.MultiInferenceLog(request=multi, response=multi_result)
        ),
    ]
    return [
        (examples[0], pb.Example),
        (examples[0].features.feature["x"], pb.Feature),
        (plain, pb.Input),
        (with_context, pb.Input),
        (with_context.example_list_with_context, pb.ExampleListWithContext),
        (classify, pb.ClassificationRequest),
        (classified, pb.ClassificationResponse),
        (regress, pb.RegressionRequest),
        (regressed, pb.RegressionResponse),
        (multi, pb.MultiInferenceRequest),
        (multi_result, pb.MultiInferenceResponse),
        *[(log, pb.PredictionLog) for log in logs],
    ]


def unknown_count(message: Message) -> int:
    """Unknown fields anywhere in `message`, nested messages included."""
    count = len(unknown_fields.UnknownFieldSet(message))
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            items = value.values() if field.message_type.fields_by_name["value"].message_type else []
            count += sum(unknown_count(item) for item in items)
        elif field.is_repeated:
            count += sum(unknown_count(item) for item in value)
        else:
            count += unknown_count(value)
    return count


@pytest.mark.parametrize("index", range(len(official_messages())))
def test_official_bytes_round_trip_through_ours(index: int) -> None:
    theirs, ours_type = official_messages()[index]
    ours = ours_type.FromString(theirs.SerializeToString())
    assert unknown_count(ours) == 0, f"{ours_type.__name__} leaves fields undeclared"
    assert type(theirs).FromString(ours.SerializeToString()) == theirs, ours_type.__name__
    # Deterministic bytes are identical, field for field, map entry for map entry.
    assert ours.SerializeToString(deterministic=True) == theirs.SerializeToString(deterministic=True)


def test_our_requests_parse_with_the_official_messages() -> None:
    example = pb.Example()
    example.features.feature["x"].float_list.value.extend([1.0, 2.0])
    example.features.feature["ids"].int64_list.value.append(2**63 - 1)
    example.features.feature["s"].bytes_list.value.append(b"\xff")
    context = pb.Example()
    context.features.feature["country"].bytes_list.value.append(b"nz")
    request = pb.MultiInferenceRequest()
    task = request.tasks.add(method_name=methods.REGRESS_METHOD_NAME)
    task.model_spec.name = "m"
    task.model_spec.version_label = "stable"
    request.input.example_list_with_context.examples.append(example)
    request.input.example_list_with_context.context.CopyFrom(context)

    theirs = inference_pb2.MultiInferenceRequest.FromString(request.SerializeToString())
    assert theirs.tasks[0].method_name == "tensorflow/serving/regress"
    assert theirs.tasks[0].model_spec.version_label == "stable"
    parsed = theirs.input.example_list_with_context
    assert list(parsed.examples[0].features.feature["x"].float_list.value) == [1.0, 2.0]
    assert list(parsed.examples[0].features.feature["ids"].int64_list.value) == [2**63 - 1]
    assert parsed.context.features.feature["country"].bytes_list.value == [b"nz"]
    # A serialized Example of ours is what tf.io.parse_example reads.
    features = tf.io.parse_example(
        [example.SerializeToString()],
        {"x": tf.io.FixedLenFeature([2], tf.float32), "ids": tf.io.FixedLenFeature([1], tf.int64)},
    )
    assert features["x"].numpy().tolist() == [[1.0, 2.0]]
    assert features["ids"].numpy().tolist() == [[2**63 - 1]]


def test_signature_constants_are_tensorflows() -> None:
    from tensorflow.python.saved_model import signature_constants as constants

    for name in (
        "PREDICT_METHOD_NAME",
        "CLASSIFY_METHOD_NAME",
        "REGRESS_METHOD_NAME",
        "CLASSIFY_INPUTS",
        "CLASSIFY_OUTPUT_CLASSES",
        "CLASSIFY_OUTPUT_SCORES",
        "REGRESS_INPUTS",
        "REGRESS_OUTPUTS",
    ):
        assert getattr(methods, name) == getattr(constants, name), name
