"""Keras 2 artifacts (tf_keras, built here from code and configs): a functional model with TF-op layers
as `.h5`, legacy SavedModel folder and tf_keras `.keras`; a Sequential; tf_keras' RegNet from its
config. Converted, exported from the CLI, loaded by the session loader, served, asked for with
`layertap.client` and the official stubs: equal to tf_keras running the same layers in-process.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from layertap.cli import EXIT_OK, EXIT_USAGE, main
from layertap.errors import UnsafeModelError, UsageError
from layertap.exporter.loading import load_model
from tests.fixtures.local_serving import serving

tf_keras = pytest.importorskip("tf_keras", reason="the keras2 extra (tf_keras) is not installed")

SessionRunner = Callable[[Path, str, dict[str, np.ndarray]], dict[str, np.ndarray]]
# Layers of the functional model: TF-op layers of every kind Keras 2 records (a constant operand, a
# tensor operand passed by keyword, a list argument, a slice) and ordinary layers around them.
OP_LAYERS = ["tf.nn.relu", "tf.__operators__.add_1", "tf.concat", "tf.__operators__.getitem", "out"]


def build_functional() -> Any:
    import tensorflow as tf

    inputs = tf_keras.Input((4,), name="x")
    hidden = tf_keras.layers.Dense(8, name="dense")(inputs)
    shifted = tf.nn.relu(hidden + 1.0)
    side = tf_keras.layers.Dense(8, name="side")(inputs)
    summed = shifted + side
    joined = tf.concat([summed, side], axis=1)
    sliced = joined[:, 2:10] * 2.0
    return tf_keras.Model(inputs, tf_keras.layers.Dense(3, name="out")(sliced), name="tfop")


def reference(model: Any, layers: list[str], x: np.ndarray) -> dict[str, np.ndarray]:
    """What tf_keras itself computes for each layer."""
    outputs = [model.get_layer(name).output for name in layers]
    values = tf_keras.Model(model.inputs, outputs)(x, training=False)
    values = values if isinstance(values, list) else [values]
    return {name: np.asarray(value) for name, value in zip(layers, values, strict=True)}


@pytest.fixture(scope="module")
def keras2_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("keras2")
    functional = build_functional()
    sequential = tf_keras.Sequential(
        [
            tf_keras.layers.Dense(5, activation="relu", input_shape=(6,), name="d1"),
            tf_keras.layers.Dense(2, name="d2"),
        ]
    )
    files = {
        "h5": folder / "tfop.h5",
        "savedmodel": folder / "tfop_savedmodel",
        "keras": folder / "tfop.keras",
        "sequential": folder / "sequential_savedmodel",
    }
    functional.save(files["h5"])
    functional.save(files["savedmodel"], save_format="tf")
    functional.save(files["keras"])
    sequential.save(files["sequential"], save_format="tf")
    return files


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return np.random.default_rng(3).normal(size=(5, 4)).astype(np.float32) * 3


@pytest.mark.parametrize("kind", ["h5", "savedmodel", "keras"])
def test_every_layer_converts_exactly_with_its_name(kind: str, keras2_files: dict[str, Path], x: Any) -> None:
    original = tf_keras.models.load_model(keras2_files[kind], compile=False)
    converted = load_model(keras2_files[kind])
    assert [layer.name for layer in converted.layers] == [layer.name for layer in original.layers]
    names = [layer.name for layer in original.layers[1:]]
    import keras

    values = keras.Model(converted.inputs, [converted.get_layer(n).output for n in names])(x)
    expected = reference(original, names, x)
    for name, value in zip(names, values, strict=True):
        np.testing.assert_array_equal(np.asarray(value), expected[name], err_msg=name)


def test_sequential_savedmodel_converts(keras2_files: dict[str, Path]) -> None:
    original = tf_keras.models.load_model(keras2_files["sequential"], compile=False)
    converted = load_model(keras2_files["sequential"])
    assert [layer.name for layer in converted.layers] == ["d1", "d2"]
    sample = np.arange(12, dtype=np.float32).reshape(2, 6) / 7
    np.testing.assert_array_equal(np.asarray(converted(sample)), np.asarray(original(sample)))


@pytest.fixture(scope="module")
def exported(keras2_files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The legacy SavedModel folder exported from the CLI (the .h5 file: see the next test)."""
    base = tmp_path_factory.mktemp("keras2_repo")
    layer_args = [arg for layer in OP_LAYERS for arg in ("--layer", layer)]
    argv = ["export", str(keras2_files["savedmodel"]), *layer_args, "--base-path", str(base), "--name", "k2"]
    assert main(argv) == EXIT_OK
    return base / "k2" / "1"


