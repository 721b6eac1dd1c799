"""Model shapes beyond the CNN: Sequential without Input, dict inputs, branches, shared layers,
nested models, several outputs, Dropout, a Keras Hub backbone, and a failing verification."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from layertap.errors import UnsupportedModelError, VerificationError
from layertap.exporter import export
from tests.guarantees import import_or_skip

SessionRunner = Callable[[Path, str, dict[str, np.ndarray]], dict[str, np.ndarray]]


def test_sequential_without_input_needs_a_shape(run_in_session: SessionRunner, tmp_path: Path) -> None:
    import keras

    def build() -> Any:
        keras.utils.set_random_seed(3)
        return keras.Sequential(
            [keras.layers.Dense(6, activation="relu", name="h"), keras.layers.Dense(2, name="o")]
        )

    with pytest.raises(UnsupportedModelError, match=r"never built.*--input-shape"):
        export(build(), ["h"], base_path=tmp_path, name="seq")
    assert not (tmp_path / "seq").exists()  # nothing is written for a bad request
    model = build()
    result = export(model, ["h"], base_path=tmp_path, name="seq", input_shape=(5,))
    alias = next(iter(result.signatures["h"].inputs))
    assert result.signatures["h"].inputs[alias] == ((None, 5), "float32")
    x = np.arange(15, dtype=np.float32).reshape(3, 5) / 10
    got = run_in_session(result.path, "h", {alias: x})["h"]
    kernel, bias = (np.asarray(w) for w in model.get_layer("h").weights)
    np.testing.assert_allclose(got, np.maximum(x @ kernel + bias, 0), atol=1e-6)


def test_a_model_built_on_one_sample_serves_any_batch(run_in_session: SessionRunner, tmp_path: Path) -> None:
    """Calling a Sequential on one sample builds it with a batch of 1; the export must not keep that batch."""
    import keras

    keras.utils.set_random_seed(4)
    model = keras.Sequential(
        [keras.layers.Dense(6, activation="relu", name="h"), keras.layers.Dense(2, name="o")]
    )
    model(np.zeros((1, 5), np.float32))
    assert tuple(model.inputs[0].shape) == (1, 5)  # what Keras recorded
    result = export(model, ["h"], base_path=tmp_path, name="seq")
    alias = next(iter(result.signatures["h"].inputs))
    assert result.signatures["h"].inputs[alias] == ((None, 5), "float32")
    assert result.signatures["h"].outputs["h"] == ((None, 6), "float32")
    x = np.arange(15, dtype=np.float32).reshape(3, 5) / 10
    got = run_in_session(result.path, "h", {alias: x})["h"]
    np.testing.assert_allclose(got, np.asarray(model.get_layer("h")(x)), atol=1e-6)


def test_dict_inputs_branches_and_several_outputs(run_in_session: SessionRunner, tmp_path: Path) -> None:
    import keras

    keras.utils.set_random_seed(4)
    image = keras.Input((8, 8, 1), name="image")
    meta = keras.Input((3,), name="meta", dtype="float32")
    tokens = keras.Input((4,), name="tokens", dtype="int32")
    a = keras.layers.Conv2D(2, 3, name="conv")(image)
    a = keras.layers.GlobalAveragePooling2D(name="gap")(a)
    b = keras.layers.Dense(2, name="meta_dense")(meta)
    c = keras.layers.Embedding(5, 2, name="embed")(tokens)
    c = keras.layers.GlobalAveragePooling1D(name="tok_pool")(c)
    merged = keras.layers.Add(name="merge")([a, b, c])
    residual = keras.layers.Add(name="residual")([merged, keras.layers.Dense(2, name="skip")(merged)])
    model = keras.Model(
        {"image": image, "meta": meta, "tokens": tokens},
        {
            "score": keras.layers.Dense(1, name="score")(residual),
            "logits": keras.layers.Dense(3, name="logits")(residual),
        },
    )
    result = export(model, ["meta_dense", "embed", "residual"], base_path=tmp_path, name="multi")
    sigs = result.signatures
    # a branch signature asks only for the inputs it depends on; dtypes are kept
    assert sigs["meta_dense"].inputs == {"meta": ((None, 3), "float32")}
    assert sigs["embed"].inputs == {"tokens": ((None, 4), "int32")}
    assert sigs["embed"].outputs == {"embed": ((None, 4, 2), "float32")}
    assert set(sigs["residual"].inputs) == {"image", "meta", "tokens"}
    assert sigs["serving_default"].outputs == {
        "logits": ((None, 3), "float32"),
        "score": ((None, 1), "float32"),
    }

    rng = np.random.default_rng(0)
    feeds = {
        "image": rng.standard_normal((2, 8, 8, 1)).astype(np.float32),
        "meta": rng.standard_normal((2, 3)).astype(np.float32),
        "tokens": np.array([[0, 1, 4, 2], [3, 3, 0, 1]], dtype=np.int32),
    }
    got = run_in_session(result.path, "embed", {"tokens": feeds["tokens"]})["embed"]
    np.testing.assert_array_equal(got, np.asarray(model.get_layer("embed").embeddings)[feeds["tokens"]])
    full = run_in_session(result.path, "serving_default", feeds)
    expected = model(feeds, training=False)
    np.testing.assert_allclose(full["score"], np.asarray(expected["score"]), atol=1e-5)
    np.testing.assert_allclose(full["logits"], np.asarray(expected["logits"]), atol=1e-5)
    residual = run_in_session(result.path, "residual", feeds)["residual"]
    sub = keras.Model(model.inputs, model.get_layer("residual").output)
    np.testing.assert_allclose(residual, np.asarray(sub([feeds[t.name] for t in model.inputs])), atol=1e-5)


def test_shared_layer_calls_are_separate_signatures(run_in_session: SessionRunner, tmp_path: Path) -> None:
    import keras

    keras.utils.set_random_seed(5)
    x = keras.Input((3,), name="x")
    shared = keras.layers.Dense(3, name="shared", activation="tanh")
    model = keras.Model(x, keras.layers.Dense(1, name="out")(shared(shared(x))))
    result = export(model, ["shared@0", "shared@1"], base_path=tmp_path, name="shared")
    kernel, bias = (np.asarray(w) for w in shared.weights)
    value = np.array([[0.5, -1.0, 2.0]], dtype=np.float32)
    once = np.tanh(value @ kernel + bias)
    got0 = run_in_session(result.path, "shared@0", {"x": value})["shared@0"]
    got1 = run_in_session(result.path, "shared@1", {"x": value})["shared@1"]
    np.testing.assert_allclose(got0, once, atol=1e-6)
    np.testing.assert_allclose(got1, np.tanh(once @ kernel + bias), atol=1e-6)
    # the shared kernel is stored once
    assert result.sizes.parameter_bytes == 4 * (12 + 4)


def test_nested_model_composes_the_outer_prefix(run_in_session: SessionRunner, tmp_path: Path) -> None:
    import keras

    keras.utils.set_random_seed(6)
    inner_in = keras.Input((4,), name="inner_in")
    inner = keras.Model(
        inner_in,
        keras.layers.Dense(2, name="b")(keras.layers.Dense(3, name="a", activation="relu")(inner_in)),
        name="tower",
    )
    x = keras.Input((4,), name="x")
    prefix = keras.layers.Dense(4, name="pre")(x)
    model = keras.Model(x, keras.layers.Dense(1, name="top")(inner(prefix)))
    result = export(model, ["tower/a", "tower"], base_path=tmp_path, name="nested")
    assert result.signatures["tower/a"].outputs == {"tower/a": ((None, 3), "float32")}
    assert result.signatures["tower/a"].inputs == {"x": ((None, 4), "float32")}
    value = np.array([[1.0, 2.0, -1.0, 0.5]], dtype=np.float32)
    pre_k, pre_b = (np.asarray(w) for w in model.get_layer("pre").weights)
    a_k, a_b = (np.asarray(w) for w in inner.get_layer("a").weights)
    expected = np.maximum((value @ pre_k + pre_b) @ a_k + a_b, 0)
    np.testing.assert_allclose(
        run_in_session(result.path, "tower/a", {"x": value})["tower/a"], expected, atol=1e-5
    )


def test_dropout_is_off(run_in_session: SessionRunner, tmp_path: Path) -> None:
    import keras

    x = keras.Input((50,), name="x")
    model = keras.Model(x, keras.layers.Dropout(0.9, name="drop")(keras.layers.Identity(name="same")(x)))
    result = export(model, ["drop"], base_path=tmp_path, name="dropout")
    value = np.ones((4, 50), dtype=np.float32)
    np.testing.assert_array_equal(run_in_session(result.path, "drop", {"x": value})["drop"], value)


def test_failed_verification_publishes_nothing(tmp_path: Path) -> None:
    import keras

    x = keras.Input((4,), name="x")
    # A Python-side random number: tracing bakes one value into the graph, each eager call draws
    # another, so the saved signature cannot reproduce the in-memory model.
    rng = np.random.default_rng()
    noisy = keras.layers.Lambda(lambda t: t + float(rng.normal()), name="noisy")(x)
    model = keras.Model(x, noisy)
    with pytest.raises(
        VerificationError, match=r"signature '(serving_default|noisy)' output 'noisy' differs"
    ):
        export(model, ["noisy"], base_path=tmp_path, name="noisy")
    # Nothing is left behind: not even the model folder the failed export created (an empty model
    # folder would make TF Serving wait for a version forever).
    assert list(tmp_path.iterdir()) == []


def test_keras_hub_backbone(run_in_session: SessionRunner, tmp_path: Path) -> None:
    keras_hub = import_or_skip("keras_hub")
    import keras

    keras.utils.set_random_seed(8)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=50,
        num_layers=2,
        num_heads=2,
        hidden_dim=8,
        intermediate_dim=16,
        max_sequence_length=12,
    )
    result = export(
        backbone, ["embeddings_layer_norm", "transformer_layer_0"], base_path=tmp_path, name="bert"
    )
    assert result.signatures["embeddings_layer_norm"].inputs == {
        "segment_ids": ((None, None), "int32"),
        "token_ids": ((None, None), "int32"),
    }
    assert result.signatures["transformer_layer_0"].outputs == {
        "transformer_layer_0": ((None, None, 8), "float32")
    }
    assert set(result.signatures["serving_default"].outputs) == {"pooled_output", "sequence_output"}
    feeds = {
        "token_ids": np.array([[2, 7, 9, 0, 0]], dtype=np.int32),
        "segment_ids": np.array([[0, 0, 1, 0, 0]], dtype=np.int32),
        "padding_mask": np.array([[1, 1, 1, 0, 0]], dtype=np.int32),
    }
    got = run_in_session(result.path, "transformer_layer_0", feeds)["transformer_layer_0"]
    sub = keras.Model(backbone.inputs, backbone.get_layer("transformer_layer_0").output)
    expected = np.asarray(sub([feeds[t.name] for t in backbone.inputs], training=False))
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_state_outside_the_model_is_saved_too(run_in_session: SessionRunner, tmp_path: Path) -> None:
    import keras

    x = keras.Input((4,), name="x")
    # An unseeded keras.random call uses Keras' global seed generator, which is no model variable:
    # saving used to fail with "untracked resource". (Random ops at inference draw new numbers on
    # every call, so there is nothing deterministic to verify against.)
    noisy = keras.layers.Lambda(lambda t: t + keras.random.normal(keras.ops.shape(t)), name="noisy")(x)
    result = export(keras.Model(x, noisy), ["noisy"], base_path=tmp_path, name="seeded", verify=False)
    assert result.sizes.parameter_bytes == 0
    value = np.zeros((2, 4), dtype=np.float32)
    drawn = run_in_session(result.path, "noisy", {"x": value})["noisy"]
    assert drawn.shape == (2, 4)
    assert np.all(drawn != 0.0)


def test_layer_with_several_outputs(run_in_session: SessionRunner, tmp_path: Path) -> None:
    import keras

    keras.utils.set_random_seed(9)
    x = keras.Input((5, 3), name="sequence")
    sequence, hidden, cell = keras.layers.LSTM(4, return_sequences=True, return_state=True, name="lstm")(x)
    model = keras.Model(x, keras.layers.Dense(1, name="out")(hidden))
    result = export(model, ["lstm"], base_path=tmp_path, name="lstm")
    assert result.signatures["lstm"].outputs == {
        "lstm:0": ((None, 5, 4), "float32"),
        "lstm:1": ((None, 4), "float32"),
        "lstm:2": ((None, 4), "float32"),
    }
    value = np.linspace(-1, 1, 30, dtype=np.float32).reshape(2, 5, 3)
    got = run_in_session(result.path, "lstm", {"sequence": value})
    # the last step of the sequence output is the hidden state
    np.testing.assert_allclose(got["lstm:0"][:, -1], got["lstm:1"], atol=1e-6)
    expected = [np.asarray(t) for t in keras.Model(x, [sequence, hidden, cell])(value)]
    for index, want in enumerate(expected):
        np.testing.assert_allclose(got[f"lstm:{index}"], want, atol=1e-5)


def test_dtypes_are_kept_for_mixed_precision(run_in_session: SessionRunner, tmp_path: Path) -> None:
    import keras

    keras.utils.set_random_seed(10)
    x = keras.Input((3,), name="x")
    half = keras.layers.Dense(4, dtype="mixed_float16", name="half")(x)
    model = keras.Model(x, keras.layers.Dense(2, dtype="float32", name="out")(half))
    result = export(model, ["half"], base_path=tmp_path, name="mixed")
    assert result.signatures["half"].inputs == {"x": ((None, 3), "float32")}
    assert result.signatures["half"].outputs == {"half": ((None, 4), "float16")}
    assert result.signatures["serving_default"].outputs == {"out": ((None, 2), "float32")}
    got = run_in_session(result.path, "half", {"x": np.ones((1, 3), dtype=np.float32)})["half"]
    assert got.dtype == np.float16
    kernel, bias = (np.asarray(w, dtype=np.float32) for w in model.get_layer("half").weights)
    np.testing.assert_allclose(got.astype(np.float32), np.ones((1, 3)) @ kernel + bias, rtol=1e-2, atol=1e-2)


def test_inspect_nested_model_rows() -> None:
    import keras

    from layertap.exporter import inspect_model

    inner_in = keras.Input((4,), name="inner_in")
    inner = keras.Model(inner_in, keras.layers.Dense(3, name="a")(inner_in), name="tower")
    x = keras.Input((4,), name="x")
    model = keras.Model(x, keras.layers.Dense(1, name="top")(inner(keras.layers.Dense(4, name="pre")(x))))
    rows = inspect_model(model)
    assert [(row.index, row.spec, row.kind) for row in rows] == [
        (1, "pre", "Dense"),
        (2, "tower", "Functional"),
        (None, "tower/a", "Dense"),
        (3, "top", "Dense"),
    ]
    # pre: 2*16 + 4; tower/a: 2*12 + 3; top: 2*3 + 1
    assert [row.flops for row in rows] == [36, 63, 63, 70]
    assert [row.parameters for row in rows] == [20, 15, 15, 4]
    assert rows[2].output_shape == ((None, 3),)
    assert rows[-1].share == 1.0


def test_deep_nesting_sequential_and_a_model_called_twice(
    run_in_session: SessionRunner, tmp_path: Path
) -> None:
    import keras

    from layertap.errors import AmbiguousLayerError

    keras.utils.set_random_seed(11)
    deep_in = keras.Input((3,), name="deep_in")
    deep = keras.Model(deep_in, keras.layers.Dense(3, name="core", activation="relu")(deep_in), name="deep")
    seq = keras.Sequential([keras.Input((3,)), keras.layers.Dense(3, name="first"), deep], name="seq")
    tower_in = keras.Input((3,), name="tower_in")
    tower = keras.Model(tower_in, keras.layers.Dense(3, name="t", activation="tanh")(tower_in), name="tower")
    x = keras.Input((3,), name="x")
    model = keras.Model(x, tower(tower(seq(x))))

    with pytest.raises(AmbiguousLayerError, match="'tower' is called 2 times"):
        export(model, ["tower/t"], base_path=tmp_path, name="deep")
    result = export(model, ["seq/deep/core", "tower@0/t", "tower@1/t"], base_path=tmp_path, name="deep")
    assert list(result.signatures) == ["serving_default", "seq/deep/core", "tower@0/t", "tower@1/t"]

    value = np.array([[0.5, -1.0, 2.0], [1.0, 0.0, -0.5]], dtype=np.float32)

    def dense(name: str, owner: Any, inputs: np.ndarray) -> np.ndarray:
        kernel, bias = (np.asarray(w) for w in owner.get_layer(name).weights)
        return inputs @ kernel + bias

    core = np.maximum(dense("core", deep, dense("first", seq, value)), 0)
    once = np.tanh(dense("t", tower, core))
    twice = np.tanh(dense("t", tower, once))
    np.testing.assert_allclose(
        run_in_session(result.path, "seq/deep/core", {"x": value})["seq/deep/core"], core, atol=1e-5
    )
    np.testing.assert_allclose(
        run_in_session(result.path, "tower@0/t", {"x": value})["tower@0/t"], once, atol=1e-5
    )
    np.testing.assert_allclose(
        run_in_session(result.path, "tower@1/t", {"x": value})["tower@1/t"], twice, atol=1e-5
    )
