"""Model repositories on disk for the config tests, built from one real SavedModel.

The SavedModel is written once per session by a TensorFlow subprocess, so the config tests themselves (and
this process) never import TensorFlow, which is what layertap.config promises.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

# Two layer signatures plus serving_default, like a layertap export of the tutorial CNN's layers.
_WRITE_SAVED_MODEL = """
import sys
import tensorflow as tf

class Layers(tf.Module):
    def __init__(self):
        super().__init__()
        self.scale = tf.Variable(2.0)

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
    def conv_2(self, x):
        return {"conv_2": x * self.scale}

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
    def pool_2(self, x):
        return {"pool_2": x + self.scale}

module = Layers()
tf.saved_model.save(
    module,
    sys.argv[1],
    signatures={"serving_default": module.conv_2, "conv_2": module.conv_2, "pool_2": module.pool_2},
)
print(tf.__version__)
"""


@pytest.fixture(scope="session")
def saved_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real SavedModel (signatures serving_default, conv_2, pool_2) written by TensorFlow."""
    target = tmp_path_factory.mktemp("saved_model") / "export"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    subprocess.run(
        [sys.executable, "-c", _WRITE_SAVED_MODEL, str(target)],
        check=True,
        env=env,
        capture_output=True,
        timeout=300,
    )
    return target


VersionWriter = Callable[..., Path]


@pytest.fixture
def write_version(tmp_path: Path, saved_model_dir: Path) -> VersionWriter:
    """Write version `version` of `model` under tmp_path/models; `drop` and `manifest` alter it."""

    def write(
        model: str,
        version: int,
        *,
        drop: tuple[str, ...] = (),
        manifest: dict[str, object] | None = None,
    ) -> Path:
        target = tmp_path / "models" / model / str(version)
        shutil.copytree(saved_model_dir, target)
        for name in drop:
            path = target / name
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        if manifest is not None:
            (target / "assets.extra").mkdir(exist_ok=True)
            (target / "assets.extra" / "layertap.json").write_text(json.dumps(manifest))
        return target

    return write


# A loopback HTTP server answering `GET /v1/models/NAME` with TF Serving's REST status body (string
# versions, state names): exercises our REST status reader over real HTTP.
@contextmanager
def _rest_status_server(states: dict[str, dict[int, str]]) -> Iterator[str]:
    """Serve `states` (model -> version -> state name) on 127.0.0.1; yields the base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            prefix = "/v1/models/"
            name = self.path[len(prefix) :] if self.path.startswith(prefix) else None
            if name is None or name not in states:
                self._reply(404, {"error": f"Could not find any versions of model {name}"})
                return
            body = {
                "model_version_status": [
                    {"version": str(v), "state": s, "status": {"error_code": "OK", "error_message": ""}}
                    for v, s in sorted(states[name].items(), reverse=True)
                ]
            }
            self._reply(200, body)

        def _reply(self, code: int, body: object) -> None:
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
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


RestStatusServer = Callable[[dict[str, dict[int, str]]], AbstractContextManager[str]]


@pytest.fixture
def rest_status_server() -> RestStatusServer:
    """`with rest_status_server({"model": {1: "AVAILABLE"}}) as url:` serves that status on 127.0.0.1."""
    return _rest_status_server
