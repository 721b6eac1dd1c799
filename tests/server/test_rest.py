"""The REST API (`--rest_api_port`): status probe, metadata, predict in row and columnar formats, errors."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from layertap.config.status import fetch_version_states


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def rest(make_repo: Callable[..., Path], start_server: Callable[..., tuple]) -> str:
    base = make_repo("m", {1: "1", 2: "2"})
    server, _ = start_server(
        model_name="m", model_base_path=str(base), rest_api_port=_free_port(), enable_model_warmup=False
    )
    return f"http://127.0.0.1:{server.rest_port}"


def _call(url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_status_is_tf_serving_json_and_readable_by_layertap_config(rest: str) -> None:
    assert _call(f"{rest}/v1/models/m") == (
        200,
        {
            "model_version_status": [
                {"version": "2", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
            ]
        },
    )
    assert fetch_version_states(rest, "m") == {2: "AVAILABLE"}
    assert _call(f"{rest}/v1/models/nope") == (404, {"error": "Could not find any versions of model nope"})
    assert _call(f"{rest}/v1/models/m/versions/9") == (404, {"error": "Could not find version 9 of model m"})


def test_predict_row_and_columnar(rest: str) -> None:
    status, body = _call(f"{rest}/v1/models/m:predict", {"instances": [[1.0, 1.0], [0.0, 1.0]]})
    assert status == 200
    assert body == {"predictions": [{"y": [8.0, 12.0], "z": [2.0, 2.0]}, {"y": [6.0, 8.0], "z": [0.0, 2.0]}]}
    status, body = _call(
        f"{rest}/v1/models/m/versions/2:predict",
        {"signature_name": "add", "inputs": {"a": [1, 2], "b": [10, 20]}},
    )
    assert (status, body) == (200, {"outputs": [11, 22]})
    status, body = _call(
        f"{rest}/v1/models/m:predict", {"signature_name": "add", "instances": [{"a": 1, "b": 2}]}
    )
    assert (status, body) == (200, {"predictions": [3]})


def test_predict_errors_use_tf_serving_codes_and_messages(rest: str) -> None:
    # TF Serving's REST handler looks the signature up itself (GetInfoMap) before Predict does, in
    # its own words and code: INVALID_ARGUMENT, where gRPC answers FAILED_PRECONDITION.
    assert _call(f"{rest}/v1/models/m:predict", {"signature_name": "conv_9", "instances": [[1.0, 1.0]]}) == (
        400,
        {"error": 'Serving signature name: "conv_9" not found in signature def'},
    )
    assert _call(f"{rest}/v1/models/m/labels/stable:predict", {"instances": [[1.0, 1.0]]}) == (
        400,
        {"error": "Unrecognized servable version label: stable"},
    )
    assert _call(f"{rest}/v1/models/m/versions/7:predict", {"instances": [[1.0, 1.0]]}) == (
        404,
        {"error": "Servable not found for request: Specific(m, 7)"},
    )
    assert _call(f"{rest}/v1/models/m:classify", {"examples": []}) == (
        400,
        {"error": "JSON Value: {\n    \"examples\": []\n} 'examples' value is an empty array"},
    )
    # serving_default is a predict signature without the classification keys: the core refuses it
    # for Classify, in TF Serving's words (the method name itself is checked only under
    # --enable_signature_method_name_check).
    status, body = _call(f"{rest}/v1/models/m:classify", {"examples": [{"x": 1.0}]})
    assert status == 400
    assert body["error"].startswith("No classification inputs found in SignatureDef: inputs {\n  key: ")


def test_metadata(rest: str) -> None:
    status, body = _call(f"{rest}/v1/models/m/metadata")
    assert status == 200
    assert body["model_spec"] == {"name": "m", "signature_name": "", "version": "2"}
    add = body["metadata"]["signature_def"]["signature_def"]["add"]
    assert add["inputs"]["a"]["dtype"] == "DT_INT64"
    assert add["method_name"] == "tensorflow/serving/predict"


def test_prometheus_metrics_on_the_rest_port(
    make_repo: Callable[..., Path], start_server: Callable[..., tuple], tmp_path: Path
) -> None:
    import grpc
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    base = make_repo("mon", {1: "1"})
    monitoring = tmp_path / "monitoring.config"
    monitoring.write_text('prometheus_config { enable: true path: "/monitoring/prometheus/metrics" }\n')
    server, channel = start_server(
        model_name="mon",
        model_base_path=str(base),
        rest_api_port=_free_port(),
        monitoring_config_file=str(monitoring),
        enable_model_warmup=False,
    )
    rest_url = f"http://127.0.0.1:{server.rest_port}"
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "mon"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.ones((1, 2), np.float32)))
    stub.Predict(request, timeout=10)
    request.model_spec.version.value = 9
    with pytest.raises(grpc.RpcError):
        stub.Predict(request, timeout=10)
    assert _call(f"{rest_url}/v1/models/mon:predict", {"instances": [[1.0, 1.0]]})[0] == 200
    with urllib.request.urlopen(f"{rest_url}/monitoring/prometheus/metrics", timeout=10) as response:
        assert response.headers["Content-Type"] == "text/plain; version=0.0.4"
        lines = response.read().decode().splitlines()
    assert ":tensorflow:serving:request_count" in {
        line.split()[2] for line in lines if line.startswith("# TYPE")
    }
    assert ':tensorflow:serving:request_count{model_name="mon",status="OK"} 2' in lines
    assert ':tensorflow:serving:request_count{model_name="mon",status="NOT_FOUND"} 1' in lines
    grpc_prefix = (
        ':tensorflow:serving:request_latency_bucket{model_name="mon",API="Predict",entrypoint="GRPC",'
    )
    assert f'{grpc_prefix}le="10"}} 0' in lines
    assert f'{grpc_prefix}le="+Inf"}} 1' in lines
    assert (
        f':tensorflow:cc:saved_model:load_attempt_count{{model_path="{base / "1"}",status="success"}} 1'
        in lines
    )
