"""Keras 2 files Keras 3's reader refused or could not rebuild, each a class of model (found by exporting
many tf_keras models): recurrent layers (their config's `time_major`), Lambda layers calling `tf`
(Keras 2's globals), and a subclassed tf_keras model's SavedModel folder (no layer graph: the graph
route). Exported from the CLI, run through the session loader and `layertap serve`: equal to tf_keras.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from layertap.cli import EXIT_OK, EXIT_USAGE, main
from tests.fixtures.local_serving import serving

tf_keras = pytest.importorskip("tf_keras", reason="the keras2 extra (tf_keras) is not installed")
# A global, as in a user's training script: Keras 2 saved the Lambda's code, which names `tf`.
tf = pytest.importorskip("tensorflow")

SessionRunner = Callable[[Path, str, dict[str, np.ndarray]], dict[str, np.ndarray]]
# Token ids padded with 0 (masked): the LSTM must skip the padding as tf_keras does.
IDS = np.array([[3, 4, 5, 0, 0, 0], [1, 2, 3, 4, 5, 6], [9, 0, 0, 0, 0, 0]], dtype=np.int32)
LAYERS = ["lstm", "scaled", "out"]


def _export(argv: list[str]) -> dict[str, Any]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main([*argv, "--json"]) == EXIT_OK
    return dict(json.loads(out.getvalue()))


@pytest.fixture(scope="module")
def recurrent(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A masked Embedding + LSTM + a Lambda calling tf, saved as .h5; tf_keras' values for LAYERS."""
    tf_keras.utils.set_random_seed(2)
    ids = tf_keras.Input((6,), dtype="int32", name="ids")
    embedded = tf_keras.layers.Embedding(12, 4, mask_zero=True, name="embedding")(ids)
    states = tf_keras.layers.LSTM(5, return_sequences=True, name="lstm")(embedded)
    # `tf` is not defined where Keras 3 runs a Lambda's code; Keras 2 gave it to every Lambda.
    scaled = tf_keras.layers.Lambda(lambda t: t * tf.reduce_max(t, axis=-1, keepdims=True), name="scaled")
    pooled = tf_keras.layers.GRU(3, name="gru")(scaled(states))
    model = tf_keras.Model(ids, tf_keras.layers.Dense(2, name="out")(pooled))
    path = tmp_path_factory.mktemp("keras2_rnn") / "rnn.h5"
    model.save(path)
    outputs = tf_keras.Model(ids, [model.get_layer(name).output for name in LAYERS])(IDS)
    return SimpleNamespace(path=path, want={n: np.asarray(v) for n, v in zip(LAYERS, outputs, strict=True)})


def test_recurrent_and_lambda_layers_export_equal_to_tf_keras(
    recurrent: SimpleNamespace, tmp_path: Path, run_in_session: SessionRunner
) -> None:
    argv = ["export", str(recurrent.path), "--allow-unsafe", "--base-path", str(tmp_path), "--name", "rnn"]
    result = _export([*argv, *[arg for layer in LAYERS for arg in ("--layer", layer)]])
    assert result["verification"]["max_errors"] == dict.fromkeys(result["signatures"], 0.0)
    for layer in LAYERS:
        got = run_in_session(Path(result["path"]), layer, {"ids": IDS})[layer]
        np.testing.assert_allclose(got, recurrent.want[layer], rtol=1e-6, atol=1e-6, err_msg=layer)
    from layertap.client import LayerClient

    with (
        serving(SimpleNamespace(name="rnn", path=Path(result["path"]))) as target,
        LayerClient(target, "rnn") as client,
    ):
        client.wait_ready(timeout=60)
        got = client.predict({"ids": IDS}, ["scaled"])["scaled"]
    np.testing.assert_allclose(got, recurrent.want["scaled"], rtol=1e-6, atol=1e-6)