@pytest.fixture(scope="module")
def served(exported: Path) -> Iterator[str]:
    class Result:
        name = "k2"
        path = exported

    with serving(Result()) as target:
        yield target


def test_session_loader_equals_tf_keras(
    exported: Path, keras2_files: dict[str, Path], run_in_session: SessionRunner, x: Any
) -> None:
    from layertap.names import tensorflow_name

    expected = reference(tf_keras.models.load_model(keras2_files["savedmodel"], compile=False), OP_LAYERS, x)
    for layer in OP_LAYERS:
        key = tensorflow_name(layer)
        got = run_in_session(exported, key, {"x": x})
        np.testing.assert_array_equal(got[key], expected[layer], err_msg=layer)


def test_layertap_client_and_official_stubs_equal_tf_keras(
    served: str, keras2_files: dict[str, Path], x: Any
) -> None:
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from layertap.client import LayerClient

    expected = reference(tf_keras.models.load_model(keras2_files["h5"], compile=False), OP_LAYERS, x)
    with LayerClient(served, "k2") as client:
        client.wait_ready(timeout=60)
        outputs = client.predict(x, OP_LAYERS)
    with grpc.insecure_channel(served) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "k2"
        request.model_spec.signature_name = "tf.concat"
        request.inputs["x"].CopyFrom(tf.make_tensor_proto(x))
        official = tf.make_ndarray(stub.Predict(request, timeout=30).outputs["tf.concat"])
    for layer in OP_LAYERS:
        np.testing.assert_array_equal(outputs[layer], expected[layer], err_msg=layer)
    np.testing.assert_array_equal(official, expected["tf.concat"])


def test_h5_and_keras_files_export_from_the_cli(
    keras2_files: dict[str, Path], tmp_path: Path, run_in_session: SessionRunner, x: Any
) -> None:
    expected = reference(tf_keras.models.load_model(keras2_files["h5"], compile=False), ["tf.concat"], x)
    for kind in ("h5", "keras"):
        # --allow-unsafe changes nothing for TF-op layers (they load no Python code), and once was
        # answered with "a Lambda layer, pass --allow-unsafe" anyway.
        argv = ["export", str(keras2_files[kind]), "--layer", "tf.concat", "--allow-unsafe"]
        assert main([*argv, "--base-path", str(tmp_path), "--name", kind, "--no-verify"]) == EXIT_OK
        got = run_in_session(tmp_path / kind / "1", "tf.concat", {"x": x})
        np.testing.assert_array_equal(got["tf.concat"], expected["tf.concat"])


def test_sequential_savedmodel_exports_from_the_cli(
    keras2_files: dict[str, Path],
    tmp_path: Path,
    run_in_session: SessionRunner,
    capsys: pytest.CaptureFixture[str],
) -> None:
    original = tf_keras.models.load_model(keras2_files["sequential"], compile=False)
    argv = ["export", str(keras2_files["sequential"]), "--layer", "d1", "--layer", "d2", "--json"]
    assert main([*argv, "--base-path", str(tmp_path), "--name", "seq"]) == EXIT_OK
    signatures = json.loads(capsys.readouterr().out)["signatures"]
    (alias,) = signatures["d1"]["inputs"]
    sample = np.linspace(-2, 2, 18, dtype=np.float32).reshape(3, 6)
    expected = reference(original, ["d1", "d2"], sample)
    for layer in ("d1", "d2"):
        got = run_in_session(tmp_path / "seq" / "1", layer, {alias: sample})[layer]
        np.testing.assert_array_equal(got, expected[layer], err_msg=layer)


