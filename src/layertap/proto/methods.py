"""TensorFlow Serving's gRPC method paths and signature constants. Our messages live in package
layertap.serving, but the services are TF Serving's, so the paths are spelled here once for the client
and the server; so are the SignatureDef method names and keys that Classify and Regress rely on
(TensorFlow's saved_model signature_constants, spelled here so TensorFlow-free code can use them)."""

from __future__ import annotations

__all__ = [
    "CLASSIFY",
    "CLASSIFY_INPUTS",
    "CLASSIFY_METHOD_NAME",
    "CLASSIFY_OUTPUT_CLASSES",
    "CLASSIFY_OUTPUT_SCORES",
    "GET_MODEL_METADATA",
    "GET_MODEL_STATUS",
    "MODEL_SERVICE",
    "MULTI_INFERENCE",
    "PREDICT",
    "PREDICTION_SERVICE",
    "PREDICT_METHOD_NAME",
    "REGRESS",
    "REGRESS_INPUTS",
    "REGRESS_METHOD_NAME",
    "REGRESS_OUTPUTS",
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

# SignatureDef.method_name of each kind of signature. Classify and Regress accept only signatures of
# their own kind; MultiInference tasks name one of the two.
PREDICT_METHOD_NAME = "tensorflow/serving/predict"
CLASSIFY_METHOD_NAME = "tensorflow/serving/classify"
REGRESS_METHOD_NAME = "tensorflow/serving/regress"

# The keys of a classification signature: serialized tf.Examples in, class labels and scores out.
CLASSIFY_INPUTS = "inputs"
CLASSIFY_OUTPUT_CLASSES = "classes"
CLASSIFY_OUTPUT_SCORES = "scores"
# The keys of a regression signature: serialized tf.Examples in, one value per example out.
REGRESS_INPUTS = "inputs"
REGRESS_OUTPUTS = "outputs"
