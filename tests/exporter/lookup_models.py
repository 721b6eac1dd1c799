"""A small model with every kind of text and lookup preprocessing, built for the exporter tests."""

from __future__ import annotations

from typing import Any

import numpy as np

CORPUS = [
    "the cat sat on the mat",
    "the dog ate my homework",
    "a cat and a dog",
    "serving layers on tensorflow",
]
TOKENS = ["cat", "dog", "mat", "homework", "layer"]
IDS = [10, 20, 30, 40]
#: The layer signatures the tests export.
TEXT_LAYERS = [
    "vectorize",
    "text_embedding",
    "bigrams",
    "lookup",
    "token_embedding",
    "hashing",
    "int_lookup",
    "normalize",
    "discretize",
]


def build_text_model() -> Any:
    """Four inputs: sentences, token sequences, integer ids, numbers; one preprocessing layer of each kind."""
    import keras

    keras.utils.set_random_seed(11)
    layers = keras.layers
    text = keras.Input((), dtype="string", name="text")
    tokens = keras.Input((None,), dtype="string", name="tokens")
    ids = keras.Input((), dtype="int64", name="ids")
    numbers = keras.Input((3,), name="numbers")

    vectorize = layers.TextVectorization(output_mode="int", output_sequence_length=6, name="vectorize")
    vectorize.adapt(CORPUS)
    bigrams = layers.TextVectorization(output_mode="multi_hot", ngrams=2, max_tokens=40, name="bigrams")
    bigrams.adapt(CORPUS)
    normalize = layers.Normalization(name="normalize")
    discretize = layers.Discretization(num_bins=4, output_mode="one_hot", name="discretize")
    samples = np.random.default_rng(0).normal(size=(64, 3)).astype("float32") * 3 + 1
    normalize.adapt(samples)
    discretize.adapt(samples)

    embedded_text = layers.Embedding(vectorize.vocabulary_size(), 4, name="text_embedding")(vectorize(text))
    token_ids = layers.StringLookup(vocabulary=TOKENS, name="lookup")(tokens)
    embedded_tokens = layers.Embedding(len(TOKENS) + 1, 4, name="token_embedding")(token_ids)
    hashed = layers.Hashing(num_bins=8, output_mode="multi_hot", name="hashing")(tokens)
    int_ids = layers.IntegerLookup(vocabulary=IDS, output_mode="one_hot", name="int_lookup")(ids)
    features = layers.Concatenate(name="features")(
        [
            layers.GlobalAveragePooling1D(name="text_pool")(embedded_text),
            bigrams(text),
            layers.GlobalAveragePooling1D(name="token_pool")(embedded_tokens),
            hashed,
            int_ids,
            normalize(numbers),
            layers.Flatten(name="bins")(discretize(numbers)),
        ]
    )
    scores = layers.Dense(2, name="head")(features)
    return keras.Model([text, tokens, ids, numbers], scores, name="text_model")


def text_inputs() -> dict[str, np.ndarray]:
    """A batch of 3 with known and unknown words, ids and numbers."""
    return {
        "text": np.array(["the cat sat", "a dog ate the mat", "unknown words here"], dtype=object),
        "tokens": np.array(
            [["cat", "dog", "mat", "x"], ["layer", "layer", "cat", "y"], ["z", "homework", "q", "cat"]],
            dtype=object,
        ),
        "ids": np.array([10, 40, 99], dtype=np.int64),
        "numbers": np.array([[0.0, 1.0, 2.0], [-3.0, 4.0, 9.0], [1.0, 1.0, 1.0]], dtype=np.float32),
    }