def test_the_lambda_still_needs_allow_unsafe(
    recurrent: SimpleNamespace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["export", str(recurrent.path), "--layer", "lstm", "--base-path", str(tmp_path), "--name", "rnn"]
    assert main(argv) == EXIT_USAGE
    assert "contains a Lambda layer" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_a_subclassed_keras2_folder_takes_the_graph_route(
    tmp_path: Path, run_in_session: SessionRunner, capsys: pytest.CaptureFixture[str]
) -> None:
    class Scorer(tf_keras.Model):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(name="scorer")
            self.hidden = tf_keras.layers.Dense(4, name="hidden")
            self.score = tf_keras.layers.Dense(1, name="score")

        def call(self, x: Any) -> Any:
            return self.score(tf.nn.relu(self.hidden(x)))

    tf_keras.utils.set_random_seed(4)
    model = Scorer()
    x = np.random.default_rng(1).normal(size=(3, 5)).astype(np.float32)
    model(x)
    model.save(tmp_path / "scorer", save_format="tf")
    assert main(["inspect", str(tmp_path / "scorer"), "--json"]) == EXIT_OK
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["scorer/Relu"]["op"] == "Relu"
    argv = ["export", str(tmp_path / "scorer"), "--layer", "scorer/Relu", "--base-path", str(tmp_path)]
    result = _export([*argv, "--name", "scorer"])
    (alias,) = result["signatures"]["scorer/Relu"]["inputs"]
    got = run_in_session(Path(result["path"]), "scorer/Relu", {alias: x})["scorer/Relu"]
    np.testing.assert_allclose(got, np.maximum(np.asarray(model.hidden(x)), 0.0), rtol=1e-6, atol=1e-6)


def test_keras2_convolution_and_normalization_configs_load_exactly(tmp_path: Path) -> None:
    from layertap.exporter.loading import load_model

    tf_keras.utils.set_random_seed(6)
    images = tf_keras.Input((8, 8, 3), name="images")
    features = tf_keras.layers.DepthwiseConv2D(3, padding="same", name="depthwise")(images)
    features = tf_keras.layers.SeparableConv2D(4, 3, name="separable")(features)  # Xception's
    features = tf_keras.layers.Conv2DTranspose(3, 3, strides=2, name="transposed")(features)
    # MobileNetV3's: a list axis, and a name with '/', which Keras 3 refuses.
    features = tf_keras.layers.BatchNormalization(axis=[3], name="block/norm")(features)
    model = tf_keras.Model(images, tf_keras.layers.Conv2D(2, 1, name="pointwise")(features))
    model.save(tmp_path / "depthwise.h5")  # configs Keras 3 refuses as they are
    x = np.random.default_rng(2).normal(size=(2, 8, 8, 3)).astype(np.float32)
    converted = load_model(tmp_path / "depthwise.h5")
    np.testing.assert_allclose(np.asarray(converted(x)), np.asarray(model(x)), rtol=1e-6, atol=1e-6)
    assert [layer.name for layer in converted.layers][-2:] == ["block_norm", "pointwise"]


def test_keras2_attention_layers_load_exactly(tmp_path: Path) -> None:
    """A Keras 2 Transformer's layers: MultiHeadAttention with its value passed by keyword (a tensor in
    the node's kwargs) and its build shapes in the config, and Attention(score_mode="dot"), whose "dot"
    Keras 3's reader would turn into keras.layers.dot."""
    from layertap.exporter.loading import load_model

    tf_keras.utils.set_random_seed(7)
    query = tf_keras.Input((3, 4), name="query")
    context = tf_keras.Input((5, 4), name="context")
    attended = tf_keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, name="mha")(query, value=context)
    scored = tf_keras.layers.Attention(score_mode="dot", name="attn")([attended, context])
    model = tf_keras.Model([query, context], tf_keras.layers.LayerNormalization(name="ln")(scored + query))
    model.save(tmp_path / "attention.h5")
    rng = np.random.default_rng(3)
    x = [rng.normal(size=(2, 3, 4)).astype(np.float32), rng.normal(size=(2, 5, 4)).astype(np.float32)]
    converted = load_model(tmp_path / "attention.h5")
    assert converted.get_layer("attn").score_mode == "dot"
    for name in ("mha", "attn", "ln"):
        want = tf_keras.Model(model.inputs, model.get_layer(name).output)(x)
        got = keras_model_output(converted, name)(x)
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-6, atol=1e-6, err_msg=name)


def keras_model_output(model: Any, name: str) -> Any:
    import keras

    return keras.Model(model.inputs, model.get_layer(name).output)


def test_keras2_hard_sigmoid_keeps_its_keras2_definition(tmp_path: Path) -> None:
    """Keras 2's hard_sigmoid is clip(0.2 x + 0.5), Keras 3's relu6(x + 3) / 6: ConvLSTM2D's default
    recurrent activation, and any layer naming it, must compute Keras 2's (Keras 3's differs by ~0.1)."""
    from layertap.exporter.loading import load_model

    tf_keras.utils.set_random_seed(8)
    frames = tf_keras.Input((3, 5, 5, 1), name="frames")
    states = tf_keras.layers.ConvLSTM2D(2, 3, name="convlstm")(frames)  # recurrent_activation="hard_sigmoid"
    flat = tf_keras.layers.Flatten(name="flat")(states)
    gated = tf_keras.layers.Dense(4, activation="hard_sigmoid", name="gated")(flat)
    model = tf_keras.Model(frames, gated)
    model.save(tmp_path / "convlstm.h5")
    x = np.random.default_rng(5).normal(scale=3.0, size=(2, 3, 5, 5, 1)).astype(np.float32)
    converted = load_model(tmp_path / "convlstm.h5")
    for name in ("convlstm", "gated"):
        want = tf_keras.Model(model.inputs, model.get_layer(name).output)(x)
        got = keras_model_output(converted, name)(x)
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-6, atol=1e-6, err_msg=name)


def test_a_keras2_folder_with_a_vocabulary_layer_takes_the_graph_route(
    tmp_path: Path, run_in_session: SessionRunner
) -> None:
    """TextVectorization's vocabulary is a lookup table, which the .h5 the conversion goes through cannot
    hold (it was an internal error from tf_keras): the folder's graph is exported, its table rebuilt."""
    tf_keras.utils.set_random_seed(9)
    vectorize = tf_keras.layers.TextVectorization(max_tokens=8, output_sequence_length=4, name="tv")
    vectorize.adapt(["the cat sat", "a dog", "the mat"])
    text = tf_keras.Input((1,), dtype="string", name="text")
    pooled = tf_keras.layers.GlobalAveragePooling1D(name="gap")(
        tf_keras.layers.Embedding(8, 3)(vectorize(text))
    )
    model = tf_keras.Model(text, tf_keras.layers.Dense(2, name="out")(pooled), name="texts")
    model.save(tmp_path / "texts", save_format="tf")
    argv = ["export", str(tmp_path / "texts"), "--layer", "texts/gap/Mean", "--base-path", str(tmp_path)]
    result = _export([*argv, "--name", "texts"])
    sentences = np.array([[b"the cat sat"], [b"a dog unknown"]], dtype=object)
    got = run_in_session(Path(result["path"]), "texts/gap/Mean", {"text": sentences})["texts/gap/Mean"]
    want = tf_keras.Model(text, pooled)(tf.constant(sentences))
    np.testing.assert_allclose(got, np.asarray(want), rtol=1e-6, atol=1e-6)
