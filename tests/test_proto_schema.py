"""The project's own wire schema: current with its generator, and clash-free beside TensorFlow."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_generated_module_is_current() -> None:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gen_proto.py"), "--check"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_schema_lives_beside_tensorflow_serving_in_one_process() -> None:
    # Both orders of import: neither registration may clash with the other.
    code = """
from layertap.proto import serving_pb2 as ours
from tensorflow_serving.apis import predict_pb2
from tensorflow.core.framework import tensor_pb2
assert ours.PredictRequest.DESCRIPTOR.full_name == "layertap.serving.PredictRequest"
assert predict_pb2.PredictRequest.DESCRIPTOR.full_name == "tensorflow.serving.PredictRequest"
request = ours.PredictRequest()
request.model_spec.name = "m"
request.inputs["x"].dtype = ours.DT_FLOAT
request.inputs["x"].float_val.extend([1.5, 2.5])
theirs = predict_pb2.PredictRequest.FromString(request.SerializeToString())
assert theirs.model_spec.name == "m" and list(theirs.inputs["x"].float_val) == [1.5, 2.5]
print("ok")
"""
    for prefix in ("", "import tensorflow_serving.apis.predict_pb2\n"):
        result = subprocess.run(
            [sys.executable, "-c", prefix + code], capture_output=True, text=True, check=False
        )
        assert result.stdout.strip() == "ok", result.stderr[-2000:]
