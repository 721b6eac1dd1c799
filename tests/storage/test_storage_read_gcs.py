"""The commands that read a version accept gs:// URIs; `validate` reads through TensorFlow's GCS client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from layertap.errors import LocationError
from layertap.server.filesystem import local_copy
from tests.storage.emulators import FakeGcs
from tests.storage.gcs_serving import upload_folder
from tests.storage.tensorflow_gcs import TensorFlowGcs


def test_validate_reads_a_gcs_version_through_tensorflow(
    fake_gcs: FakeGcs, gcs_bucket: str, scale_exports: dict[int, Path], tensorflow_gcs: TensorFlowGcs
) -> None:
    upload_folder(fake_gcs.endpoint, gcs_bucket, "models/m/1", scale_exports[2])
    uri = f"gs://{gcs_bucket}/models/m/1"
    result = subprocess.run(
        [sys.executable, "-m", "layertap.cli", "validate", uri, "--batch=2", "--runs=1", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, **tensorflow_gcs.environment(), "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["path"], report["passed"], report["failures"]) == (uri, True, [])
    assert sorted(report["signatures"]) == ["serving_default"]
    assert f"layertap validate: copying {uri} through TensorFlow's filesystem" in result.stderr


def test_only_gcs_is_read_through_tensorflow() -> None:
    with (
        pytest.raises(LocationError, match=r"^s3://bkt/m/1: only gs:// versions are read through TensorFlow"),
        local_copy("s3://bkt/m/1"),
    ):
        pass
