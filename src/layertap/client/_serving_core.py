"""ServingClient's decisions, shared by ServingClient and AsyncServingClient; no I/O happens here.

TF Serving's Classify, Regress, MultiInference and plain Predict: request bytes and result
decoding, each call a `Flow` (see `_flow`) that a transport carries out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from google.protobuf.message import DecodeError, Message

from layertap.client._base_core import Core
from layertap.client._examples import ExampleLike, input_message
from layertap.client._flow import Flow, Send
from layertap.client._settings import Timeout
from layertap.errors import InvalidInputError, TensorFormatError
from layertap.proto import methods
from layertap.proto import serving_pb2 as pb
from layertap.wire import codec

__all__ = ["Classification", "Result", "ServingCore"]

T = TypeVar("T")

# What a task of multi_inference may ask for, by short or full method name.
_TASK_METHODS = {
    "classify": methods.CLASSIFY_METHOD_NAME,
    "regress": methods.REGRESS_METHOD_NAME,
    methods.CLASSIFY_METHOD_NAME: methods.CLASSIFY_METHOD_NAME,
    methods.REGRESS_METHOD_NAME: methods.REGRESS_METHOD_NAME,
}


@dataclass(frozen=True)
class Classification:
    """The answer of Classify for a batch of examples, one row per example.

    Attributes:
        labels: str array of shape (examples, classes); "" where the signature has no classes output.
        scores: float32 array of the same shape; 0 where the signature has no scores output.
    """

    labels: np.ndarray
    scores: np.ndarray


# One task's answer in multi_inference: a Classification, or the regression values.
Result = Classification | np.ndarray


class ServingCore(Core):
    """Request building and decoding for one model's signatures, called by name."""

    def classify(
        self, examples: Sequence[ExampleLike], signature: str, context: ExampleLike | None, timeout: Timeout
    ) -> Flow[Classification]:
        """Classify: labels and scores, one row per example."""
        request = pb.ClassificationRequest(
            model_spec=self.settings.spec(signature), input=input_message(examples, context)
        )
        return self._call(methods.CLASSIFY, request, timeout, _classified)

    def regress(
        self, examples: Sequence[ExampleLike], signature: str, context: ExampleLike | None, timeout: Timeout
    ) -> Flow[np.ndarray]:
        """Regress: one float32 value per example."""
        request = pb.RegressionRequest(
            model_spec=self.settings.spec(signature), input=input_message(examples, context)
        )
        return self._call(methods.REGRESS, request, timeout, _regressed)

    def multi_inference(
        self,
        examples: Sequence[ExampleLike],
        tasks: Mapping[str, str],
        context: ExampleLike | None,
        timeout: Timeout,
    ) -> Flow[dict[str, Result]]:
        """MultiInference: each task's result by signature name, in the order of `tasks`."""
        if not tasks:
            raise InvalidInputError("tasks is empty: give {signature name: 'classify' or 'regress'}")
        request = pb.MultiInferenceRequest(input=input_message(examples, context))
        for signature, method in tasks.items():
            if method not in _TASK_METHODS:
                raise InvalidInputError(
                    f"task {signature!r}: method {method!r} is not one MultiInference runs; "
                    f"accepted: 'classify', 'regress' (or {methods.CLASSIFY_METHOD_NAME!r}, "
                    f"{methods.REGRESS_METHOD_NAME!r})"
                )
            request.tasks.add(model_spec=self.settings.spec(signature), method_name=_TASK_METHODS[method])
        return self._call(
            methods.MULTI_INFERENCE, request, timeout, lambda data: _multi_inference(data, tasks)
        )

    def predict(
        self, inputs: Mapping[str, Any], signature: str, output_filter: Sequence[str], timeout: Timeout
    ) -> Flow[dict[str, np.ndarray]]:
        """Predict on one signature: arrays by output alias."""
        if isinstance(inputs, np.ndarray) or not isinstance(inputs, Mapping) or not inputs:
            raise InvalidInputError(
                f"inputs must be a non-empty dict of arrays by input alias, got {type(inputs).__name__}"
            )
        arrays = {str(alias): np.asarray(value) for alias, value in inputs.items()}
        request = codec.encode_predict_request(self.settings.spec(signature), arrays, list(output_filter))
        return self._call(
            methods.PREDICT, request, timeout, lambda data: codec.decode_predict_response(data).outputs
        )

    def _call(
        self, path: str, request: Message | bytes, timeout: Timeout, decode: Callable[[bytes], T]
    ) -> Flow[T]:
        data = request if isinstance(request, bytes) else request.SerializeToString()
        replies = yield Send(path, [data], self.settings.deadline(timeout))
        return decode(replies[0])


def _classified(data: bytes) -> Classification:
    return _classification(_parse(pb.ClassificationResponse, data).result)


def _regressed(data: bytes) -> np.ndarray:
    return _regression(_parse(pb.RegressionResponse, data).result)


def _predicted(data: bytes) -> dict[str, np.ndarray]:
    return codec.decode_predict_response(data).outputs


def _multi_inference(data: bytes, tasks: Mapping[str, str]) -> dict[str, Result]:
    response = _parse(pb.MultiInferenceResponse, data)
    if len(response.results) != len(tasks):
        raise TensorFormatError(
            f"MultiInferenceResponse has {len(response.results)} results for {len(tasks)} tasks"
        )
    results: dict[str, Result] = {}
    for signature, result in zip(tasks, response.results, strict=True):
        kind = result.WhichOneof("result")
        if kind == "classification_result":
            results[signature] = _classification(result.classification_result)
        elif kind == "regression_result":
            results[signature] = _regression(result.regression_result)
        else:
            raise TensorFormatError(f"MultiInferenceResponse: the result of task {signature!r} is empty")
    return results


def _classification(result: pb.ClassificationResult) -> Classification:
    widths = {len(row.classes) for row in result.classifications}
    if len(widths) > 1:
        raise TensorFormatError(
            f"ClassificationResult rows have different numbers of classes ({sorted(widths)}); "
            "TF Serving answers one row per example with the same classes"
        )
    width = widths.pop() if widths else 0
    rows = len(result.classifications)
    labels = [[item.label for item in row.classes] for row in result.classifications]
    scores = [[item.score for item in row.classes] for row in result.classifications]
    return Classification(
        labels=np.array(labels, dtype=str).reshape(rows, width),
        scores=np.array(scores, dtype=np.float32).reshape(rows, width),
    )


def _regression(result: pb.RegressionResult) -> np.ndarray:
    return np.array([item.value for item in result.regressions], dtype=np.float32)


def _parse(message_type: type[Message], data: bytes) -> Any:
    try:
        return message_type.FromString(data)
    except DecodeError as error:
        raise TensorFormatError(
            f"the server's reply is not a {message_type.DESCRIPTOR.name}: {error}"
        ) from None
