"""The two-step label move against a running server that enforces TF Serving's label rule.

`layertap serve` implements TF Serving's flags, config polling, version lifecycle and "a label may only
point at an AVAILABLE version". The config is edited only through `layertap config`, exactly as a model-ops
engineer would; the container health check script is run against the server's real REST status.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np

from layertap.cli import EXIT_OK, EXIT_USAGE, main
from layertap.config import demo_files
from layertap.config.status import fetch_version_states
from layertap.errors import LayertapError
from layertap.proto import methods
from layertap.proto import serving_pb2 as pb
from layertap.wire.tensors import array_to_proto
from tests.fixtures.config_repos import VersionWriter

REPO_ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for(
    condition: Callable[[], bool], what: str, server: subprocess.Popen[str], timeout: float = 90
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, f"layertap serve exited while waiting for {what}"
        if condition():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def _states(rest: str) -> dict[int, str]:
    try:
        return fetch_version_states(rest, "tutorial_cnn", timeout=2)
    except LayertapError:
        return {}


def _version_behind_label(grpc_port: int) -> int:
    request = pb.PredictRequest()
    request.model_spec.name = "tutorial_cnn"
    request.model_spec.version_label = "stable"
    request.model_spec.signature_name = "conv_2"
    request.inputs["x"].CopyFrom(array_to_proto(np.ones((1, 3), np.float32)))
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        call = channel.unary_unary(
            methods.PREDICT,
            request_serializer=pb.PredictRequest.SerializeToString,
            response_deserializer=pb.PredictResponse.FromString,
        )
        response = call(request, timeout=20)
    return int(response.model_spec.version.value)


def _label_points_at(grpc_port: int, version: int) -> bool:
    try:
        return _version_behind_label(grpc_port) == version
    except grpc.RpcError:  # a reload in progress may answer an error once; keep waiting
        return False


def test_label_move_on_a_live_server(tmp_path: Path, write_version: VersionWriter) -> None:
    write_version("tutorial_cnn", 1)
    base_path = tmp_path / "models" / "tutorial_cnn"
    config = tmp_path / "models.config"
    config.write_text(demo_files(base_path=str(base_path))["models.config"])
    edit = ["--config", str(config)]
    assert main(["config", "models", "policy", "tutorial_cnn", "--specific", "1", *edit]) == EXIT_OK
    assert main(["config", "models", "label", "tutorial_cnn", "stable", "1", *edit]) == EXIT_OK

    grpc_port, rest_port = _free_port(), _free_port()
    rest = f"http://127.0.0.1:{rest_port}"
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable, "-m", "layertap.cli", "serve",
            f"--port={grpc_port}", f"--rest_api_port={rest_port}",
            f"--model_config_file={config}", "--model_config_file_poll_wait_seconds=1",
            "--allow_version_labels_for_unavailable_models=true",
        ],
        stdout=log, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""},
    )  # fmt: skip
    try:

        def healthy() -> bool:
            probe = [str(REPO_ROOT / "docker" / "healthcheck.sh"), "tutorial_cnn", str(rest_port)]
            return (
                subprocess.run(["bash", *probe], capture_output=True, timeout=30, check=False).returncode == 0
            )

        _wait_for(healthy, "the health check to pass", server)
        assert _states(rest) == {1: "AVAILABLE"}
        assert _version_behind_label(grpc_port) == 1

        write_version("tutorial_cnn", 2)
        step2 = [
            "config",
            "models",
            "label",
            "tutorial_cnn",
            "stable",
            "2",
            "--step",
            "2",
            "--server",
            rest,
            *edit,
        ]
        assert main(step2) == EXIT_USAGE  # version 2 is not loaded: the move is refused, the file untouched
        assert (
            main(["config", "models", "label", "tutorial_cnn", "stable", "2", "--step", "1", *edit])
            == EXIT_OK
        )
        _wait_for(lambda: _states(rest).get(2) == "AVAILABLE", "version 2 to become AVAILABLE", server)
        assert _states(rest) == {1: "AVAILABLE", 2: "AVAILABLE"}
        assert _version_behind_label(grpc_port) == 1  # step 1 never moved the label

        assert main([*step2, "--retire-unlabelled"]) == EXIT_OK
        _wait_for(lambda: _label_points_at(grpc_port, 2), "the label to point at version 2", server)
        _wait_for(lambda: _states(rest).get(1) == "END", "version 1 to unload", server)
        assert healthy()
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
