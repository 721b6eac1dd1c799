"""Keras 2 files naming layer classes only tf_keras has (`layertap.exporter.keras2_foreign`): one model holds
the three kinds (ConvNeXt's unregistered `LayerScale`, the built-in `LocallyConnected2D` Keras 3 dropped, a
user's layer registered with tf_keras and given with --custom-objects), saved as `.h5` and as a legacy
SavedModel folder. Exported from the CLI, run by the session loader, served by `layertap serve`, asked with
`layertap.client` and the official stubs: equal to tf_keras.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import h5py
import numpy as np
import pytest

from tests.cli_process import cli_command
from tests.fixtures.local_serving import serving

tf_keras = pytest.importorskip("tf_keras", reason="the keras2 extra (tf_keras) is not installed")

SessionRunner = Callable[[Path, str, dict[str, np.ndarray]], dict[str, np.ndarray]]
LAYERS = ["scale", "local", "shift"]
SHIFT = """
import tf_keras


@tf_keras.saving.register_keras_serializable(package="Demo")
class Shift(tf_keras.layers.Layer):
    def build(self, input_shape):
        self.offset = self.add_weight(name="offset", shape=(input_shape[-1],), initializer="ones")

    def call(self, x):
        return x + self.offset
"""


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """The model as `.h5` and folder, the --custom-objects file, inputs, and tf_keras's values for LAYERS."""
    import importlib

    from layertap.exporter.loading import import_custom_objects

    folder = tmp_path_factory.mktemp("keras2_foreign")
    (folder / "shift.py").write_text(SHIFT, encoding="utf-8")
    import_custom_objects([folder / "shift.py"])
    # ConvNeXt's helper, as tf_keras.applications.ConvNeXtTiny saves it (its module exports no such name).
    layer_scale = importlib.import_module("tf_keras.src.applications.convnext").LayerScale
    tf_keras.utils.set_random_seed(8)
    images = tf_keras.Input((8, 8, 3), name="images")
    x = tf_keras.layers.Conv2D(4, 3, name="conv")(images)
    x = layer_scale(0.5, 4, name="scale")(x)
    x = tf_keras.layers.LocallyConnected2D(2, 3, name="local")(x)
    x = tf_keras.saving.get_registered_object("Demo>Shift")(name="shift")(x)
    model = tf_keras.Model(images, tf_keras.layers.Dense(3, name="out")(tf_keras.layers.Flatten()(x)))
    rng = np.random.default_rng(3)
    model.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in model.get_weights()])
    model.save(folder / "foreign.h5")
    model.save(folder / "foreign_savedmodel", save_format="tf")
    x_in = rng.normal(size=(2, 8, 8, 3)).astype(np.float32)
    values = tf_keras.Model(images, [model.get_layer(name).output for name in LAYERS])(x_in)
    return SimpleNamespace(
        folder=folder,
        custom=folder / "shift.py",
        x=x_in,
        want={name: np.asarray(value) for name, value in zip(LAYERS, values, strict=True)},
    )


def _export(foreign: SimpleNamespace, artifact: str, layers: list[str], base: Path) -> dict[str, Any]:
    argv = cli_command("export", str(foreign.folder / artifact), "--custom-objects", str(foreign.custom))
    argv += [*[arg for layer in layers for arg in ("--layer", layer)], "--base-path", str(base)]
    done = subprocess.run([*argv, "--name", "foreign", "--json"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return dict(json.loads(done.stdout))


def test_an_h5_file_exports_served_equal_to_tf_keras(
    foreign: SimpleNamespace, tmp_path: Path, run_in_session: SessionRunner
) -> None:
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from layertap.client import LayerClient

    result = _export(foreign, "foreign.h5", LAYERS, tmp_path)
    assert result["verification"]["verified"] and set(result["signatures"]) == {"serving_default", *LAYERS}
    assert max(result["verification"]["max_errors"].values()) <= 1e-6
    for layer in LAYERS:
        got = run_in_session(Path(result["path"]), layer, {"images": foreign.x})[layer]
        np.testing.assert_allclose(got, foreign.want[layer], rtol=1e-6, atol=1e-6, err_msg=layer)
    with serving(SimpleNamespace(name="foreign", path=Path(result["path"]))) as target:
        with LayerClient(target, "foreign") as client:
            client.wait_ready(timeout=60)
            got = client.predict({"images": foreign.x}, ["scale", "local"])
        with grpc.insecure_channel(target) as channel:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "foreign"
            request.model_spec.signature_name = "shift"
            request.inputs["images"].CopyFrom(tf.make_tensor_proto(foreign.x))
            reply = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
    for layer in ("scale", "local"):
        np.testing.assert_allclose(got[layer], foreign.want[layer], rtol=1e-6, atol=1e-6, err_msg=layer)
    np.testing.assert_allclose(
        tf.make_ndarray(reply.outputs["shift"]), foreign.want["shift"], rtol=1e-6, atol=1e-6
    )


def test_a_savedmodel_folder_exports_equal_to_tf_keras(
    foreign: SimpleNamespace, tmp_path: Path, run_in_session: SessionRunner
) -> None:
    result = _export(foreign, "foreign_savedmodel", ["scale"], tmp_path)
    got = run_in_session(Path(result["path"]), "scale", {"images": foreign.x})["scale"]
    np.testing.assert_allclose(got, foreign.want["scale"], rtol=1e-6, atol=1e-6)


def test_inspect_names_the_tf_keras_classes(
    foreign: SimpleNamespace, capsys: pytest.CaptureFixture[str]
) -> None:
    from layertap.cli import EXIT_OK, main

    argv = ["inspect", str(foreign.folder / "foreign.h5"), "--custom-objects", str(foreign.custom), "--json"]
    assert main(argv) == EXIT_OK
    kinds = {row["spec"]: row["kind"] for row in json.loads(capsys.readouterr().out)}
    assert [kinds[name] for name in LAYERS] == ["LayerScale", "LocallyConnected2D", "Shift"]


def test_a_class_nobody_has_is_refused_with_the_fix(foreign: SimpleNamespace, tmp_path: Path) -> None:
    from layertap.errors import UnsupportedModelError
    from layertap.exporter.loading import load_model

    target = tmp_path / "missing.h5"
    target.write_bytes((foreign.folder / "foreign.h5").read_bytes())
    with h5py.File(target, "r+") as handle:
        raw = handle.attrs["model_config"]
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        handle.attrs["model_config"] = text.replace("Demo>Shift", "Demo>Gone")
    with pytest.raises(UnsupportedModelError) as raised:
        load_model(target)
    message = str(raised.value)
    assert "needs the layer class 'Demo>Gone', which neither Keras 3 nor tf_keras" in message
    assert "--custom-objects MODULE_OR_FILE.py" in message
