"""TF Serving's gRPC services on the data plane: PredictionService and ModelService.

Method paths are TF Serving's (layertap.proto.methods), so the official stubs and layertap.client
both talk to it. Each inference method reads in a straight line: open the data plane's call
(admission, deadline, metrics), decode the request, run it on the data plane, encode the answer. A
`StatusError` from any method becomes the call's status in one place (the wrapper `_unary` puts
around every method, then `_abort`), its message cut at 1024 characters plus `...TRUNCATED` as TF
Serving's ToGRPCStatus does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

import grpc
from google.protobuf.message import DecodeError

from layertap.errors import TensorFormatError
from layertap.proto import methods
from layertap.proto import serving_pb2 as pb
from layertap.server.dataplane.admission import Deadline
from layertap.server.dataplane.inference import Request
from layertap.server.dataplane.plane import DataPlane, PredictQuery
from layertap.server.dataplane.predict import Prediction
from layertap.server.status import Internal, InvalidArgument, StatusError
from layertap.wire import codec

__all__ = ["MESSAGE_LIMIT", "build_handlers", "grpc_message"]

MESSAGE_LIMIT = 1024


def grpc_message(message: str) -> str:
    """TF Serving's ToGRPCStatus: messages longer than 1024 characters are cut and marked."""
    return message if len(message) <= MESSAGE_LIMIT else message[:MESSAGE_LIMIT] + "...TRUNCATED"


def _abort(context: grpc.ServicerContext, error: StatusError) -> NoReturn:
    context.abort(error.status, grpc_message(error.message))
    raise AssertionError("grpc's abort() raises")


def _deadline(context: grpc.ServicerContext) -> Deadline:
    remaining = context.time_remaining()
    # gRPC reports a huge number of seconds when the client set no deadline.
    return Deadline(None if remaining is None or remaining > 1e9 else remaining)


def _decode_predict(request: bytes) -> PredictQuery:
    try:
        call = codec.decode_predict_request(request)
    except TensorFormatError as error:
        raise InvalidArgument(str(error)) from None
    return PredictQuery(call.model_spec, call.inputs, call.output_filter)


def _encode_predict(result: Prediction, tensor_content: bool) -> bytes:
    try:
        return codec.encode_predict_response(result.model_spec, result.outputs, tensor_content=tensor_content)
    except TensorFormatError as error:
        raise Internal(str(error)) from None


def _parse(message_type: type[Request], data: bytes) -> Request:
    try:
        return message_type.FromString(data)
    except DecodeError as error:
        raise InvalidArgument(f"Could not parse the {message_type.__name__}: {error}") from None


class _Services:
    def __init__(self, plane: DataPlane, tensor_content: bool) -> None:
        self._plane = plane
        self._tensor_content = tensor_content

    # --------------------------------------------------------------- PredictionService

    def predict(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        with self._plane.call("Predict", "GRPC", _deadline(context)) as call:
            query = _decode_predict(request)
            result = self._plane.predict(call, query)
            return _encode_predict(result, self._tensor_content)

    def get_model_metadata(
        self, request: pb.GetModelMetadataRequest, context: grpc.ServicerContext
    ) -> pb.GetModelMetadataResponse:
        spec = request.model_spec if request.HasField("model_spec") else None
        return self._plane.metadata(spec, list(request.metadata_field))

    def classify(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        return self._infer("Classify", pb.ClassificationRequest, request, context)

    def regress(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        return self._infer("Regress", pb.RegressionRequest, request, context)

    def multi_inference(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        return self._infer("MultiInference", pb.MultiInferenceRequest, request, context)

    def _infer(
        self, api: str, message_type: type[Request], request: bytes, context: grpc.ServicerContext
    ) -> bytes:
        # The message is parsed once admitted, so at most the admitted requests are decoded at once.
        with self._plane.call(api, "GRPC", _deadline(context)) as call:
            message = _parse(message_type, request)
            return self._plane.infer(call, message).SerializeToString()

    # --------------------------------------------------------------- ModelService

    def get_model_status(
        self, request: pb.GetModelStatusRequest, context: grpc.ServicerContext
    ) -> pb.GetModelStatusResponse:
        spec = request.model_spec if request.HasField("model_spec") else None
        return pb.GetModelStatusResponse(model_version_status=self._plane.status(spec))

    def reload_config(
        self, request: pb.ReloadConfigRequest, context: grpc.ServicerContext
    ) -> pb.ReloadConfigResponse:
        self._plane.reload(request.config)
        response = pb.ReloadConfigResponse()
        response.status.SetInParent()
        return response


def _unary(
    behaviour: Callable[[Any, grpc.ServicerContext], Any], request_type: type[Any] | None
) -> grpc.RpcMethodHandler:
    def answer(request: Any, context: grpc.ServicerContext) -> Any:
        # Every method's StatusError becomes the call's status here, so no method repeats the mapping.
        try:
            return behaviour(request, context)
        except StatusError as error:
            _abort(context, error)

    return grpc.unary_unary_rpc_method_handler(
        answer,
        request_deserializer=request_type.FromString if request_type is not None else None,
        response_serializer=None if request_type is None else (lambda message: message.SerializeToString()),
    )


def build_handlers(plane: DataPlane, *, tensor_content: bool) -> list[grpc.GenericRpcHandler]:
    """Generic handlers for PredictionService and ModelService, on TF Serving's method paths.

    Predict works on raw bytes (layertap.wire.codec decodes inputs without copying and encodes the
    outputs); Classify, Regress and MultiInference parse their messages once admitted; the other
    methods use the protobuf messages.
    """
    services = _Services(plane, tensor_content)
    prediction = {
        "Predict": _unary(services.predict, None),
        "GetModelMetadata": _unary(services.get_model_metadata, pb.GetModelMetadataRequest),
        "Classify": _unary(services.classify, None),
        "Regress": _unary(services.regress, None),
        "MultiInference": _unary(services.multi_inference, None),
    }
    model = {
        "GetModelStatus": _unary(services.get_model_status, pb.GetModelStatusRequest),
        "HandleReloadConfigRequest": _unary(services.reload_config, pb.ReloadConfigRequest),
    }
    return [
        grpc.method_handlers_generic_handler(methods.PREDICTION_SERVICE, prediction),
        grpc.method_handlers_generic_handler(methods.MODEL_SERVICE, model),
    ]
