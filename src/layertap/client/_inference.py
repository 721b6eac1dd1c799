"""Requests and results of TF Serving's Classify, Regress, MultiInference and plain Predict.

Everything ServingClient and AsyncServingClient share except waiting on the network: request bytes
and result decoding here, settings, deadlines, retries and errors through ClientCore. No I/O here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np
from google.protobuf.message import DecodeError, Message

from layertap.client._core import ClientCore, Timeout
from layertap.client._examples import ExampleLike, input_message
from layertap.client._retry import Attempts, Retry
from layertap.errors import InvalidInputError, ServingError, TensorFormatError
from layertap.proto import methods
from layertap.proto import serving_pb2 as pb
from layertap.wire import codec

__all__ = ["Classification", "InferenceCore", "Result"]

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


class InferenceCore:
    """Request building and decoding for one model's inference calls; settings, deadlines, retries'
    bookkeeping, channels and error mapping are LayerClient's (ClientCore), reused as they are."""

    def __init__(
        self,
        target: str,
        model: str,
        *,
        version: int | None,
        version_label: str | None,
        timeout: float | None,
        retry: Retry | None,
    ) -> None:
        self.settings = ClientCore(
            target,
            model,
            version=version,
            version_label=version_label,
            timeout=timeout,
            retry=retry,
            max_batch_size=None,
            max_concurrency=1,
            validate=False,
        )

    @staticmethod
    def stubs(channel: Any) -> dict[str, Any]:
        """Bytes-in, bytes-out callables: decoding happens outside gRPC so that a malformed reply
        raises TensorFormatError instead of an opaque INTERNAL status."""
        return {
            path: channel.unary_unary(path)
            for path in (methods.CLASSIFY, methods.REGRESS, methods.MULTI_INFERENCE, methods.PREDICT)
        }

    def spec(self, signature: str) -> pb.ModelSpec:
        """The ModelSpec of a call to `signature` ("" lets the server use serving_default)."""
        spec = pb.ModelSpec()
        spec.CopyFrom(self.settings.spec)
        spec.signature_name = signature
        return spec

    def attempts(self, timeout: Timeout) -> Attempts:
        """Retry bookkeeping for one call given its timeout (or the client's)."""
        return self.settings.attempts(self.settings.deadline(timeout))

    def error(self, error: grpc.RpcError) -> ServingError:
        """The layertap error for a failed call."""
        return self.settings.error(error)

    def classify_request(
        self, examples: Sequence[ExampleLike], context: ExampleLike | None, signature: str
    ) -> bytes:
        request = pb.ClassificationRequest(
            model_spec=self.spec(signature), input=input_message(examples, context)
        )
        return request.SerializeToString()

    def regress_request(
        self, examples: Sequence[ExampleLike], context: ExampleLike | None, signature: str
    ) -> bytes:
        request = pb.RegressionRequest(
            model_spec=self.spec(signature), input=input_message(examples, context)
        )
        return request.SerializeToString()

    def multi_inference_request(
        self, examples: Sequence[ExampleLike], tasks: Mapping[str, str], context: ExampleLike | None
    ) -> bytes:
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
            request.tasks.add(model_spec=self.spec(signature), method_name=_TASK_METHODS[method])
        return request.SerializeToString()

    def predict_request(
        self, inputs: Mapping[str, Any], signature: str, output_filter: Sequence[str]
    ) -> bytes:
        if isinstance(inputs, np.ndarray) or not isinstance(inputs, Mapping) or not inputs:
            raise InvalidInputError(
                f"inputs must be a non-empty dict of arrays by input alias, got {type(inputs).__name__}"
            )
        arrays = {str(alias): np.asarray(value) for alias, value in inputs.items()}
        return codec.encode_predict_request(self.spec(signature), arrays, list(output_filter))

    @staticmethod
    def classification(data: bytes) -> Classification:
        response = _parse(pb.ClassificationResponse, data)
        return _classification(response.result)

    @staticmethod
    def regression(data: bytes) -> np.ndarray:
        response = _parse(pb.RegressionResponse, data)
        return _regression(response.result)

    @staticmethod
    def multi_inference(data: bytes, tasks: Mapping[str, str]) -> dict[str, Result]:
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

    @staticmethod
    def predictions(data: bytes) -> dict[str, np.ndarray]:
        return codec.decode_predict_response(data).outputs


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
