"""The one serving core both transports call: admission, deadlines, metrics and errors live here.

Predict, Classify, Regress and MultiInference are inference calls (admitted, deadline-bound, counted
in the metrics under their API name); metadata, status and config reloads are not admitted, so probes
answer while the server is saturated.

gRPC (`handlers`) and REST (`rest`) only decode a request, call the core, and encode the answer or
map its `StatusError` to their own status once. So the same bad request gets the same code and message
on both, at most `--grpc_max_threads` inference requests run at once and `--max_queued_requests` more
wait (whichever transport they came by; the rest are refused UNAVAILABLE with the message of TF
Serving's full batch queue), and every request is counted in TF Serving's metrics the same way.

Decoding happens inside admission, so a burst of large requests never holds more decoded tensors
than admitted requests.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np

from layertap.proto import methods
from layertap.proto import serving_pb2 as pb
from layertap.server import inference, metrics
from layertap.server.batching import QUEUE_FULL_MESSAGE
from layertap.server.manager import ModelManager
from layertap.server.predict import Prediction, predict, resolve_signature
from layertap.server.servable import Servable
from layertap.server.status import DeadlineExceeded, Internal, InvalidArgument, StatusError, Unavailable
from layertap.version_folder import DEFAULT_SIGNATURE

__all__ = ["SIGNATURE_DEF_FIELD", "Admission", "Deadline", "PredictQuery", "ServingCore"]

logger = logging.getLogger(__name__)

SIGNATURE_DEF_FIELD = "signature_def"
Q = TypeVar("Q")
R = TypeVar("R")
Q_contra = TypeVar("Q_contra", contravariant=True)
R_co = TypeVar("R_co", covariant=True)


class _Inference(Protocol[Q_contra, R_co]):
    """`inference.classify`, `regress` or `multi_inference`."""

    def __call__(
        self, servable: Servable, request: Q_contra, timeout_ms: int | None = None, *, check_method_name: bool
    ) -> R_co: ...


#: Inputs by alias, or a function of the signature for encodings that need its dtypes (REST JSON).
Inputs = Mapping[str, np.ndarray] | Callable[[pb.SignatureDef], Mapping[str, np.ndarray]]


class Admission:
    """Bounds inference: `workers` run at once, `queue` more may wait, the rest are refused."""

    def __init__(self, workers: int, queue: int) -> None:
        self._capacity = workers + queue
        self._admitted = 0
        self._lock = threading.Lock()
        self._running = threading.BoundedSemaphore(workers)

    @contextmanager
    def admitted(self) -> Iterator[None]:
        """Hold a worker slot for one request, after waiting in the queue.

        Raises:
            Unavailable: running plus waiting requests are at capacity (TF Serving's full queue).
        """
        with self._lock:
            if self._admitted >= self._capacity:
                raise Unavailable(QUEUE_FULL_MESSAGE)
            self._admitted += 1
        try:
            with self._running:
                yield
        finally:
            with self._lock:
                self._admitted -= 1


class Deadline:
    """When a request must be answered by: the gRPC deadline, or REST's `--rest_api_timeout_in_ms`."""

    def __init__(self, seconds: float | None = None) -> None:
        self._at = None if seconds is None else time.monotonic() + seconds

    def timeout_ms(self) -> int | None:
        """Milliseconds left (the session run timeout), None without a deadline.

        Raises:
            DeadlineExceeded: the deadline has passed.
        """
        if self._at is None:
            return None
        left = int((self._at - time.monotonic()) * 1000)
        if left <= 0:
            raise DeadlineExceeded("Deadline exceeded")
        return left


@dataclass
class PredictQuery:
    """A decoded Predict request."""

    model_spec: pb.ModelSpec
    inputs: Inputs
    output_filter: Sequence[str] = ()


def _model_spec(request: pb.ClassificationRequest | pb.RegressionRequest) -> pb.ModelSpec:
    return request.model_spec


def _first_task_spec(request: pb.MultiInferenceRequest) -> pb.ModelSpec:
    # TF Serving's GetModelSpecFromRequest: the first task's, or an empty spec (no name).
    return request.tasks[0].model_spec if request.tasks else pb.ModelSpec()


class ServingCore:
    """Predict, metadata, status and config reloads on the models of one `ModelManager`."""

    def __init__(
        self, manager: ModelManager, *, workers: int, queue: int, check_method_names: bool = False
    ) -> None:
        """Args:
        check_method_names: `--enable_signature_method_name_check` (TF Serving's default: off).
        """
        self.manager = manager
        self._admission = Admission(workers, queue)
        self._check_method_names = check_method_names

    def predict(
        self,
        decode: Callable[[], PredictQuery],
        encode: Callable[[Prediction], R],
        *,
        entrypoint: str,
        deadline: Deadline,
        model: str = "",
    ) -> R:
        """Admit, decode, run and encode one Predict; counted in the metrics under `entrypoint`.

        Args:
            decode: reads the request (run once admitted); its StatusErrors are the request's.
            encode: turns the Prediction into the transport's answer.
            entrypoint: "GRPC" or "REST", TF Serving's metric label.
            deadline: when the answer is due; it becomes the session's run timeout.
            model: the model name for the metrics when it is known before decoding (REST's path).

        Raises:
            StatusError: TF Serving's code and message for whatever failed.
        """

        def run(query: PredictQuery, timeout_ms: int | None) -> R:
            logger.debug(
                "Predict request for model %s signature %s",
                query.model_spec.name,
                query.model_spec.signature_name or DEFAULT_SIGNATURE,
            )
            with self.manager.servable(query.model_spec) as servable:
                inputs = query.inputs
                if callable(inputs):
                    inputs = inputs(resolve_signature(servable, query.model_spec.signature_name)[1])
                result = predict(
                    servable,
                    query.model_spec.name,
                    query.model_spec.signature_name,
                    inputs,
                    output_filter=query.output_filter,
                    timeout_ms=timeout_ms,
                    check_method_name=self._check_method_names,
                )
            return encode(result)

        return self._serve(
            "Predict",
            decode,
            lambda query: query.model_spec,
            run,
            entrypoint=entrypoint,
            deadline=deadline,
            model=model,
        )

    def classify(
        self,
        decode: Callable[[], pb.ClassificationRequest],
        *,
        entrypoint: str,
        deadline: Deadline,
        model: str = "",
    ) -> pb.ClassificationResponse:
        """Classify: tf.Examples through a classification signature (see `inference.classify`).

        Raises:
            StatusError: TF Serving's code and message for whatever failed.
        """
        return self._on_servable(
            "Classify", decode, _model_spec, inference.classify, entrypoint, deadline, model
        )

    def regress(
        self,
        decode: Callable[[], pb.RegressionRequest],
        *,
        entrypoint: str,
        deadline: Deadline,
        model: str = "",
    ) -> pb.RegressionResponse:
        """Regress: tf.Examples through a regression signature (see `inference.regress`).

        Raises:
            StatusError: TF Serving's code and message for whatever failed.
        """
        return self._on_servable(
            "Regress", decode, _model_spec, inference.regress, entrypoint, deadline, model
        )

    def multi_inference(
        self,
        decode: Callable[[], pb.MultiInferenceRequest],
        *,
        entrypoint: str,
        deadline: Deadline,
        model: str = "",
    ) -> pb.MultiInferenceResponse:
        """MultiInference: classify and regress tasks of one model on one Input, in one session run.

        The servable is the one the first task's ModelSpec names, as in TF Serving.

        Raises:
            StatusError: TF Serving's code and message for whatever failed.
        """
        return self._on_servable(
            "MultiInference", decode, _first_task_spec, inference.multi_inference, entrypoint, deadline, model
        )

    def _on_servable(  # noqa: PLR0917 (one private call shape for the three inference APIs)
        self,
        api: str,
        decode: Callable[[], Q],
        spec_of: Callable[[Q], pb.ModelSpec],
        infer: _Inference[Q, R],
        entrypoint: str,
        deadline: Deadline,
        model: str,
    ) -> R:
        """An inference call whose request names one servable, which `infer` runs it on."""

        def run(request: Q, timeout_ms: int | None) -> R:
            with self.manager.servable(spec_of(request)) as servable:
                return infer(servable, request, timeout_ms, check_method_name=self._check_method_names)

        return self._serve(api, decode, spec_of, run, entrypoint=entrypoint, deadline=deadline, model=model)

    def _serve(
        self,
        api: str,
        decode: Callable[[], Q],
        spec_of: Callable[[Q], pb.ModelSpec],
        run: Callable[[Q, int | None], R],
        *,
        entrypoint: str,
        deadline: Deadline,
        model: str,
    ) -> R:
        """One inference call: admitted, decoded, deadline checked, run, counted, errors typed."""
        started = time.monotonic()
        try:
            with self._admission.admitted():
                request = decode()
                model = spec_of(request).name or model
                answer = run(request, deadline.timeout_ms())
        except Exception as error:
            failure = self._failure(error, api)
            metrics.record_request(model, failure.status.name, api, entrypoint, 0)
            raise failure from None
        metrics.record_request(model, "OK", api, entrypoint, (time.monotonic() - started) * 1e6)
        return answer

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
        for field in fields:
            if field != SIGNATURE_DEF_FIELD:
                raise InvalidArgument(f"Metadata field {field} is not supported")
        with self.manager.servable(spec) as servable:
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
        return self.manager.status(spec)

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
            self.manager.reload(config)
        except StatusError as error:
            logger.error("ReloadConfig failed: %s", error.message)
            raise
        logger.info("ReloadConfig done in %.2f s", time.monotonic() - started)

    @staticmethod
    def _failure(error: Exception, api: str) -> StatusError:
        if isinstance(error, StatusError):
            logger.debug("%s failed: %s %s", api, error.status.name, error.message)
            return error
        # A bug, not the request's fault: say so in the log, answer INTERNAL.
        logger.exception("%s failed unexpectedly", api)
        return Internal(f"{type(error).__name__}: {error}")
