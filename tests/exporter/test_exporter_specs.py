"""Layer specs: names, indices, nested paths, shared calls, and the errors for everything else."""

from __future__ import annotations

from typing import Any

import pytest

from layertap.errors import AmbiguousLayerError, LayerNotFoundError, UnsupportedModelError, UsageError
from layertap.exporter.specs import all_paths, resolve


@pytest.fixture(scope="module")
def shared_model() -> Any:
    import keras

    inputs = keras.Input((4,), name="x")
    shared = keras.layers.Dense(4, name="shared")
    hidden = shared(inputs)
    twice = shared(hidden)
    outputs = keras.layers.Dense(2, name="out")(twice)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def nested_model() -> Any:
    import keras

    inner_in = keras.Input((4,), name="inner_x")
    inner = keras.Model(inner_in, keras.layers.Dense(3, name="dense_a")(inner_in), name="tower")
    inputs = keras.Input((4,), name="x")
    outputs = keras.layers.Dense(1, name="top")(inner(inputs))
    return keras.Model(inputs, outputs)


def test_name_and_index_resolve_to_the_same_layer(trained_tutorial_cnn: Any) -> None:
    by_name = resolve(trained_tutorial_cnn, "conv_2")
    by_index = resolve(trained_tutorial_cnn, 2)
    by_text_index = resolve(trained_tutorial_cnn, "2")
    assert by_name.layer is by_index.layer is by_text_index.layer is trained_tutorial_cnn.get_layer("conv_2")
    assert by_name.key == by_index.key == "conv_2"


def test_keras3_index_semantics_sequential_excludes_the_input_layer(trained_tutorial_cnn: Any) -> None:
    # The tutorial's layers[3] is NOT the 64-filter conv in Keras 3: it is pool_2.
    assert resolve(trained_tutorial_cnn, 3).key == "pool_2"
    assert resolve(trained_tutorial_cnn, 0).key == "conv_1"
    assert resolve(trained_tutorial_cnn, -1).key == "output_layer"


def test_functional_index_includes_the_input_layer(shared_model: Any) -> None:
    with pytest.raises(LayerNotFoundError, match="InputLayer 'x'"):
        resolve(shared_model, 0)
    assert resolve(shared_model, 2).key == "out"


def test_unknown_name_lists_layers_and_nearest_before_anything_happens(trained_tutorial_cnn: Any) -> None:
    with pytest.raises(LayerNotFoundError) as caught:
        resolve(trained_tutorial_cnn, "conv2")
    message = str(caught.value)
    assert "no layer named 'conv2'" in message
    assert "Nearest: conv_2, conv_1" in message
    assert "0:conv_1, 1:pool_1, 2:conv_2, 3:pool_2, 4:flatten, 5:output_layer" in message
    assert isinstance(caught.value, UsageError)


def test_index_out_of_range(trained_tutorial_cnn: Any) -> None:
    with pytest.raises(LayerNotFoundError, match=r"layer index 6 is out of range: the model has 6 layers"):
        resolve(trained_tutorial_cnn, 6)


def test_nested_path(nested_model: Any) -> None:
    ref = resolve(nested_model, "tower/dense_a")
    assert ref.key == "tower/dense_a"
    assert ref.layer.name == "dense_a"
    assert [layer.name for layer, _ in ref.steps] == ["tower", "dense_a"]
    assert all_paths(nested_model) == ["x", "tower", "tower/inner_x", "tower/dense_a", "top"]


def test_nested_unknown_suggests_full_paths(nested_model: Any) -> None:
    with pytest.raises(
        LayerNotFoundError,
        match=r"nested model 'tower' has no layer named 'dense_b'\. Nearest: tower/dense_a",
    ):
        resolve(nested_model, "tower/dense_b")


def test_path_into_a_plain_layer_is_refused(nested_model: Any) -> None:
    with pytest.raises(UnsupportedModelError, match="nested model 'top'"):
        resolve(nested_model, "top/kernel")


def test_shared_layer_needs_a_call_choice(shared_model: Any) -> None:
    with pytest.raises(AmbiguousLayerError) as caught:
        resolve(shared_model, "shared")
    assert "called 2 times" in str(caught.value)
    assert "shared@0 -> (None, 4), shared@1 -> (None, 4)" in str(caught.value)
    first, second = resolve(shared_model, "shared@0"), resolve(shared_model, "shared@1")
    assert (first.key, second.key) == ("shared@0", "shared@1")
    assert first.steps[0][1] is not second.steps[0][1]
    with pytest.raises(LayerNotFoundError, match=r"use @0\.\.@1"):
        resolve(shared_model, "shared@2")


def test_malformed_spec(trained_tutorial_cnn: Any) -> None:
    with pytest.raises(LayerNotFoundError, match="malformed"):
        resolve(trained_tutorial_cnn, "conv_1@x")


def test_subclassed_model_is_refused_with_what_to_do() -> None:
    import keras

    class Net(keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.hidden = keras.layers.Dense(3, name="hidden")
            self.out = keras.layers.Dense(1, name="out")

        def call(self, inputs: Any) -> Any:
            return self.out(self.hidden(inputs))

    net = Net()
    net(keras.ops.zeros((1, 4)))
    with pytest.raises(UnsupportedModelError) as caught:
        resolve(net, "hidden")
    message = str(caught.value)
    assert "Net" in message and "subclassed" in message
    assert "Functional API" in message and "keras.Sequential" in message
