"""`layertap compare` of two gs:// versions, read through TensorFlow's own GCS client from fake-gcs-server.

The compare runs in a child process whose gs:// requests reach the emulator through the relay of
tests/storage/tensorflow_gcs.py. The versions are plain TensorFlow SavedModels (no layertap manifest), so
their signatures are read from the graphs themselves.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.storage.emulators import FakeGcs, unique_bucket
from tests.storage.gcs_serving import upload_folder
from tests.storage.tensorflow_gcs import TensorFlowGcs


def _export(path: Path, factor: float) -> None:
    import tensorflow as tf

    class Scale(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.factor = tf.Variable(factor)

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"y": x * self.factor}

    module = Scale()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})


@pytest.mark.slow
def test_compare_reads_gs_versions(fake_gcs: FakeGcs, tensorflow_gcs: TensorFlowGcs, tmp_path: Path) -> None:
    bucket = unique_bucket("cmp")
    fake_gcs.create_bucket(bucket)
    for version, factor in ((1, 1.0), (2, -1.0)):
        _export(tmp_path / str(version), factor)
        upload_folder(fake_gcs.endpoint, bucket, f"m/{version}", tmp_path / str(version))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "layertap.cli",
            "compare",
            f"gs://{bucket}/m/1",
            f"gs://{bucket}/m/2",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, **tensorflow_gcs.environment(), "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert done.returncode == 1, done.stderr[-3000:]  # 1: a shared signature changed
    report = json.loads(done.stdout)
    assert report["old"] == {"location": f"gs://{bucket}/m/1", "version": 1}
    assert report["changed"] == ["serving_default"]
    output = report["signatures"]["serving_default"]["outputs"]["y"]
    # y -> -y: every paired vector points the other way, while which rows are near which is unchanged.
    assert (output["rows"], output["mean_cosine"], output["neighbour_overlap"]) == (256, -1.0, 1.0)
    assert output["cka"] == pytest.approx(1.0, abs=1e-5)
