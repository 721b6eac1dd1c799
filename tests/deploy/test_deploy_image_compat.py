"""The pinned pair, proven: an export by the project's TensorFlow loads in the pinned image's TensorFlow.

tensorflow/serving 2.21.0 is built on TensorFlow 2.21.0, and layertap[tf] installs TensorFlow 2.21, so the
server's TensorFlow is this environment's: the export is loaded in a FRESH process through the TF1 session
loader (the path TF Serving's C++ loader takes: `loader.load` + `Session.run` on signature tensor names),
with that exact version asserted. If the pin moves away from the project's TensorFlow, the version assertion
fails and this test must install the image's TensorFlow into its own virtual environment instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from layertap.cli import main
from layertap.config import IMAGE_TENSORFLOW_VERSION, models

_LOAD_IN_SESSION = """
import json, sys
import numpy as np
import pytest
import tensorflow as tf

export_dir, wanted_version, data = sys.argv[1], sys.argv[2], np.load(sys.argv[3])
assert tf.__version__ == wanted_version, f"TensorFlow {tf.__version__} is not the image's {wanted_version}"
errors = {}
with tf.compat.v1.Session(graph=tf.Graph()) as session:
    meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], export_dir)
    for key, signature in meta_graph.signature_def.items():
        if key not in data.files:  # serving_default, groups: covered by the exporter's own tests
            continue
        (input_info,) = signature.inputs.values()
        fetches = {alias: info.name for alias, info in signature.outputs.items()}
        outputs = session.run(fetches, {input_info.name: data["x"]})
        errors[key] = {alias: float(np.max(np.abs(value - data[key]))) for alias, value in outputs.items()}
print(json.dumps({"tensorflow": tf.__version__, "errors": errors}))
"""


def test_export_loads_through_the_session_loader_of_the_images_tensorflow(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import keras

    from layertap.exporter import export

    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, activation="relu", name="conv_1"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(3, name="dense_1"),
        ]
    )
    result = export(model, ["conv_1", "dense_1"], base_path=tmp_path / "models", name="tiny", version=1)
    x = np.random.default_rng(0).random((2, 8, 8, 1), dtype=np.float32)
    expected = {
        key: np.asarray(
            keras.Model(model.inputs, model.get_layer(info.layers[0]).output).predict(x, verbose=0)
        )
        for key, info in result.signatures.items()
        if len(info.layers) == 1 and info.layers[0] in ("conv_1", "dense_1")
    }
    assert len(expected) == 2
    np.savez(tmp_path / "data.npz", x=x, **expected)

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            _LOAD_IN_SESSION,
            str(result.path),
            IMAGE_TENSORFLOW_VERSION,
            str(tmp_path / "data.npz"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    report = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert report["tensorflow"] == IMAGE_TENSORFLOW_VERSION
    assert set(report["errors"]) == set(expected)
    for errors in report["errors"].values():
        assert len(errors) == 1
        assert max(errors.values()) < 1e-5

    # `layertap config check` reads the exporter's real manifest and warmup file: same TensorFlow as the
    # image, every signature warmed up, nothing to report.
    config_path = tmp_path / "models.config"
    models.write_model_server_config(
        config_path, models.set_model(models.parse_model_server_config(""), "tiny", "/models/tiny")
    )
    signature_args = [arg for key in expected for arg in ("--signature", key)]
    mount = f"{tmp_path / 'models'}:/models"
    capsys.readouterr()
    assert (
        main(["config", "check", "--config", str(config_path), "--mount", mount, *signature_args, "--json"])
        == 0
    )
    assert json.loads(capsys.readouterr().out) == {"ok": True, "served": {"tiny": [1]}, "findings": []}
