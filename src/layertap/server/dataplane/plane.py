"""The one data plane both transports call: admission, deadlines, metrics and errors live here.

Predict, Classify, Regress and MultiInference are inference calls: a transport opens `call(...)`
(admitted, timed, counted in TF Serving's metrics under the API's name, every failure typed as a
`StatusError`), decodes its request inside it, calls `predict` or `infer`, and encodes the answer,
in that order, in a straight line. Metadata, status and config reloads are not admitted, so probes
answer while the server is saturated.

So the same bad request gets the same code and message on gRPC and REST, at most
`--grpc_max_threads` inference requests run at once and `--max_queued_requests` more wait (whichever
transport they came by; the rest are refused UNAVAILABLE with the message of TF Serving's full batch
queue), and every request is counted the same way. Decoding happens inside admission, so a burst of
large requests never holds more decoded tensors than admitted requests.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import overload

import numpy as np

from layertap.proto import methods
from layertap.proto import serving_pb2 as pb
from layertap.server.dataplane import inference, metrics
from layertap.server.dataplane.admission import Admission, Deadline
from layertap.server.dataplane.predict import Prediction, predict
from layertap.server.management.lifecycle import Lifecycle
from layertap.server.management.registry import Registry
from layertap.server.status import Internal, InvalidArgument, StatusError
from layertap.version_folder import DEFAULT_SIGNATURE

__all__ = ["SIGNATURE_DEF_FIELD", "Call", "DataPlane", "PredictQuery"]

logger = logging.getLogger(__name__)

SIGNATURE_DEF_FIELD = "signature_def"


@dataclass
class PredictQuery:
    """A decoded Predict request."""

    model_spec: pb.ModelSpec
    inputs: Mapping[str, np.ndarray]
    output_filter: Sequence[str] = ()


@dataclass
class Call:
    """One admitted inference call: its API, transport, deadline, and the model its metrics name.

    `model` starts as what the transport knows before decoding (REST's path) and becomes the
    request's model name once decoded.
    """

    api: str
    entrypoint: str
    deadline: Deadline
    model: str = ""
    started: float = field(default_factory=time.monotonic)

    def named(self, spec: pb.ModelSpec) -> None:
        """The decoded request names its model: metrics count the call under it."""
        self.model = spec.name or self.model


class DataPlane:
    """Inference, metadata, status and config reloads on the models of one registry and lifecycle.

    Args:
        registry: the AVAILABLE versions and labels requests are served from.
        lifecycle: the version lifecycle (status, reloads).
        workers: inference calls running at once (`--grpc_max_threads`).
        queue: inference calls waiting beyond those (`--max_queued_requests`).
        check_method_names: `--enable_signature_method_name_check` (TF Serving's default: off).
    """

    def __init__(
        self,
        registry: Registry,
        lifecycle: Lifecycle,
        *,
        workers: int,
        queue: int,
        check_method_names: bool = False,
    ) -> None:
        self.registry = registry
        self.lifecycle = lifecycle
        self._admission = Admission(workers, queue)
        self._check_method_names = check_method_names

    @contextmanager
    def call(self, api: str, entrypoint: str, deadline: Deadline, model: str = "") -> Iterator[Call]:
        """One inference call: admitted, then timed and counted; whatever fails leaves as a StatusError.

        Args:
            api: "Predict", "Classify", "Regress" or "MultiInference" (TF Serving's metric label).
            entrypoint: "GRPC" or "REST".
            deadline: when the answer is due; it becomes the session's run timeout.
            model: the model name for the metrics when it is known before decoding (REST's path).

        Raises:
            StatusError: TF Serving's code and message (an unexpected exception becomes INTERNAL).
        """
        call = Call(api, entrypoint, deadline, model)
        try:
            with self._admission.admitted():
                yield call
        except Exception as error:
            failure = _failure(error, api)
            metrics.record_request(call.model, failure.status.name, api, entrypoint, 0)
            raise failure from None
        metrics.record_request(call.model, "OK", api, entrypoint, (time.monotonic() - call.started) * 1e6)

    def predict(self, call: Call, query: PredictQuery) -> Prediction:
        """Predict on the version `query.model_spec` names (see `predict.predict`).

        Raises:
            StatusError: TF Serving's code and message for whatever failed.
        """
        spec = query.model_spec
        call.named(spec)
        logger.debug(
            "Predict request for model %s signature %s", spec.name, spec.signature_name or DEFAULT_SIGNATURE
        )
        timeout_ms = call.deadline.timeout_ms()
        with self.registry.servable(spec) as servable:
            return predict(
                servable,
                spec.name,
                spec.signature_name,
                query.inputs,
                output_filter=query.output_filter,
                timeout_ms=timeout_ms,
                check_method_name=self._check_method_names,
            )

    @overload
    def infer(self, call: Call, request: pb.ClassificationRequest) -> pb.ClassificationResponse: ...
    @overload
    def infer(self, call: Call, request: pb.RegressionRequest) -> pb.RegressionResponse: ...
    @overload
    def infer(self, call: Call, request: pb.MultiInferenceRequest) -> pb.MultiInferenceResponse: ...

    def infer(self, call: Call, request: inference.Request) -> inference.Response:
        """Classify, Regress or MultiInference: tf.Examples through the signatures the request names.

        The servable is the one the request's ModelSpec names (MultiInference: its first task's).

        Raises:
            StatusError: TF Serving's code and message for whatever failed.
        """
        spec = inference.model_spec(request)
        call.named(spec)
        timeout_ms = call.deadline.timeout_ms()
        with self.registry.servable(spec) as servable:
            return inference.infer(servable, request, timeout_ms, check_method_name=self._check_method_names)

    def signatures(self, spec: pb.ModelSpec) -> dict[str, pb.SignatureDef]:
        """The signatures of the version `spec` names (REST reads an input's dtype from them).

        Raises:
            StatusError: no such model or version (see `Registry.servable`).
        """
        with self.registry.servable(spec) as servable:
            return servable.signatures

    def metadata(self, spec: pb.ModelSpec | None, fields: Sequence[str]) -> pb.GetModelMetadataResponse:
        """GetModelMetadata: the signatures of the version `spec` names, as a packed SignatureDefMap.

        Raises:
            InvalidArgument: no ModelSpec, no field, or a field other than `signature_def`.
            NotFound: the version is not AVAILABLE.
        """
        if spec is None:
            raise InvalidArgument("Missing ModelSpec")
        if not fields:
            raise InvalidArgument("GetModelMetadataRequest must specify at least one metadata_field")
        for name in fields:
            if name != SIGNATURE_DEF_FIELD:
                raise InvalidArgument(f"Metadata field {name} is not supported")
        with self.registry.servable(spec) as servable:
            response = pb.GetModelMetadataResponse()
            response.model_spec.name = servable.name
            response.model_spec.version.value = servable.version
            packed = response.metadata[SIGNATURE_DEF_FIELD]
            packed.type_url = methods.SIGNATURE_DEF_MAP_TYPE_URL
            packed.value = servable.signature_def_map().SerializeToString(deterministic=True)
            return response

    def status(self, spec: pb.ModelSpec | None) -> list[pb.ModelVersionStatus]:
        """GetModelStatus: one version's state, or every version's, newest first.

        Raises:
            InvalidArgument: no ModelSpec.
            NotFound: no such model or version.
        """
        if spec is None:
            raise InvalidArgument("Missing ModelSpec")
        return self.lifecycle.status(spec)

    def reload(self, config: pb.ModelServerConfig) -> None:
        """HandleReloadConfigRequest: replace the model set.

        Raises:
            InvalidArgument: the config is invalid.
            FailedPrecondition: a label names a version that is not AVAILABLE.
        """
        started = time.monotonic()
        for index, entry in enumerate(config.model_config_list.config):
            logger.info(
                "Config entry index: %d path: %s name: %s platform: %s",
                index,
                entry.base_path,
                entry.name,
                entry.model_platform,
            )
        try:
            self.lifecycle.reload(config)
        except StatusError as error:
            logger.error("ReloadConfig failed: %s", error.message)
            raise
        logger.info("ReloadConfig done in %.2f s", time.monotonic() - started)


def _failure(error: Exception, api: str) -> StatusError:
    if isinstance(error, StatusError):
        logger.debug("%s failed: %s %s", api, error.status.name, error.message)
        return error
    # A bug, not the request's fault: say so in the log, answer INTERNAL.
    logger.exception("%s failed unexpectedly", api)
    return Internal(f"{type(error).__name__}: {error}")
