"""keras.applications models (random weights): ResNet50 and a nested MobileNetV2, cut early,
in the middle and late. One export per model, shared by these tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

SessionRunner = Callable[[Path, str, dict[str, np.ndarray]], dict[str, np.ndarray]]

pytestmark = pytest.mark.slow


def test_resnet50_signatures(resnet50_export: Any) -> None:
    sigs = resnet50_export.signatures
    assert list(sigs) == ["serving_default", "conv2_block1_out", "conv3_block4_out", "conv5_block3_out"]
    assert sigs["conv2_block1_out"].outputs == {"conv2_block1_out": ((None, 16, 16, 256), "float32")}
    assert sigs["conv3_block4_out"].outputs == {"conv3_block4_out": ((None, 8, 8, 512), "float32")}
    assert sigs["conv5_block3_out"].outputs == {"conv5_block3_out": ((None, 2, 2, 2048), "float32")}
    assert sigs["serving_default"].outputs == {"predictions": ((None, 1000), "float32")}
    assert all(error <= 1e-5 for error in resnet50_export.max_errors.values())
    assert len(resnet50_export.max_errors) == 4


def test_resnet50_weights_stored_once(resnet50: Any, resnet50_export: Any) -> None:
    sizes = resnet50_export.sizes
    assert sizes.parameter_bytes == 4 * resnet50.count_params() == 102_546_848
    assert sizes.ratio <= 1.01


def test_resnet50_session_loader_matches_keras(
    resnet50: Any, resnet50_export: Any, run_in_session: SessionRunner
) -> None:
    import keras

    images = np.random.default_rng(1).uniform(-1, 1, size=(2, 64, 64, 3)).astype(np.float32)
    alias = next(iter(resnet50_export.signatures["conv3_block4_out"].inputs))
    got = run_in_session(resnet50_export.path, "conv3_block4_out", {alias: images})["conv3_block4_out"]
    sub = keras.Model(resnet50.inputs, resnet50.get_layer("conv3_block4_out").output)
    expected = np.asarray(sub([images], training=False))
    assert np.max(np.abs(got - expected)) <= 1e-5 * np.max(np.abs(expected))


def test_nested_mobilenet_signatures(mobilenet_export: Any) -> None:
    sigs = mobilenet_export.signatures
    assert list(sigs) == [
        "serving_default",
        "backbone/block_1_expand_relu",
        "backbone/block_6_expand_relu",
        "backbone/block_13_expand_relu",
        "gap",
    ]
    assert sigs["backbone/block_1_expand_relu"].outputs == {
        "backbone/block_1_expand_relu": ((None, 16, 16, 96), "float32")
    }
    assert sigs["backbone/block_6_expand_relu"].outputs == {
        "backbone/block_6_expand_relu": ((None, 4, 4, 192), "float32")
    }
    assert sigs["backbone/block_13_expand_relu"].outputs == {
        "backbone/block_13_expand_relu": ((None, 2, 2, 576), "float32")
    }
    assert sigs["gap"].outputs == {"gap": ((None, 1280), "float32")}
    for info in sigs.values():
        assert info.inputs == {"pixels": ((None, 32, 32, 3), "float32")}
    assert all(error <= 1e-5 for error in mobilenet_export.max_errors.values())
    assert mobilenet_export.sizes.ratio <= 1.01


def test_nested_mobilenet_includes_the_outer_prefix(
    mobilenet_nested: Any, mobilenet_export: Any, run_in_session: SessionRunner
) -> None:
    import keras

    pixels = np.random.default_rng(2).uniform(0, 255, size=(2, 32, 32, 3)).astype(np.float32)
    key = "backbone/block_6_expand_relu"
    got = run_in_session(mobilenet_export.path, key, {"pixels": pixels})[key]
    backbone = mobilenet_nested.get_layer("backbone")
    inner = keras.Model(backbone.inputs, backbone.get_layer("block_6_expand_relu").output)
    # the outer Rescaling runs first: the signature takes raw pixels
    expected = np.asarray(inner([pixels / 127.5 - 1.0], training=False))
    assert got.shape == (2, 4, 4, 192)
    np.testing.assert_allclose(got, expected, atol=1e-5 * max(1.0, float(np.max(np.abs(expected)))))


def test_inspect_resnet50_shares(resnet50: Any) -> None:
    from layertap.exporter import inspect_model

    rows = {row.spec: row for row in inspect_model(resnet50)}
    # a Functional model's layers list starts with its InputLayer, which has no output to export
    assert next(iter(rows.values())).spec == "conv1_pad"
    assert rows["conv1_pad"].index == 1
    assert rows["predictions"].share == 1.0
    assert rows["conv2_block1_out"].output_shape == ((None, 16, 16, 256),)
    assert (
        0
        < rows["conv2_block1_out"].share
        < rows["conv3_block4_out"].share
        < rows["conv5_block3_out"].share
        < 1
    )
    assert rows["conv1_conv"].parameters == 7 * 7 * 3 * 64 + 64
    # conv1_conv: 7x7x3x64 kernel over 32x32 positions, + one bias add per output
    assert rows["conv1_conv"].flops == 2 * 9408 * 1024 + 65536 + rows["conv1_pad"].flops


def test_mobilenet_v3_small_with_keras_ops_in_its_graph(tmp_path: Path) -> None:
    import keras

    from layertap.exporter import export

    # MobileNetV3 builds hard-swish from keras ops (not layers) inside its functional graph.
    model = keras.applications.MobileNetV3Small(weights=None, input_shape=(32, 32, 3))
    result = export(
        model, ["expanded_conv_2_project_bn", "activation_7", "logits"], base_path=tmp_path, name="v3"
    )
    assert result.signatures["expanded_conv_2_project_bn"].outputs == {
        "expanded_conv_2_project_bn": ((None, 4, 4, 24), "float32")
    }
    assert result.signatures["logits"].outputs == {"logits": ((None, 1, 1, 1000), "float32")}
    assert all(error <= 1e-5 for error in result.max_errors.values())
    assert result.sizes.ratio <= 1.01
