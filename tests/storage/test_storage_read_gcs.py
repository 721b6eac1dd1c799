"""The commands that read a version accept gs:// URIs.

`validate` reads through TensorFlow's own GCS client (a child process, through the relay); `compat` and
`config check` stay TF-free and read only the small files, through `layertap.storage`.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from layertap.errors import LocationError, StorageError
from layertap.server.filesystem import local_copy
from tests.cli_process import cli_command
from tests.storage.emulators import FakeGcs
from tests.storage.gcs_serving import upload_folder, version_files
from tests.storage.tensorflow_gcs import TensorFlowGcs


def test_validate_reads_a_gcs_version_through_tensorflow(
    fake_gcs: FakeGcs, gcs_bucket: str, scale_exports: dict[int, Path], tensorflow_gcs: TensorFlowGcs
) -> None:
    upload_folder(fake_gcs.endpoint, gcs_bucket, "models/m/1", scale_exports[2])
    uri = f"gs://{gcs_bucket}/models/m/1"
    result = subprocess.run(
        cli_command("validate", uri, "--batch=2", "--runs=1", "--json"),
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


def test_compat_reads_a_gcs_version_without_tensorflow(
    fake_gcs: FakeGcs, gcs_bucket: str, scale_exports: dict[int, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from layertap.cli import main
    from layertap.config.compat import SERVING_VERSION

    upload_folder(fake_gcs.endpoint, gcs_bucket, "models/m/1", scale_exports[1])
    uri = f"gs://{gcs_bucket}/models/m/1"
    assert main(["compat", uri, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["path"], report["server"], report["compatible"]) == (uri, SERVING_VERSION, True)
    assert main(["compat", f"gs://{gcs_bucket}/models/m/9"]) == 2
    assert f"nothing is stored under gs://{gcs_bucket}/models/m/9" in capsys.readouterr().err


def test_config_check_reads_gcs_base_paths(
    fake_gcs: FakeGcs, gcs_bucket: str, scale_exports: dict[int, Path]
) -> None:
    from layertap.config import check, models

    upload_folder(fake_gcs.endpoint, gcs_bucket, "models/m/1", scale_exports[1])
    # Version 2 is being uploaded: visible on GCS, no saved_model.pb yet.
    partial = [path for path in version_files(scale_exports[2]) if path.name != "saved_model.pb"]
    upload_folder(fake_gcs.endpoint, gcs_bucket, "models/m/2", scale_exports[2], partial)
    config = models.set_model(models.parse_model_server_config(""), "m", f"gs://{gcs_bucket}/models/m")
    config = models.set_model(config, "gone", f"gs://{gcs_bucket}/models/gone")
    report = check.check_serving_config(config, signatures={"m": {"serving_default"}})
    assert [str(finding) for finding in report.findings] == [
        f"error: model 'm': version 2 (served by policy latest 1) is incomplete: missing saved_model.pb in "
        f"gs://{gcs_bucket}/models/m/2 (half-copied? publish by writing elsewhere and renaming)",
        f"error: model 'gone': base_path gs://{gcs_bucket}/models/gone does not exist (no object under it)",
    ]
    pinned = models.set_model(
        models.parse_model_server_config(""),
        "m",
        f"gs://{gcs_bucket}/models/m",
        policy=models.specific_versions([1]),
    )
    report = check.check_serving_config(pinned, signatures={"m": {"serving_default", "missing"}})
    assert [str(finding) for finding in report.findings] == [
        "error: model 'm': version 1 has no signature missing; it has: serving_default"
    ]
    assert dict(report.served) == {"m": (1,)}


def test_reading_gcs_without_credentials_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from layertap.config.compat import check_compat

    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    with pytest.raises(StorageError, match=r"^open gs://bkt/: no Google credentials found .*missing\.json"):
        check_compat("gs://bkt/models/m/1")
