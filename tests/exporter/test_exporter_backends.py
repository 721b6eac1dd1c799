"""Models trained under another Keras backend: a `.keras` file trained a few steps under JAX exports
(the exporter always runs TensorFlow, whatever KERAS_BACKEND says), and `--parity-backend jax`
compares every signature with the model run under JAX in a child process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from layertap.cli import EXIT_OK
from tests.cli_process import cli_command

pytest.importorskip("jax")  # the `jax` extra (make install brings it)

TRAIN_UNDER_JAX = """
import sys
import keras
import numpy as np
assert keras.backend.backend() == "jax", keras.backend.backend()
keras.utils.set_random_seed(5)
inputs = keras.Input((6, 3), name="series")
x = keras.layers.Conv1D(4, 3, activation="relu", name="conv")(inputs)
x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
x = keras.layers.Dense(5, activation="tanh", name="hidden")(x)
outputs = keras.layers.Dense(2, name="scores")(x)
model = keras.Model(inputs, outputs)
model.compile(optimizer="adam", loss="mse")
rng = np.random.default_rng(0)
model.fit(rng.normal(size=(64, 6, 3)), rng.normal(size=(64, 2)), epochs=1, batch_size=16, verbose=0)
model.save(sys.argv[1])
"""


@pytest.fixture(scope="module")
def jax_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("jax") / "trained_under_jax.keras"
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    subprocess.run([sys.executable, "-c", TRAIN_UNDER_JAX, str(path)], env=env, check=True, timeout=300)
    return path


def test_a_jax_model_exports_and_matches_jax_per_signature(jax_model: Path, tmp_path: Path) -> None:
    # The user's environment says jax: the exporter runs TensorFlow anyway.
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    command = cli_command(
        "export", str(jax_model), "--layer", "conv", "--layer", "hidden", "--base-path", str(tmp_path),
        "--name", "jaxmodel", "--parity-backend", "jax", "--json",
    )  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, check=False)
    assert done.returncode == EXIT_OK, done.stderr
    result = json.loads(done.stdout)
    assert result["verification"]["verified"] is True
    assert result["parity"]["backend"] == "jax"
    assert set(result["parity"]["max_errors"]) == {"serving_default", "conv", "hidden"}
    assert all(error <= 1e-4 for error in result["parity"]["max_errors"].values())


def test_the_python_api_refuses_keras_imported_with_another_backend(jax_model: Path, tmp_path: Path) -> None:
    code = (
        "import keras, sys\n"
        "from layertap.errors import UnsupportedModelError\n"
        "from layertap.exporter import export\n"
        "try:\n"
        f"    export({str(jax_model)!r}, ['conv'], base_path={str(tmp_path)!r}, name='m')\n"
        "except UnsupportedModelError as error:\n"
        "    print(error)\n"
        "    sys.exit(0)\n"
        "sys.exit(1)\n"
    )
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "keras was imported with the 'jax' backend" in done.stdout
    assert list(tmp_path.iterdir()) == []
