"""Models, exports and servers for the extraction tests (built once per session, small on purpose).

`keras_features` is the reference every test compares against: the Keras model itself, truncated at
the asked layers and called eagerly, independent of the exporter and of the session loader.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pytest

from tests.fixtures.local_serving import serving

CNN_LAYERS = ["conv_2", "flatten"]
SENTENCES = ["the cat sat", "a dog ate the mat", "unknown words here", "", "the the the"]


def keras_features(model: Any, inputs: Any, layers: Sequence[str]) -> dict[str, np.ndarray]:
    """The Keras model's own outputs of `layers` for `inputs`."""
    import keras

    truncated = keras.Model(model.inputs, [model.get_layer(name).output for name in layers])
    values = truncated([inputs], training=False)
    values = values if isinstance(values, list | tuple) else [values]
    return {name: np.asarray(value) for name, value in zip(layers, values, strict=True)}


def column(table: Any, name: str, shape: Sequence[int]) -> np.ndarray:
    """A fixed-size list column as an array of `shape` per row."""
    flat = table.column(name).combine_chunks().flatten().to_numpy()
    return flat.reshape(len(table), *shape)


@pytest.fixture(scope="session")
def cnn_export(untrained_tutorial_cnn: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """conv_2 and flatten of the untrained tutorial CNN (tests/fixtures/tutorial_cnn.py) as version 1 of
    `digits` (tests compare with Keras themselves)."""
    from layertap.exporter import export

    base = tmp_path_factory.mktemp("extract_repo") / "digits"
    return export(
        untrained_tutorial_cnn, CNN_LAYERS, base_path=base.parent, name="digits", version=1, verify=False
    )


@pytest.fixture(scope="session")
def cnn_target(cnn_export: Any) -> Iterator[str]:
    """`layertap serve` on loopback serving the CNN export."""
    with serving(cnn_export) as target:
        yield target


@pytest.fixture(scope="session")
def digits() -> np.ndarray:
    """40 generated 28x28x1 digits in [0, 1] (not a multiple of the batch sizes used)."""
    from layertap.demo.tutorial_cnn import synthetic_digits

    images, _ = synthetic_digits(40, seed=5)
    return images


@pytest.fixture(scope="session")
def text_model() -> Any:
    """One string per example -> TextVectorization -> Embedding -> mean: `text_pool` (4 floats)."""
    import keras

    keras.utils.set_random_seed(2)
    text = keras.Input((), dtype="string", name="text")
    vectorize = keras.layers.TextVectorization(output_sequence_length=5, name="vectorize")
    vectorize.adapt(["the cat sat on the mat", "a dog ate my homework"])
    embedded = keras.layers.Embedding(vectorize.vocabulary_size(), 4, name="embedding")(vectorize(text))
    pooled = keras.layers.GlobalAveragePooling1D(name="text_pool")(embedded)
    return keras.Model(text, keras.layers.Dense(2, name="head")(pooled), name="sentences")


@pytest.fixture(scope="session")
def text_export(text_model: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from layertap.exporter import export

    base = tmp_path_factory.mktemp("extract_text_repo")
    return export(text_model, ["text_pool"], base_path=base, name="sentences", version=1, verify=False)
