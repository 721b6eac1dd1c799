"""The oldest supported pair (TensorFlow 2.16.1 with its Keras 3) exports, verifies and serves.

In the old environment (tests/fixtures/oldtf.py): layertap, from this checkout, exports the tutorial CNN and a
keras.applications model (verification through the session loader included), then `layertap serve` serves
them; this process asks for the layers with the TensorFlow-free client and compares with that Keras.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from pathlib import Path

import numpy as np
import pytest

from layertap.client import LayerClient
from layertap.config import models as config_models
from tests.fixtures.oldtf import OldTensorFlow

pytestmark = pytest.mark.slow
HERE = Path(__file__).resolve().parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_oldest_pair_exports_verifies_and_serves(old_tensorflow: OldTensorFlow, tmp_path: Path) -> None:
    base, arrays = tmp_path / "models", tmp_path / "arrays"
    made = old_tensorflow.run(str(HERE / "old_pair_child.py"), str(base), str(arrays), timeout=900)
    assert made.returncode == 0, made.stderr[-4000:]
    report = json.loads(made.stdout.splitlines()[-1])
    assert (report["tensorflow"], report["keras"]) == ("2.16.1", old_tensorflow.keras)
    assert report["protobuf"].startswith("4.")  # TensorFlow 2.16 requires protobuf < 5
    for name, exported in report["exports"].items():
        assert exported["version"] == 1, name
        assert set(exported["max_errors"]) == {"serving_default", *exported["layers"]}, name

    config = config_models.parse_model_server_config("")
    for name in report["exports"]:
        config = config_models.set_model(config, name, str(base / name))
    config_path = tmp_path / "models.config"
    config_path.write_text(config_models.format_model_server_config(config))
    port = _free_port()
    server = subprocess.Popen(
        [str(old_tensorflow.python), "-m", "layertap.cli", "serve", f"--port={port}",
         f"--model_config_file={config_path}"],
        env=old_tensorflow.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        for name, exported in report["exports"].items():
            with LayerClient(f"127.0.0.1:{port}", name) as client:
                client.wait_ready(timeout=180)
                x = np.load(arrays / f"{name}_x.npy")
                for layer in exported["layers"]:
                    want = np.load(arrays / f"{name}_{layer}.npy")
                    got = client.predict_layer(x, layer)
                    assert got.shape == want.shape, (name, layer)
                    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            _, stderr = server.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            _, stderr = server.communicate()
    assert server.returncode == 0, stderr[-3000:]
    assert "layertap serve exited cleanly" in stderr
