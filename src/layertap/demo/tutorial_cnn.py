"""The tutorial CNN (28x28x1 digits -> 10 classes) and MNIST-like data generated on the spot.

Nothing can be downloaded here, so `synthetic_digits` draws ten fixed random stroke templates and
renders noisy, shifted copies of them: ten classes a small CNN learns in a few epochs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["INPUT_SHAPE", "NUM_CLASSES", "build_tutorial_cnn", "synthetic_digits", "train_briefly"]

INPUT_SHAPE = (28, 28, 1)
NUM_CLASSES = 10


def build_tutorial_cnn(named: bool = True, batch_norm: bool = False, seed: int = 0) -> Any:
    """Input(28, 28, 1) -> conv_1 -> pool_1 -> conv_2 -> pool_2 -> flatten -> output_layer.

    Args:
        named: give the layers the tutorial's names; False leaves Keras' automatic names.
        batch_norm: insert BatchNormalization "bn_1" after conv_1 (conv_1 then has no activation,
            and "relu_1" follows the normalisation), the variant whose conv output is exported
            before normalising.
        seed: seed of the weight initialisers.
    """
    import keras

    keras.utils.set_random_seed(seed)

    def name(text: str) -> str | None:
        return text if named else None

    # A Sequential with an Input, as in the tutorial: model.layers excludes the InputLayer, so
    # layers[2] is conv_2 (11, 11, 64) and layers[3] is pool_2 (5, 5, 64).
    layers: list[Any] = [keras.Input(INPUT_SHAPE, name=name("image"))]
    if batch_norm:
        layers += [
            keras.layers.Conv2D(32, 3, name=name("conv_1")),
            keras.layers.BatchNormalization(name=name("bn_1")),
            keras.layers.ReLU(name=name("relu_1")),
        ]
    else:
        layers.append(keras.layers.Conv2D(32, 3, activation="relu", name=name("conv_1")))
    layers += [
        keras.layers.MaxPooling2D(2, name=name("pool_1")),
        keras.layers.Conv2D(64, 3, activation="relu", name=name("conv_2")),
        keras.layers.MaxPooling2D(2, name=name("pool_2")),
        keras.layers.Flatten(name=name("flatten")),
        keras.layers.Dense(NUM_CLASSES, activation="softmax", name=name("output_layer")),
    ]
    return keras.Sequential(layers, name="tutorial_cnn" if named else None)


def synthetic_digits(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`n` MNIST-like images (float32 in [0, 1], shape (n, 28, 28, 1)) and their labels 0..9."""
    templates = _templates()
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, NUM_CLASSES, size=n)
    images = np.zeros((n, 28, 28), dtype=np.float32)
    shifts = rng.integers(-2, 3, size=(n, 2))
    for i, (label, (dy, dx)) in enumerate(zip(labels, shifts, strict=True)):
        images[i] = np.roll(templates[label], (int(dy), int(dx)), axis=(0, 1))
    images += rng.normal(0.0, 0.15, size=images.shape).astype(np.float32)
    return np.clip(images, 0.0, 1.0)[..., None], labels.astype(np.int64)


def _templates() -> np.ndarray:
    # Fixed seed: the classes are the same for every call, whatever `seed` the samples use.
    rng = np.random.default_rng(1234)
    templates = np.zeros((NUM_CLASSES, 28, 28), dtype=np.float32)
    for digit in range(NUM_CLASSES):
        for _ in range(3):  # three strokes per class
            y0, x0, y1, x1 = rng.integers(6, 22, size=4)
            for t in np.linspace(0.0, 1.0, 40):
                y, x = round(y0 + (y1 - y0) * t), round(x0 + (x1 - x0) * t)
                templates[digit, y - 1 : y + 2, x - 1 : x + 2] = 1.0
    return templates


def train_briefly(model: Any, samples: int = 2048, epochs: int = 2, seed: int = 0) -> float:
    """Fit `model` on `samples` synthetic digits; returns the accuracy on 512 fresh ones."""
    images, labels = synthetic_digits(samples, seed=seed)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(images, labels, batch_size=64, epochs=epochs, verbose=0)
    test_images, test_labels = synthetic_digits(512, seed=seed + 1)
    predictions = np.argmax(model.predict(test_images, verbose=0), axis=-1)
    return float(np.mean(predictions == test_labels))
