"""Run in the oldest supported environment (TensorFlow 2.16.1 and its Keras): export the tutorial CNN and a
keras.applications model with layertap (verification on), and save each model's Keras outputs on fixed
inputs so the test can compare what `layertap serve` in this environment answers.

argv: BASE_PATH OUT_DIR. Prints one JSON line: {"tensorflow", "keras", "protobuf", "exports": {...}}.
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from layertap.demo.tutorial_cnn import build_tutorial_cnn
from layertap.exporter import export

base, out = Path(sys.argv[1]), Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
models = {
    "cnn": (build_tutorial_cnn(), ["conv_2", "pool_2"], (28, 28, 1)),
    "mobilenet": (
        keras.applications.MobileNetV2(weights=None, input_shape=(64, 64, 3), alpha=0.35),
        ["block_3_expand_relu"],
        (64, 64, 3),
    ),
}
exports = {}
for name, (model, layers, shape) in models.items():
    result = export(model, layers, base_path=base, name=name)
    x = np.random.default_rng(1).random((2, *shape), dtype=np.float32)
    np.save(out / f"{name}_x.npy", x)
    for layer in layers:
        sub = keras.Model(model.inputs, model.get_layer(layer).output)
        np.save(out / f"{name}_{layer}.npy", np.asarray(sub(x, training=False)))
    exports[name] = {"version": result.version, "layers": layers, "max_errors": result.max_errors}
print(
    json.dumps(
        {
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "protobuf": importlib.metadata.version("protobuf"),
            "exports": exports,
        }
    )
)
