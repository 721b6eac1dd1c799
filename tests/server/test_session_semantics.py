"""Sessions run as TF Serving's C++ `Session::Run` does: no Python static feed-shape check.

On TF Serving's own test model `half_plus_two` (tests/fixtures/half_plus_two.py), feeds of shape [1], [3] and
[2, 2] to `x` (static shape (None, 1)) answer 3.0 everywhere, as TF Serving does; what the graph cannot
run is refused with the runtime's own error, and a wrong dtype in TF Serving's words.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc


def _request(name: str, **inputs: np.ndarray) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    for alias, array in inputs.items():
        request.inputs[alias].CopyFrom(tf.make_tensor_proto(array))
    return request


@pytest.fixture
def stub(
    half_plus_two: Path, make_repo: Callable[..., Path], start_server: Callable[..., tuple]
) -> prediction_service_pb2_grpc.PredictionServiceStub:
    import shutil

    base = make_repo("m", {1: "1"})
    shutil.copytree(half_plus_two, base.parent / "half_plus_two")
    config = base.parent / "models.config"
    config.write_text(
        "model_config_list {\n"
        f'  config {{ name: "half_plus_two" base_path: "{base.parent / "half_plus_two"}" '
        'model_platform: "tensorflow" }\n'
        f'  config {{ name: "m" base_path: "{base}" model_platform: "tensorflow" }}\n'
        "}\n"
    )
    _, channel = start_server(model_config_file=str(config))
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


@pytest.mark.parametrize("shape", [[1], [3], [2, 2], [1, 1]])
def test_half_plus_two_answers_feeds_python_would_refuse(
    stub: prediction_service_pb2_grpc.PredictionServiceStub, shape: list[int]
) -> None:
    response = stub.Predict(_request("half_plus_two", x=np.full(shape, 2.0, np.float32)), timeout=30)
    assert response.model_spec.version.value == 123
    y = tf.make_ndarray(response.outputs["y"])
    assert y.shape == tuple(shape)
    assert y.tolist() == np.full(shape, 3.0).tolist()


def test_what_the_graph_cannot_run_is_the_runtimes_error(
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        # serving_default of "m" is matmul(x, kernel[2, 2]); three columns cannot multiply.
        stub.Predict(_request("m", x=np.ones((1, 3), np.float32)), timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details().startswith("Matrix size-incompatible: In[0]: [1,3], In[1]: [2,2]")
    assert "Cannot feed value of shape" not in caught.value.details()
    with pytest.raises(grpc.RpcError) as caught:
        stub.Predict(_request("half_plus_two", x=np.ones((1, 1), np.float64)), timeout=30)
    assert (caught.value.code(), caught.value.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "Expects arg[0] to be float but double is provided",
    )
