"""`assets.extra/tf_serving_warmup_requests`: one PredictionLog per signature, batch 1.

TF Serving initialises each signature lazily on its first request; a record per signature makes
it run them all at load time, before the version is marked AVAILABLE (tensorflow_serving/servables/
tensorflow/saved_model_warmup_util.cc: at most 1000 records, and one that fails fails the load).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from layertap.exporter.samples import sample_inputs
from layertap.exporter.truncate import Signature
from layertap.proto import serving_pb2 as pb
from layertap.version_folder import MAX_WARMUP_RECORDS, WARMUP_PATH
from layertap.wire.tensors import array_to_proto

__all__ = ["warmup_requests", "write_warmup"]


def warmup_requests(model_name: str, signatures: Sequence[Signature], *, seed: int) -> list[pb.PredictionLog]:
    """A PredictionLog{predict_log{request}} with random batch-1 inputs for each signature."""
    logs = []
    for number, signature in enumerate(signatures[:MAX_WARMUP_RECORDS]):
        request = pb.PredictRequest()
        request.model_spec.name = model_name
        request.model_spec.signature_name = signature.key
        for alias, array in sample_inputs(signature.input_specs, batch=1, seed=seed + number).items():
            request.inputs[alias].CopyFrom(array_to_proto(array))
        logs.append(pb.PredictionLog(predict_log=pb.PredictLog(request=request)))
    return logs


def write_warmup(version_dir: Path, model_name: str, signatures: Sequence[Signature], *, seed: int) -> Path:
    """Write the warmup TFRecord file into `version_dir/assets.extra`."""
    import tensorflow as tf

    path = version_dir / WARMUP_PATH
    path.parent.mkdir(exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for log in warmup_requests(model_name, signatures, seed=seed):
            writer.write(log.SerializeToString())
    return path
