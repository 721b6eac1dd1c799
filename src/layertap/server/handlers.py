"""TF Serving's gRPC services on layertap's own messages: PredictionService and ModelService.

Method paths are TF Serving's (layertap.proto.methods), so the official stubs and layertap.client
both talk to it. Errors carry TF Serving's code and message, cut at 1024 characters plus
`...TRUNCATED` as TF Serving's ToGRPCStatus does. Predict admits at most `--grpc_max_threads` running
plus `--max_queued_requests` waiting requests; beyond that it answers UNAVAILABLE with the message of
TF Serving's full batch queue, so clients back off instead of piling up.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, NoReturn

import grpc

from layertap.errors import ServingError, TensorFormatError
from layertap.proto import methods
from layertap.proto import serving_pb2 as pb
from layertap.server import metrics
from layertap.server.batching import QUEUE_FULL_MESSAGE
from layertap.server.manager import ModelManager
from layertap.server.predict import predict
from layertap.wire import codec

__all__ = ["MESSAGE_LIMIT", "QUEUE_FULL_MESSAGE", "Admission", "build_handlers", "grpc_message"]

logger = logging.getLogger(__name__)

MESSAGE_LIMIT = 1024
SIGNATURE_DEF_FIELD = "signature_def"


def grpc_message(message: str) -> str:
    """TF Serving's ToGRPCStatus: messages longer than 1024 characters are cut and marked."""
    return message if len(message) <= MESSAGE_LIMIT else message[:MESSAGE_LIMIT] + "...TRUNCATED"


class Admission:
    """Bounds Predict: `workers` run at once, `queue` more may wait, the rest are refused."""

    def __init__(self, workers: int, queue: int) -> None:
        self._capacity = workers + queue
        self._admitted = 0
        self._lock = threading.Lock()
        self._running = threading.BoundedSemaphore(workers)

    def try_enter(self) -> bool:
        """Count one more request in, unless running plus waiting requests are at capacity."""
        with self._lock:
            if self._admitted >= self._capacity:
                return False
            self._admitted += 1
            return True

    def run(self, work: Callable[[], bytes]) -> bytes:
        """Wait for a worker slot, run `work`, and leave."""
        try:
            with self._running:
                return work()
        finally:
            with self._lock:
                self._admitted -= 1


def _abort(context: grpc.ServicerContext, error: ServingError) -> NoReturn:
    code = grpc.StatusCode[error.code or "UNKNOWN"]
    context.abort(code, grpc_message(error.details or str(error)))
    raise AssertionError("grpc's abort() raises")


