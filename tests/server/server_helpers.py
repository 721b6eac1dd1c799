"""Helpers the server tests share: publishing versions and writing warmup files."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from layertap.proto import serving_pb2 as pb
from layertap.wire import tensors

#: The layers the session's small CNN export carries (see conftest.exported).
EXPORTED_LAYERS = ["conv_1", "pool_1", "flatten"]


def write_warmup(version_dir: Path, requests: list[pb.PredictRequest]) -> None:
    """Write TF Serving's warmup file (TFRecord of PredictionLog) into a version directory."""
    import tensorflow as tf

    extra = version_dir / "assets.extra"
    extra.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(extra / "tf_serving_warmup_requests")) as writer:
        for request in requests:
            log = pb.PredictionLog()
            log.predict_log.request.CopyFrom(request)
            writer.write(log.SerializeToString())


def warmup_request(signature: str = "serving_default") -> pb.PredictRequest:
    request = pb.PredictRequest()
    request.model_spec.name = "warm"
    request.model_spec.signature_name = signature
    request.inputs["x"].CopyFrom(tensors.array_to_proto(np.ones((1, 2), np.float32)))
    return request


def publish(base: Path, version: int, export: Path) -> None:
    """Publish a version atomically: copy next to it under a non-numeric name, then rename."""
    staging = base / f".staging-{version}"
    shutil.copytree(export, staging)
    staging.rename(base / str(version))
