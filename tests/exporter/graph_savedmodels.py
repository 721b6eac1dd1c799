"""SavedModels with no Keras model behind them, built small for the exporter tests (no downloads).

- "tf1": a `SavedModelBuilder` graph (as Estimator exports are): placeholder -> matmul -> relu -> sum.
- "tf2": a TF Hub-style `tf.Module` saved with `tf.saved_model.save`, whose signature calls another
  `tf.function` (a nested call, inlined by the exporter), a second signature sharing its weights, and a
  third, `lookup`, reading a `StaticHashTable` (words -> ids -> rows of w2).
- "keras_export": a Keras 3 model's `model.export()` folder (every weight stored twice there, keras#23553).

`inner(kind, x)` is each model's inner tensor computed independently in numpy or Keras.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

#: the op of the inner tensor each test adds a signature for (its name is read from `layertap inspect`)
INNER_OP = "Relu"
#: the original signature and its output alias
#: the input alias of every signature
INPUT = {"tf1": "x", "tf2": "x", "keras_export": "features"}
ORIGINAL = {
    "tf1": ("serving_default", "y"),
    "tf2": ("serving_default", "y"),
    "keras_export": ("serve", "output_0"),
}

_W1 = np.arange(24, dtype=np.float32).reshape(4, 6) / 10.0 - 1.0
_W2 = np.arange(18, dtype=np.float32).reshape(6, 3) / 7.0 - 1.2
#: the tf2 module's table: word -> id (anything else -> -1)
WORDS = {"the": 0, "cat": 1, "sat": 4}


def build(kind: str, path: Path) -> Any:
    """Write the `kind` SavedModel to `path`; returns what `inner` needs (keras_export's Keras model)."""
    import tensorflow as tf

    if kind == "tf1":
        graph = tf.Graph()
        with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
            x = tf.compat.v1.placeholder(tf.float32, (None, 4), name="x")
            w1 = tf.compat.v1.get_variable("w1", initializer=_W1)
            hidden = tf.nn.relu(tf.matmul(x, w1), name="hidden")
            y = tf.reduce_sum(hidden, axis=1, name="y")
            session.run(tf.compat.v1.global_variables_initializer())
            builder = tf.compat.v1.saved_model.Builder(str(path))
            signature = tf.compat.v1.saved_model.predict_signature_def({"x": x}, {"y": y})
            signatures = {"serving_default": signature}
            builder.add_meta_graph_and_variables(session, ["serve"], signature_def_map=signatures)
            builder.save()
        return None
    if kind == "tf2":
        module = _module(tf)
        signatures = {
            "serving_default": module.__call__,
            "features": module.features,
            "lookup": module.lookup,
        }
        tf.saved_model.save(module, str(path), signatures=signatures)
        return None
    import keras

    keras.utils.set_random_seed(3)
    inputs = keras.Input((4,), name="features")
    hidden = keras.layers.Dense(6, activation="relu", name="hidden")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, name="logits")(hidden))
    model.export(str(path), verbose=False)
    return model


def _module(tf: Any) -> Any:
    class Embedder(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w1 = tf.Variable(_W1, name="w1")
            self.w2 = tf.Variable(_W2, name="w2")
            initializer = tf.lookup.KeyValueTensorInitializer(
                tf.constant(list(WORDS)), tf.constant(list(WORDS.values()), tf.int64)
            )
            self.table = tf.lookup.StaticHashTable(initializer, default_value=-1)

        @tf.function
        def encode(self, x: Any) -> Any:
            return tf.nn.relu(tf.matmul(x, self.w1), name="hidden")

        @tf.function(input_signature=[tf.TensorSpec((None, 4), tf.float32, name="x")])
        def __call__(self, x: Any) -> Any:
            return {"y": tf.matmul(self.encode(x), self.w2, name="logits")}

        @tf.function(input_signature=[tf.TensorSpec((None, 4), tf.float32, name="x")])
        def features(self, x: Any) -> Any:
            return {"features": self.encode(x)}

        @tf.function(input_signature=[tf.TensorSpec((None,), tf.string, name="words")])
        def lookup(self, words: Any) -> Any:
            ids = self.table.lookup(words)
            return {"ids": ids, "rows": tf.gather(self.w2, tf.maximum(ids, 0))}

    return Embedder()


def lookup(words: list[str]) -> dict[str, np.ndarray]:
    """The tf2 module's `lookup` signature computed in numpy."""
    ids = np.array([WORDS.get(word, -1) for word in words], dtype=np.int64)
    return {"ids": ids, "rows": _W2[np.maximum(ids, 0)]}


def inner(kind: str, built: Any, x: np.ndarray) -> np.ndarray:
    """The model's Relu output for input `x`, computed without the SavedModel."""
    if kind == "keras_export":
        import keras

        return np.asarray(keras.Model(built.inputs, built.get_layer("hidden").output)([x]))
    return np.maximum(x @ _W1, 0.0)
