"""Models and exports of the exporter tests (built once per session; the tutorial CNN they train is
`trained_tutorial_cnn`, tests/fixtures/tutorial_cnn.py).

`run_in_session` is the tests' own, independent copy of what TF Serving does with a version: load
it with the TF1 session loader in a fresh graph and run a signature by its tensor names.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

SessionRunner = Callable[[Path, str, dict[str, np.ndarray]], dict[str, np.ndarray]]


def _run_in_session(path: Path, key: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    import tensorflow as tf

    with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(path))
        definition = meta_graph.signature_def[key]
        assert set(definition.inputs) == set(inputs), (sorted(definition.inputs), sorted(inputs))
        feeds = {definition.inputs[alias].name: array for alias, array in inputs.items()}
        fetches = {alias: tensor.name for alias, tensor in definition.outputs.items()}
        return dict(session.run(fetches, feed_dict=feeds))


@pytest.fixture(scope="session")
def run_in_session() -> SessionRunner:
    """Run one signature of a SavedModel the way TF Serving's C++ loader does."""
    return _run_in_session


@pytest.fixture(scope="session")
def digits() -> np.ndarray:
    """Eight generated 28x28x1 digits."""
    from layertap.demo.tutorial_cnn import synthetic_digits

    images, _ = synthetic_digits(8, seed=7)
    return images


@pytest.fixture(scope="session")
def cnn_bn() -> Any:
    """The tutorial CNN with BatchNormalization after conv_1, trained so its moving statistics moved."""
    from layertap.demo.tutorial_cnn import build_tutorial_cnn, train_briefly

    model = build_tutorial_cnn(batch_norm=True, seed=1)
    train_briefly(model, samples=512, epochs=1)
    return model


@pytest.fixture(scope="session")
def cnn_export(trained_tutorial_cnn: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The trained tutorial CNN's conv_1 by name, conv_2 by index 2, flatten by name, and a group, as
    version 1 of `mnist`."""
    from layertap.exporter import export

    base = tmp_path_factory.mktemp("cnn_repo")
    return export(
        trained_tutorial_cnn,
        ["conv_1", 2, "flatten"],
        base_path=base,
        name="mnist",
        groups={"early": ["conv_1", "pool_1"]},
    )


@pytest.fixture(scope="session")
def resnet50() -> Any:
    """ResNet50 with random weights at 64x64 (its minimum is 32x32), to keep it cheap on 2 cores."""
    import keras

    return keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3))


@pytest.fixture(scope="session")
def resnet50_export(resnet50: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """ResNet50 cut early, in the middle and late: one export shared by the ResNet50 tests."""
    from layertap.exporter import export

    base = tmp_path_factory.mktemp("resnet_repo")
    return export(
        resnet50,
        ["conv2_block1_out", "conv3_block4_out", "conv5_block3_out"],
        base_path=base,
        name="resnet50",
    )


@pytest.fixture(scope="session")
def mobilenet_nested() -> Any:
    """MobileNetV2 (random weights, 32x32, no top) nested as `backbone` inside a classifier."""
    import keras

    backbone = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), include_top=False)
    backbone.name = "backbone"
    inputs = keras.Input((32, 32, 3), name="pixels")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="rescale")(inputs)
    x = backbone(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(5, name="head")(x)
    return keras.Model(inputs, outputs, name="classifier")


@pytest.fixture(scope="session")
def mobilenet_export(mobilenet_nested: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Nested MobileNetV2 cut early, in the middle and late inside the backbone, and after it."""
    from layertap.exporter import export

    base = tmp_path_factory.mktemp("mobilenet_repo")
    return export(
        mobilenet_nested,
        [
            "backbone/block_1_expand_relu",
            "backbone/block_6_expand_relu",
            "backbone/block_13_expand_relu",
            "gap",
        ],
        base_path=base,
        name="mobilenet",
    )