class _Services:
    def __init__(self, manager: ModelManager, admission: Admission, tensor_content: bool) -> None:
        self._manager = manager
        self._admission = admission
        self._tensor_content = tensor_content

    # --------------------------------------------------------------- PredictionService

    def predict(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        if not self._admission.try_enter():
            context.abort(grpc.StatusCode.UNAVAILABLE, QUEUE_FULL_MESSAGE)
        started = time.monotonic()
        model = [""]  # filled in once the request is decoded, for the per-model metrics
        try:
            response = self._admission.run(lambda: self._predict(request, context, model))
        except ServingError as error:
            logger.debug("Predict failed: %s %s", error.code, error.details or error)
            metrics.record_request(model[0], error.code or "UNKNOWN", "Predict", "GRPC", 0)
            _abort(context, error)
        metrics.record_request(model[0], "OK", "Predict", "GRPC", (time.monotonic() - started) * 1e6)
        return response

    def _predict(self, request: bytes, context: grpc.ServicerContext, model: list[str]) -> bytes:
        try:
            call = codec.decode_predict_request(request)
        except TensorFormatError as error:
            raise ServingError(str(error), code="INVALID_ARGUMENT", details=str(error)) from None
        model[0] = call.model_spec.name
        logger.debug(
            "Predict request for model %s signature %s",
            call.model_spec.name,
            call.model_spec.signature_name or "serving_default",
        )
        remaining = context.time_remaining()
        timeout_ms = None if remaining is None or remaining > 1e9 else int(remaining * 1000)
        if timeout_ms is not None and timeout_ms <= 0:
            raise ServingError("Deadline exceeded", code="DEADLINE_EXCEEDED", details="Deadline exceeded")
        with self._manager.servable(call.model_spec) as servable:
            result = predict(
                servable,
                call.model_spec.name,
                call.model_spec.signature_name,
                call.inputs,
                output_filter=call.output_filter,
                timeout_ms=timeout_ms,
            )
        try:
            return codec.encode_predict_response(
                result.model_spec, result.outputs, tensor_content=self._tensor_content
            )
        except TensorFormatError as error:
            raise ServingError(str(error), code="INTERNAL", details=str(error)) from None

    def get_model_metadata(
        self, request: pb.GetModelMetadataRequest, context: grpc.ServicerContext
    ) -> pb.GetModelMetadataResponse:
        if not request.HasField("model_spec"):
            _abort(context, ServingError("Missing ModelSpec", code="INVALID_ARGUMENT"))
        if not request.metadata_field:
            message = "GetModelMetadataRequest must specify at least one metadata_field"
            _abort(context, ServingError(message, code="INVALID_ARGUMENT"))
        for field in request.metadata_field:
            if field != SIGNATURE_DEF_FIELD:
                message = f"Metadata field {field} is not supported"
                _abort(context, ServingError(message, code="INVALID_ARGUMENT"))
        try:
            with self._manager.servable(request.model_spec) as servable:
                response = pb.GetModelMetadataResponse()
                response.model_spec.name = servable.name
                response.model_spec.version.value = servable.version
                packed = response.metadata[SIGNATURE_DEF_FIELD]
                packed.type_url = methods.SIGNATURE_DEF_MAP_TYPE_URL
                packed.value = servable.signature_def_map().SerializeToString(deterministic=True)
                return response
        except ServingError as error:
            _abort(context, error)

    def unimplemented(self, name: str) -> Callable[[bytes, grpc.ServicerContext], bytes]:
        def handler(request: bytes, context: grpc.ServicerContext) -> bytes:
            context.abort(
                grpc.StatusCode.UNIMPLEMENTED,
                f"layertap serve does not implement {name}: it serves SavedModel signatures through "
                "Predict only (Classify, Regress and MultiInference need tf.Example inputs and "
                "classification/regression signatures). Call Predict with the signature name instead.",
            )
            return b""

        return handler

    # --------------------------------------------------------------- ModelService

    def get_model_status(
        self, request: pb.GetModelStatusRequest, context: grpc.ServicerContext
    ) -> pb.GetModelStatusResponse:
        if not request.HasField("model_spec"):
            _abort(context, ServingError("Missing ModelSpec", code="INVALID_ARGUMENT"))
        try:
            return pb.GetModelStatusResponse(model_version_status=self._manager.status(request.model_spec))
        except ServingError as error:
            _abort(context, error)

    def reload_config(
        self, request: pb.ReloadConfigRequest, context: grpc.ServicerContext
    ) -> pb.ReloadConfigResponse:
        started = time.monotonic()
        for index, entry in enumerate(request.config.model_config_list.config):
            logger.info(
                "Config entry index: %d path: %s name: %s platform: %s",
                index,
                entry.base_path,
                entry.name,
                entry.model_platform,
            )
        try:
            self._manager.reload(request.config)
        except ServingError as error:
            logger.error("ReloadConfig failed: %s", error.details or error)
            _abort(context, error)
        logger.info("ReloadConfig done in %.2f s", time.monotonic() - started)
        response = pb.ReloadConfigResponse()
        response.status.SetInParent()
        return response


def _unary(
    behaviour: Callable[[Any, grpc.ServicerContext], Any], request_type: type[Any] | None
) -> grpc.RpcMethodHandler:
    return grpc.unary_unary_rpc_method_handler(
        behaviour,
        request_deserializer=request_type.FromString if request_type is not None else None,
        response_serializer=None if request_type is None else (lambda message: message.SerializeToString()),
    )


def build_handlers(
    manager: ModelManager, *, workers: int, queue: int, tensor_content: bool
) -> list[grpc.GenericRpcHandler]:
    """Generic handlers for PredictionService and ModelService, on TF Serving's method paths.

    Predict works on raw bytes (layertap.wire.codec decodes inputs without copying and encodes the
    outputs); the other methods use the protobuf messages.
    """
    services = _Services(manager, Admission(workers, queue), tensor_content)
    prediction = {
        "Predict": _unary(services.predict, None),
        "GetModelMetadata": _unary(services.get_model_metadata, pb.GetModelMetadataRequest),
        "Classify": _unary(services.unimplemented("Classify"), None),
        "Regress": _unary(services.unimplemented("Regress"), None),
        "MultiInference": _unary(services.unimplemented("MultiInference"), None),
    }
    model = {
        "GetModelStatus": _unary(services.get_model_status, pb.GetModelStatusRequest),
        "HandleReloadConfigRequest": _unary(services.reload_config, pb.ReloadConfigRequest),
    }
    return [
        grpc.method_handlers_generic_handler(methods.PREDICTION_SERVICE, prediction),
        grpc.method_handlers_generic_handler(methods.MODEL_SERVICE, model),
    ]
