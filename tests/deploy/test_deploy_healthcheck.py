"""docker/healthcheck.sh (the image's HEALTHCHECK and the Kubernetes probes) over real loopback HTTP.

The server here answers `GET /v1/models/NAME` with TF Serving's REST status body. The script itself runs
unchanged, with the bash and coreutils `timeout` that the tensorflow/serving images also ship.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKER_DIR = REPO_ROOT / "docker"


SCRIPT = DOCKER_DIR / "healthcheck.sh"


@contextmanager
def status_server(states: dict[str, list[str]]) -> Iterator[int]:
    """Serve model -> [state per version] on 127.0.0.1; yields the port."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            name = self.path.removeprefix("/v1/models/")
            if name not in states:
                code, body = 404, {"error": f"Could not find any versions of model {name}"}
            else:
                statuses = [
                    {"version": str(i + 1), "state": s, "status": {"error_code": "OK", "error_message": ""}}
                    for i, s in enumerate(states[name])
                ]
                code, body = 200, {"model_version_status": statuses}
            data = json.dumps(body, indent=1).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _probe(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=30, env=env, check=False
    )


@pytest.mark.parametrize(
    ("states", "code", "message"),
    [
        (["AVAILABLE"], 0, ""),
        (["END", "AVAILABLE"], 0, ""),
        (["LOADING"], 1, "model tutorial_cnn: no version AVAILABLE"),
        (["END"], 1, "model tutorial_cnn: no version AVAILABLE"),
    ],
)
def test_health_follows_the_model_status(states: list[str], code: int, message: str) -> None:
    with status_server({"tutorial_cnn": states}) as port:
        result = _probe("tutorial_cnn", str(port))
    assert result.returncode == code
    assert result.stderr.strip() == message


def test_unknown_model_is_unhealthy_and_model_name_comes_from_the_environment() -> None:
    with status_server({"tutorial_cnn": ["AVAILABLE"]}) as port:
        missing = _probe("other", str(port))
        from_env = _probe("", str(port), env={"MODEL_NAME": "tutorial_cnn", "PATH": "/usr/bin:/bin"})
    assert missing.returncode == 1
    assert missing.stderr.strip() == "model other: HTTP/1.1 404 Not Found"
    assert from_env.returncode == 0


def test_server_down_is_unhealthy() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = _probe("tutorial_cnn", str(port))
    assert result.returncode != 0
