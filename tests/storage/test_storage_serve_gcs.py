"""`layertap serve` reading gs:// through TensorFlow's own GCS client, against fake-gcs-server.

The server runs in a child process whose gs:// requests reach the emulator through the relay of
tests/storage/tensorflow_gcs.py; objects are written one by one, so each test decides what a poll can see.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from layertap.client import LayerClient, ServingClient, VersionStatus
from layertap.errors import ModelNotFoundError
from tests.storage.emulators import FakeGcs, unique_bucket
from tests.storage.gcs_serving import ServeProcess, upload_file, upload_folder, version_files
from tests.storage.tensorflow_gcs import TensorFlowGcs, start_tensorflow_gcs

X = np.array([[1.0, 2.0]], np.float32)


@pytest.fixture
def serve(tensorflow_gcs: TensorFlowGcs) -> Iterator[Callable[..., ServeProcess]]:
    started: list[ServeProcess] = []

    def start(*flags: str) -> ServeProcess:
        started.append(ServeProcess(tensorflow_gcs, *flags))
        return started[-1]

    yield start
    for process in started:
        process.stop()


def _states(port: int, model: str = "m") -> list[tuple[int, str]]:
    with LayerClient(f"127.0.0.1:{port}", model) as client:
        try:
            return [(status.version, status.state) for status in client.status()]
        except ModelNotFoundError:  # not in the config (yet)
            return []


def _wait_states(port: int, expected: list[tuple[int, str]], model: str = "m") -> list[VersionStatus]:
    deadline = time.monotonic() + 60
    while _states(port, model) != expected and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _states(port, model) == expected
    with LayerClient(f"127.0.0.1:{port}", model) as client:
        return client.status()


def _predict(port: int, model: str = "m") -> tuple[int, np.ndarray]:
    with ServingClient(f"127.0.0.1:{port}", model) as client:
        outputs = client.predict({"x": X})
    with LayerClient(f"127.0.0.1:{port}", model) as client:
        served = [s.version for s in client.status() if s.available]
    return served[0], outputs["y"]


def test_serve_polls_a_gcs_base_path_and_never_loads_half_a_version(
    fake_gcs: FakeGcs, gcs_bucket: str, scale_exports: dict[int, Path], serve: Callable[..., ServeProcess]
) -> None:
    upload_folder(fake_gcs.endpoint, gcs_bucket, "models/m/1", scale_exports[1])
    server = serve(
        "--model_name=m",
        f"--model_base_path=gs://{gcs_bucket}/models/m",
        "--file_system_poll_wait_seconds=1",
        "--max_num_load_retries=0",
    )
    port = server.port()
    assert f"Loading servable {{ name: m version: 1 }} from gs://{gcs_bucket}/models/m/1" in server.log
    version, y = _predict(port)
    assert version == 1
    np.testing.assert_array_equal(y, [[1.0, 2.0]])

    # Version 2 without its saved_model.pb: GCS shows 2/ as soon as its first object exists. The load
    # fails (NOT_FOUND, as in TF Serving), the number stays failed, and version 1 keeps serving.
    partial = [path for path in version_files(scale_exports[2]) if path.name != "saved_model.pb"]
    upload_folder(fake_gcs.endpoint, gcs_bucket, "models/m/2", scale_exports[2], partial)
    statuses = _wait_states(port, [(2, "END"), (1, "AVAILABLE")])
    assert statuses[0].error_code == 5  # NOT_FOUND
    assert statuses[0].error_message == (
        "Could not find SavedModel .pb or .pbtxt at supplied export directory path: "
        f"gs://{gcs_bucket}/models/m/2"
    )
    version, y = _predict(port)
    assert version == 1
    np.testing.assert_array_equal(y, [[1.0, 2.0]])

    # Completing version 2 does not revive it (TF Serving never retries a failed number while it is
    # aspired); a complete version under a new number is loaded and replaces version 1.
    upload_file(
        fake_gcs.endpoint,
        gcs_bucket,
        "models/m/2/saved_model.pb",
        (scale_exports[2] / "saved_model.pb").read_bytes(),
    )
    upload_folder(fake_gcs.endpoint, gcs_bucket, "models/m/3", scale_exports[3])
    _wait_states(port, [(3, "AVAILABLE"), (2, "END"), (1, "END")])
    version, y = _predict(port)
    assert version == 3
    np.testing.assert_array_equal(y, [[3.0, 6.0]])
    assert server.stop() == 0


def test_serve_reads_and_polls_a_model_config_file_on_gcs(
    fake_gcs: FakeGcs, gcs_bucket: str, scale_exports: dict[int, Path], serve: Callable[..., ServeProcess]
) -> None:
    missing = unique_bucket("absent")

    def config(**base_paths: str) -> bytes:
        entries = "".join(
            f'  config {{ name: "{name}" base_path: "{base}" model_platform: "tensorflow" }}\n'
            for name, base in base_paths.items()
        )
        return f"model_config_list {{\n{entries}}}\n".encode()

    upload_folder(fake_gcs.endpoint, gcs_bucket, "models/m/1", scale_exports[1])
    upload_folder(fake_gcs.endpoint, gcs_bucket, "models/n/4", scale_exports[2])
    upload_file(
        fake_gcs.endpoint, gcs_bucket, "serving/models.config", config(m=f"gs://{gcs_bucket}/models/m")
    )
    server = serve(
        f"--model_config_file=gs://{gcs_bucket}/serving/models.config",
        "--model_config_file_poll_wait_seconds=1",
    )
    port = server.port()
    assert _predict(port, "m")[0] == 1

    # The next config adds a model and one whose bucket does not exist: the second is reported (in TF
    # Serving's words, plus why) and polled again; nothing else is disturbed.
    upload_file(
        fake_gcs.endpoint,
        gcs_bucket,
        "serving/models.config",
        config(
            m=f"gs://{gcs_bucket}/models/m",
            n=f"gs://{gcs_bucket}/models/n",
            lost=f"gs://{missing}/models/lost",
        ),
    )
    _wait_states(port, [(4, "AVAILABLE")], model="n")
    version, y = _predict(port, "n")
    assert version == 4
    np.testing.assert_array_equal(y, [[2.0, 4.0]])
    assert server.wait_for(r"filesystem access error: (.*)$").group(1) == (
        f"Could not find base path gs://{missing}/models/lost for servable lost: the bucket gs://{missing} "
        "does not exist, or these credentials cannot see it"
    )
    assert _predict(port, "m")[0] == 1
    assert _states(port, "lost") == []
    assert server.stop() == 0


def test_refused_credentials_are_reported_and_polled_not_a_crash(fake_gcs: FakeGcs) -> None:
    with start_tensorflow_gcs(fake_gcs.endpoint, refuse=401) as refusing:
        server = ServeProcess(refusing, "--model_name=m", "--model_base_path=gs://any-bucket/models/m")
        try:
            message = server.wait_for(r"filesystem access error: (.*)$").group(1)
            assert message.startswith("Could not list base path gs://any-bucket/models/m for servable m: ")
            assert "401" in message
            assert server.process.poll() is None  # still polling, as TF Serving does
        finally:
            assert server.stop() == 0
        assert "layertap serve stopped before serving" in server.log


@pytest.mark.parametrize(
    ("flag", "expected"),
    [
        ("--model_base_path=s3://bucket/m", "TF Serving cannot read s3://"),
        ("--model_base_path=hdfs://host/m", "unsupported base path 'hdfs://host/m' (scheme hdfs://)"),
        ("--model_config_file=s3://bucket/models.config", "reach local files and gs:// only"),
    ],
)
def test_serve_refuses_what_tf_serving_cannot_read_before_importing_tensorflow(
    flag: str, expected: str
) -> None:
    # The command fails on its arguments; importing TensorFlow (seconds) would end the child with code 9.
    blocker = (
        "import builtins, sys\n"
        "real = builtins.__import__\n"
        "def guard(name, *args, **kwargs):\n"
        "    if name.split('.')[0] == 'tensorflow':\n"
        "        sys.exit(9)\n"
        "    return real(name, *args, **kwargs)\n"
        "builtins.__import__ = guard\n"
        "from layertap.cli import main\n"
        "sys.exit(main())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", blocker, "serve", "--model_name=m", flag],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_the_flags_refuse_s3_as_they_parse() -> None:
    import argparse

    from layertap.server.flags import add_flags

    parser = argparse.ArgumentParser(exit_on_error=False)
    add_flags(parser)
    with pytest.raises(
        argparse.ArgumentError, match=r"--model_base_path=s3://bkt/m: TF Serving cannot read s3://"
    ):
        parser.parse_args(["--model_base_path=s3://bkt/m"])
    assert parser.parse_args(["--model_base_path=gs://bkt/m"]).model_base_path == "gs://bkt/m"
