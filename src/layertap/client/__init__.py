"""Ask TensorFlow Serving for layer outputs over gRPC, as numpy arrays, without TensorFlow.

    from layertap.client import LayerClient

    with LayerClient("localhost:8500", "cnn") as client:
        client.layers()                                  # what the model offers
        conv = client.predict_layer(images, "conv_2")    # one layer
        outs = client.predict(images, ["conv_1", "conv_2"])  # several, in as few calls as possible

`ServingClient` is the general TF Serving client for the rest of a served model, signature by
signature: Classify, Regress and MultiInference on tf.Examples given as dicts of features, and
Predict on any signature by name.

    from layertap.client import ServingClient

    with ServingClient("localhost:8500", "half_plus_two") as client:
        client.regress([{"x": 1.0}, {"x": 5.0}], signature="regress_x_to_y")   # array([2.5, 4.5])
        client.classify([{"x": 1.0}], signature="classify_x_to_y").scores     # array([[2.5]])

Needs only grpcio, protobuf and numpy: importing it never imports TensorFlow. `AsyncLayerClient`
and `AsyncServingClient` are the same clients for asyncio. Every client takes the same connection
keywords (`timeout=`, `retry=`, `tls=`, ...), documented once in `ConnectionSettings`. Errors are
those of `layertap.errors`.
"""

from __future__ import annotations

from layertap.client._catalogue import Catalogue, Layer, Signature, TensorSpec
from layertap.client._channel import TLS
from layertap.client._layer_client import AsyncLayerClient, LayerClient
from layertap.client._outputs import LayerOutputs
from layertap.client._retry import Retry
from layertap.client._serving_client import AsyncServingClient, ServingClient
from layertap.client._serving_core import Classification
from layertap.client._settings import ConnectionSettings
from layertap.client._status import VersionStatus

__all__ = [
    "TLS",
    "AsyncLayerClient",
    "AsyncServingClient",
    "Catalogue",
    "Classification",
    "ConnectionSettings",
    "Layer",
    "LayerClient",
    "LayerOutputs",
    "Retry",
    "ServingClient",
    "Signature",
    "TensorSpec",
    "VersionStatus",
]
