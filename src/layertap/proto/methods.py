"""TensorFlow Serving's gRPC method paths. Our messages live in package layertap.serving, but the
services are TF Serving's, so the paths are spelled here once for the client and the server."""

from __future__ import annotations

__all__ = [
    "CLASSIFY",
    "GET_MODEL_METADATA",
    "GET_MODEL_STATUS",
    "MODEL_SERVICE",
    "MULTI_INFERENCE",
    "PREDICT",
    "PREDICTION_SERVICE",
    "REGRESS",
    "RELOAD_CONFIG",
    "SIGNATURE_DEF_MAP_TYPE_URL",
]

PREDICTION_SERVICE = "tensorflow.serving.PredictionService"
MODEL_SERVICE = "tensorflow.serving.ModelService"

PREDICT = f"/{PREDICTION_SERVICE}/Predict"
GET_MODEL_METADATA = f"/{PREDICTION_SERVICE}/GetModelMetadata"
CLASSIFY = f"/{PREDICTION_SERVICE}/Classify"
REGRESS = f"/{PREDICTION_SERVICE}/Regress"
MULTI_INFERENCE = f"/{PREDICTION_SERVICE}/MultiInference"
GET_MODEL_STATUS = f"/{MODEL_SERVICE}/GetModelStatus"
RELOAD_CONFIG = f"/{MODEL_SERVICE}/HandleReloadConfigRequest"

# GetModelMetadataResponse.metadata["signature_def"] is an Any with TF Serving's type name.
SIGNATURE_DEF_MAP_TYPE_URL = "type.googleapis.com/tensorflow.serving.SignatureDefMap"
