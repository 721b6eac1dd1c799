"""TF Serving's REST API (`--rest_api_port`), the part that probes and scripts use.

`GET /v1/models/M[/versions/V|/labels/L]` is the model status (the usual readiness probe),
`.../metadata` the signatures, and `POST .../M[/versions/V|/labels/L]:predict` takes
`{"signature_name", "instances"}` (row format) or `{"inputs"}` (columnar), answering `predictions` or
`outputs`. With `--monitoring_config_file`, Prometheus metrics are served at the configured path.
Errors are `{"error": message}` with TF Serving's HTTP status for the gRPC code. The
standard library's threading HTTP server runs it; every call goes through the serving core, so
admission, deadlines, metrics, checks and messages are the gRPC path's.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import socket
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
import numpy as np
from google.protobuf import json_format

from layertap.proto import serving_pb2 as pb
from layertap.server import metrics
from layertap.server.core import SIGNATURE_DEF_FIELD, Deadline, PredictQuery, ServingCore
from layertap.server.predict import Prediction
from layertap.server.servable import grpc_code_name
from layertap.server.status import InvalidArgument, StatusError, Unimplemented
from layertap.wire import dtypes

__all__ = ["RestServer", "http_status"]

logger = logging.getLogger(__name__)

_PATH = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
    r"(?::(?P<method>[a-z]+)|/(?P<resource>metadata))?/?$"
)

# TF Serving's http_server.cc: gRPC code -> HTTP status.
_HTTP_STATUS = {
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}
_STATE_NAMES = {value: name for name, value in pb.ModelVersionStatus.State.items()}


def http_status(code: grpc.StatusCode) -> int:
    """The HTTP status TF Serving answers for a gRPC status code."""
    return _HTTP_STATUS.get(code, 500)


def _spec(match: re.Match[str]) -> pb.ModelSpec:
    spec = pb.ModelSpec(name=match["name"])
    if match["version"] is not None:
        spec.version.value = int(match["version"])
    elif match["label"] is not None:
        spec.version_label = match["label"]
    return spec


def _json_value(array: np.ndarray) -> Any:
    if array.dtype.kind == "O":
        return [_json_value(item) for item in array] if array.ndim else _text(array.item())
    if array.dtype.kind == "c":
        return np.stack([array.real, array.imag], axis=-1).tolist()
    if array.dtype == np.float16:
        array = array.astype(np.float32)
    return array.tolist()


def _text(value: object) -> Any:
    raw = value if isinstance(value, bytes) else str(value).encode()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return {"b64": base64.b64encode(raw).decode("ascii")}


def _array(value: Any, info: pb.TensorInfo, alias: str) -> np.ndarray:
    dtype = dtypes.from_proto(info.dtype)
    try:
        if dtype.enum == pb.DT_STRING:
            return np.asarray(_bytes(value), dtype=object)
        return np.asarray(value, dtype=dtype.numpy)
    except (TypeError, ValueError) as error:
        raise InvalidArgument(
            f"input {alias!r}: cannot read the JSON value as {dtype.name}: {error}"
        ) from None


def _bytes(value: Any) -> Any:
    if isinstance(value, list):
        return [_bytes(item) for item in value]
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    return str(value).encode()


def _predict_inputs(body: Any, signature: pb.SignatureDef) -> tuple[dict[str, np.ndarray], bool]:
    """JSON body -> input arrays by alias, and whether the row format ("instances") was used."""
    if not isinstance(body, dict) or ("instances" in body) == ("inputs" in body):
        raise InvalidArgument('JSON Value: must be an object with exactly one of "instances" or "inputs"')
    aliases = sorted(signature.inputs)
    if "instances" in body:
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise InvalidArgument('"instances" must be a non-empty JSON list')
        if all(isinstance(item, dict) and not set(item) <= {"b64"} for item in instances):
            names = sorted({key for item in instances for key in item})
            columns = {alias: [item.get(alias) for item in instances] for alias in names}
        elif len(aliases) == 1:
            columns = {aliases[0]: instances}
        else:
            raise InvalidArgument(
                f"the signature has {len(aliases)} inputs ({', '.join(aliases)}); each instance must be "
                "a JSON object keyed by input name"
            )
        row = True
    else:
        inputs = body["inputs"]
        named = isinstance(inputs, dict) and not set(inputs) <= {"b64"}
        columns = dict(inputs) if named else {aliases[0] if len(aliases) == 1 else "inputs": inputs}
        row = False
    arrays = {
        alias: _array(value, signature.inputs[alias], alias)
        if alias in signature.inputs
        else np.asarray(value)
        for alias, value in columns.items()
    }
    return arrays, row


def _predict_body(outputs: dict[str, np.ndarray], row: bool) -> dict[str, Any]:
    if not row:
        if len(outputs) == 1:
            return {"outputs": _json_value(next(iter(outputs.values())))}
        return {"outputs": {alias: _json_value(array) for alias, array in outputs.items()}}
    batch = {len(array) if array.ndim else 0 for array in outputs.values()}
    if len(batch) != 1:
        raise InvalidArgument(
            'the outputs have different batch sizes; use the columnar format ({"inputs": ...})'
        )
    size = batch.pop()
    if len(outputs) == 1:
        only = next(iter(outputs.values()))
        return {"predictions": [_json_value(only[i]) for i in range(size)]}
    return {"predictions": [{a: _json_value(v[i]) for a, v in outputs.items()} for i in range(size)]}


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("REST %s - %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        path = self.path.split("?", 1)[0]
        if method == "GET" and self.server.metrics_path and path == self.server.metrics_path:
            self._send_text(200, metrics.METRICS.render())
            return
        deadline = Deadline(self.server.timeout_ms / 1000)
        match = _PATH.match(path)
        try:
            if match is None or (method == "POST") != (match["method"] is not None):
                raise InvalidArgument(f"Malformed request: {method} {self.path}")
            if method == "GET":
                body = self._metadata(match) if match["resource"] else self._status(match)
            elif match["method"] == "predict":
                body = self._predict(match, deadline)
            else:
                raise Unimplemented(f"layertap serve does not implement :{match['method']}; use :predict")
            self._send(200, body)
        except StatusError as error:
            self._send(http_status(error.status), {"error": error.message})

    def _status(self, match: re.Match[str]) -> dict[str, Any]:
        statuses = self.server.core.status(_spec(match))
        return {
            "model_version_status": [
                {
                    "version": str(status.version),
                    "state": _STATE_NAMES.get(status.state, "UNKNOWN"),
                    "status": {
                        "error_code": "OK"
                        if not status.status.error_code
                        else grpc_code_name(status.status.error_code),
                        "error_message": status.status.error_message,
                    },
                }
                for status in statuses
            ]
        }

    def _metadata(self, match: re.Match[str]) -> dict[str, Any]:
        response = self.server.core.metadata(_spec(match), [SIGNATURE_DEF_FIELD])
        signature_map = pb.SignatureDefMap.FromString(response.metadata[SIGNATURE_DEF_FIELD].value)
        signatures = json_format.MessageToDict(signature_map, preserving_proto_field_name=True)
        return {
            "model_spec": {
                "name": response.model_spec.name,
                "signature_name": "",
                "version": str(response.model_spec.version.value),
            },
            "metadata": {"signature_def": signatures},
        }

    def _predict(self, match: re.Match[str], deadline: Deadline) -> dict[str, Any]:
        row = [False]  # whether the request used the row format ("instances"), for the answer

        def decode() -> PredictQuery:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"null")
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                raise InvalidArgument(f"JSON Parse error: {error}") from None
            spec = _spec(match)
            signature_name = body.get("signature_name", "") if isinstance(body, dict) else ""
            if not isinstance(signature_name, str):
                raise InvalidArgument(f'"signature_name" must be a JSON string; got {signature_name!r}')
            spec.signature_name = signature_name

            def inputs(signature: pb.SignatureDef) -> dict[str, np.ndarray]:
                arrays, row[0] = _predict_inputs(body, signature)
                return arrays

            return PredictQuery(spec, inputs)

        def encode(result: Prediction) -> dict[str, Any]:
            return _predict_body(result.outputs, row[0])

        return self.server.core.predict(
            decode, encode, entrypoint="REST", deadline=deadline, model=match["name"]
        )

    def _send(self, status: int, body: dict[str, Any]) -> None:
        self._send_bytes(status, json.dumps(body, indent=1).encode(), "application/json")

    def _send_text(self, status: int, text: str) -> None:
        self._send_bytes(status, text.encode(), "text/plain; version=0.0.4")

    def _send_bytes(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(
            status, HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
        )
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], core: ServingCore, timeout_ms: int, metrics_path: str | None
    ) -> None:
        # An IPv6 --bind_address (e.g. ::1) needs an IPv6 socket.
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, _Handler)
        self.core = core
        self.timeout_ms = timeout_ms
        self.metrics_path = metrics_path


class RestServer:
    """The REST API on `host:port` (and Prometheus metrics at `metrics_path`), until `stop`."""

    def __init__(
        self, core: ServingCore, host: str, port: int, timeout_ms: int, metrics_path: str | None = None
    ) -> None:
        self._server = _Server((host, port), core, timeout_ms, metrics_path)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="layertap-rest", daemon=True)

    def start(self) -> None:
        """Serve in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting requests and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
