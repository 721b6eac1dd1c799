"""`layertap serve` on what `layertap.exporter.export` writes: every layer signature equals Keras."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
)


def test_every_exported_layer_matches_keras(
    exported: tuple[Path, Any],
    exported_layers: list[str],
    small_cnn: Any,
    start_server: Callable[..., tuple],
    caplog: pytest.LogCaptureFixture,
) -> None:
    import keras

    base, result = exported
    caplog.set_level("INFO", logger="layertap.server")
    _, channel = start_server(model_name="cnn", model_base_path=str(base))
    # The exporter's warmup file (one record per signature) was replayed at load.
    assert f"Number of warmup records read: {len(result.signatures)}." in caplog.text
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    images = np.random.default_rng(3).random((2, 12, 12, 1), dtype=np.float32)
    metadata_request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    metadata_request.model_spec.name = "cnn"
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    stub.GetModelMetadata(metadata_request, timeout=10).metadata["signature_def"].Unpack(signature_map)
    assert set(exported_layers) | {"serving_default"} <= set(signature_map.signature_def)
    for layer in [*exported_layers, "serving_default"]:
        signature = signature_map.signature_def[layer]
        (input_alias,) = signature.inputs
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "cnn"
        request.model_spec.signature_name = layer
        request.inputs[input_alias].CopyFrom(tf.make_tensor_proto(images))
        response = stub.Predict(request, timeout=30)
        assert response.model_spec.signature_name == layer
        assert response.model_spec.version.value == result.version
        if layer == "serving_default":
            expected = small_cnn(images, training=False)
        else:
            expected = keras.Model(small_cnn.inputs[0], small_cnn.get_layer(layer).output)(
                images, training=False
            )
        (output,) = response.outputs.values()
        np.testing.assert_allclose(tf.make_ndarray(output), np.asarray(expected), rtol=1e-5, atol=1e-6)


def test_exported_signature_errors_are_tf_serving_errors(
    exported: tuple[Path, Any], start_server: Callable[..., tuple]
) -> None:
    base, _ = exported
    _, channel = start_server(model_name="cnn", model_base_path=str(base), enable_model_warmup=False)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "cnn"
    request.model_spec.signature_name = "conv_2"
    with pytest.raises(grpc.RpcError) as caught:
        stub.Predict(request, timeout=10)
    assert (caught.value.code(), caught.value.details()) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        'Serving signature key "conv_2" not found.',
    )


def test_layertap_client_against_layertap_serve(
    exported: tuple[Path, Any], exported_layers: list[str], small_cnn: Any, start_server: Callable[..., tuple]
) -> None:
    import keras

    from layertap.client import LayerClient

    base, result = exported
    server, _ = start_server(
        model_name="cnn", model_base_path=str(base), enable_serialization_as_tensor_content=True
    )
    images = np.random.default_rng(5).random((3, 12, 12, 1), dtype=np.float32)
    with LayerClient(f"127.0.0.1:{server.port}", "cnn") as client:
        assert [s.version for s in client.wait_ready(timeout=30)] == [result.version]
        outputs = client.predict(images, exported_layers)
    assert list(outputs) == exported_layers
    for layer in exported_layers:
        expected = keras.Model(small_cnn.inputs[0], small_cnn.get_layer(layer).output)(images, training=False)
        np.testing.assert_allclose(outputs[layer], np.asarray(expected), rtol=1e-5, atol=1e-6)
