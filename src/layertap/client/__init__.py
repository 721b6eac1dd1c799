"""Ask TensorFlow Serving for layer outputs over gRPC, as numpy arrays, without TensorFlow.

    from layertap.client import LayerClient

    with LayerClient("localhost:8500", "cnn") as client:
        client.layers()                                  # what the model offers
        conv = client.predict_layer(images, "conv_2")    # one layer
        outs = client.predict(images, ["conv_1", "conv_2"])  # several, in as few calls as possible

Needs only grpcio, protobuf and numpy: importing it never imports TensorFlow. `AsyncLayerClient`
is the same client for asyncio. Errors are those of `layertap.errors`.
"""

from __future__ import annotations

from layertap.client._async import AsyncLayerClient
from layertap.client._catalogue import Catalogue, Layer, Signature, TensorSpec
from layertap.client._channel import TLS
from layertap.client._retry import Retry
from layertap.client._status import VersionStatus
from layertap.client._sync import LayerClient

__all__ = [
    "TLS",
    "AsyncLayerClient",
    "Catalogue",
    "Layer",
    "LayerClient",
    "Retry",
    "Signature",
    "TensorSpec",
    "VersionStatus",
]
