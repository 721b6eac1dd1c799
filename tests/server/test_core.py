"""The one serving core: gRPC and REST answer a bad request identically, and share one admission bound."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from layertap.server.rest.server import http_status
from layertap.server.status import QUEUE_FULL_MESSAGE, InvalidArgument, NotFound, StatusError, status_error


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _rest(url: str, body: dict[str, Any]) -> tuple[int, str]:
    request = urllib.request.Request(url, data=json.dumps(body).encode())
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, ""
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())["error"]


def _grpc_request(signature: str, version: int = 0, **inputs: np.ndarray) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "m"
    if version:
        request.model_spec.version.value = version
    request.model_spec.signature_name = signature
    for alias, array in inputs.items():
        request.inputs[alias].CopyFrom(tf.make_tensor_proto(array))
    return request


def _renamed(request: predict_pb2.PredictRequest, model: str) -> predict_pb2.PredictRequest:
    request.model_spec.name = model
    return request


@pytest.fixture
def both(make_repo: Callable[..., Path], start_server: Callable[..., tuple]) -> tuple[Any, str]:
    base = make_repo("m", {1: "1"})
    server, channel = start_server(
        model_name="m",
        model_base_path=str(base),
        rest_api_port=_free_port(),
        grpc_max_threads=1,
        max_queued_requests=0,
    )
    return prediction_service_pb2_grpc.PredictionServiceStub(channel), f"http://127.0.0.1:{server.rest_port}"


def test_one_bad_request_gets_the_same_code_and_message_on_grpc_and_rest(both: tuple[Any, str]) -> None:
    stub, rest = both
    cases = [
        # (gRPC request, REST path, REST body)
        (_renamed(_grpc_request("add", a=np.ones(2, np.int64)), "nope"), "nope:predict", {"inputs": [1]}),
        (
            # Shapes the add kernel refuses at run time: the session's own error on both.
            _grpc_request("add", a=np.ones(2, np.int64), b=np.ones(3, np.int64)),
            "m:predict",
            {"signature_name": "add", "inputs": {"a": [1, 1], "b": [1, 1, 1]}},
        ),
        (
            _grpc_request("add", 7, a=np.ones(2, np.int64), b=np.ones(2, np.int64)),
            "m/versions/7:predict",
            {"signature_name": "add", "inputs": {"a": [1, 1], "b": [1, 1]}},
        ),
    ]
    # (Requests TF Serving's REST handler refuses while reading the JSON, before Predict, get its
    # JSON-reader messages instead: tests/server/test_rest_fidelity.py.)
    for request, path, body in cases:
        with pytest.raises(grpc.RpcError) as caught:
            stub.Predict(request, timeout=10)
        code, message = caught.value.code(), caught.value.details()
        assert _rest(f"{rest}/v1/models/{path}", body) == (http_status(code), message)
    assert [http_status(c) for c in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND)] == [
        400,
        404,
    ]


def test_rest_requests_are_admitted_by_the_same_bound_as_grpc(both: tuple[Any, str]) -> None:
    stub, rest = both
    probe = {"signature_name": "nope", "instances": [1]}  # admitted, then fails at once
    refused = (503, QUEUE_FULL_MESSAGE)
    outcome = None
    for _ in range(20):
        # The one worker slot is taken by a long gRPC request; with no queue, REST is refused.
        busy = stub.Predict.future(_grpc_request("spin", n=np.int32(40000)), timeout=60)
        while outcome != refused and not busy.done():
            outcome = _rest(f"{rest}/v1/models/m:predict", probe)
        if outcome == refused:
            break
    assert outcome == refused
    assert busy.result().model_spec.signature_name == "spin"
    # REST looks the signature up before Predict, as TF Serving's GetInfoMap does, in its own words.
    assert _rest(f"{rest}/v1/models/m:predict", probe) == (
        400,
        'Serving signature name: "nope" not found in signature def',
    )


def test_status_errors_carry_a_grpc_status_code() -> None:
    error = status_error(grpc.StatusCode.NOT_FOUND.value[0], "Could not find version 3 of model m")
    assert isinstance(error, NotFound)
    assert (error.status, error.code, error.message) == (
        grpc.StatusCode.NOT_FOUND,
        "NOT_FOUND",
        "Could not find version 3 of model m",
    )
    assert InvalidArgument("x").status is grpc.StatusCode.INVALID_ARGUMENT
    data_loss = status_error(grpc.StatusCode.DATA_LOSS, "bad file")
    assert type(data_loss) is StatusError
    assert data_loss.status is grpc.StatusCode.DATA_LOSS