def test_messages_name_the_cause(
    keras2_files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without tf_keras, a Keras 2 file says what it is and which extra reads it.
    monkeypatch.setitem(sys.modules, "tf_keras", None)
    for kind, what in (("keras", "a .keras file written by Keras 2"), ("savedmodel", "a Keras 2 SavedModel")):
        with pytest.raises(UsageError, match=f"is {what}.*pip install 'layertap\\[keras2\\]'"):
            load_model(keras2_files[kind])
    monkeypatch.undo()
    # A TF-op layer calling a function that reaches outside the tensors is refused by name.
    unsafe = tmp_path / "unsafe.h5"
    unsafe.write_bytes(keras2_files["h5"].read_bytes())
    with h5py.File(unsafe, "r+") as handle:
        config = json.loads(handle.attrs["model_config"])
        first_op = next(layer for layer in config["config"]["layers"] if layer["class_name"] == "TFOpLambda")
        first_op["config"]["function"] = "io.write_file"
        handle.attrs["model_config"] = json.dumps(config)
    with pytest.raises(UnsafeModelError, match=r"calls tf\.io\.write_file.*--allow-unsafe"):
        load_model(unsafe)
    # A SavedModel folder without keras_metadata.pb is not a Keras 2 model: refused as before.
    (tmp_path / "plain" / "1").mkdir(parents=True)
    (tmp_path / "plain" / "1" / "saved_model.pb").write_bytes(b"")
    assert main(["inspect", str(tmp_path / "plain" / "1")]) == EXIT_USAGE


@pytest.mark.slow
def test_tf_keras_regnet_from_config_exports_exactly(tmp_path: Path, run_in_session: SessionRunner) -> None:
    # tf_keras' own application, randomly initialised (weights=None): TF-op layers in every block.
    regnet = tf_keras.applications.RegNetX002(weights=None, input_shape=(32, 32, 3), classes=10)
    ops = [layer.name for layer in regnet.layers if type(layer).__name__ == "TFOpLambda"]
    assert ops, "RegNet has no TF-op layers any more: pick another tf_keras application"
    path = tmp_path / "regnet.h5"
    regnet.save(path)
    layers = [ops[0], ops[1]]
    argv = ["export", str(path), *[a for layer in layers for a in ("--layer", layer)]]
    assert main([*argv, "--base-path", str(tmp_path / "repo"), "--name", "regnet"]) == EXIT_OK
    images = np.random.default_rng(5).uniform(0, 255, size=(2, 32, 32, 3)).astype(np.float32)
    expected = reference(regnet, layers, images)
    from layertap.names import tensorflow_name

    for layer in layers:
        key = tensorflow_name(layer)
        got = run_in_session(tmp_path / "repo" / "regnet" / "1", key, {"input_1": images})
        np.testing.assert_allclose(got[key], expected[layer], rtol=1e-5, atol=1e-5, err_msg=layer)


def build_nested() -> Any:
    """More TF ops (list arguments, reductions, casts, comparisons) and a nested Keras 2 model, whose
    calls Keras 2 numbers from 1 in the config."""
    import tensorflow as tf

    inputs = tf_keras.Input((6,), name="x")
    grid = tf.reshape(tf_keras.layers.Dense(8, name="dense")(inputs), [-1, 2, 4])
    mean = tf.reduce_mean(grid, axis=1)
    gated = tf.cast(mean > 0.0, tf.float32) * mean
    stacked = tf.stack([tf.maximum(gated, mean), mean], axis=1)
    inner_input = tf_keras.Input((2, 4))
    inner = tf_keras.Model(
        inner_input, tf_keras.layers.Dense(3, name="inner_dense")(inner_input), name="inner"
    )
    return tf_keras.Model(inputs, tf_keras.layers.Flatten(name="flat")(inner(stacked)), name="nested")


@pytest.mark.parametrize("kind", ["h5", "savedmodel"])
def test_nested_keras2_models_convert_exactly(kind: str, tmp_path: Path, x: Any) -> None:
    original = build_nested()
    path = tmp_path / ("nested.h5" if kind == "h5" else "nested_savedmodel")
    original.save(path, **({} if kind == "h5" else {"save_format": "tf"}))
    converted = load_model(path)
    assert [layer.name for layer in converted.layers] == [layer.name for layer in original.layers]
    sample = np.concatenate([x, x[:, :2]], axis=1)
    np.testing.assert_array_equal(np.asarray(converted(sample)), np.asarray(original(sample)))
