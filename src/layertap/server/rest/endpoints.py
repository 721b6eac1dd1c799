"""The REST calls on the data plane, each read in a straight line: decode, data plane, encode.

Bodies are read and written as TF Serving does (`decode`, `encode`, `metadata`); admission,
deadlines (`--rest_api_timeout_in_ms`), metrics and errors are the data plane's. Runs on the REST
server's worker threads.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from layertap.proto import serving_pb2 as pb
from layertap.server.dataplane.admission import Deadline
from layertap.server.dataplane.plane import SIGNATURE_DEF_FIELD, DataPlane, PredictQuery
from layertap.server.rest import decode, encode
from layertap.server.rest.examples import example_input
from layertap.server.rest.metadata import metadata_body, status_body
from layertap.server.rest.routes import Route
from layertap.server.status import Internal, InvalidArgument, StatusError
from layertap.version_folder import DEFAULT_SIGNATURE

__all__ = ["Endpoints"]

logger = logging.getLogger(__name__)


class Endpoints:
    """Answers a routed REST call with the JSON body TF Serving would write."""

    def __init__(self, plane: DataPlane) -> None:
        self._plane = plane

    def answer(self, call: Route, body: bytes, deadline: Deadline) -> bytes:
        """The body of a successful answer.

        Raises:
            StatusError: TF Serving's code and message (an unexpected exception becomes INTERNAL).
        """
        try:
            if call.call == "status":
                return status_body(self._plane.status(call.spec))
            if call.call == "metadata":
                response = self._plane.metadata(call.spec, [SIGNATURE_DEF_FIELD])
                signatures = pb.SignatureDefMap.FromString(response.metadata[SIGNATURE_DEF_FIELD].value)
                return metadata_body(response.model_spec, signatures)
            if call.call == "predict":
                return self._predict(call, body, deadline)
            return self._classify_or_regress(call, body, deadline)
        except StatusError:
            raise
        except Exception as error:  # a bug, not the request's fault: log it, answer INTERNAL
            logger.exception("REST %s failed unexpectedly", call.call)
            raise Internal(f"{type(error).__name__}: {error}") from None

    def _predict(self, route: Route, body: bytes, deadline: Deadline) -> bytes:
        with self._plane.call("Predict", "REST", deadline, route.model) as call:
            document = decode.parse_body(body)
            spec = _spec(route, document)
            inputs, answer_format = decode.predict_inputs(
                document, self._signature_inputs(spec), spec.signature_name
            )
            result = self._plane.predict(call, PredictQuery(spec, inputs))
            return encode.predict_body(result.outputs, row=answer_format is decode.Format.ROW)

    def _signature_inputs(self, spec: pb.ModelSpec) -> Mapping[str, pb.TensorInfo]:
        """TF Serving's GetInfoMap: JSON values become tensors of the signature's input dtypes."""
        key = spec.signature_name or DEFAULT_SIGNATURE
        signature = self._plane.signatures(spec).get(key)
        if signature is None:
            raise InvalidArgument(f'Serving signature name: "{key}" not found in signature def')
        return signature.inputs

    def _classify_or_regress(self, route: Route, body: bytes, deadline: Deadline) -> bytes:
        api = "Classify" if route.call == "classify" else "Regress"
        with self._plane.call(api, "REST", deadline, route.model) as call:
            document = decode.parse_body(body)
            spec = _spec(route, document)
            examples = example_input(document)
            if route.call == "classify":
                classified = self._plane.infer(
                    call, pb.ClassificationRequest(model_spec=spec, input=examples)
                )
                return encode.classification_body(classified.result)
            regressed = self._plane.infer(call, pb.RegressionRequest(model_spec=spec, input=examples))
            return encode.regression_body(regressed.result)


def _spec(route: Route, document: Mapping[str, object]) -> pb.ModelSpec:
    """The path's ModelSpec with the body's `signature_name`."""
    spec = pb.ModelSpec()
    spec.CopyFrom(route.spec)
    spec.signature_name = decode.signature_name(document)
    return spec
