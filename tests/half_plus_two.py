"""TF Serving's own test model `half_plus_two`, rebuilt with TensorFlow in the test session.

TF Serving's model server tests drive `saved_model_half_plus_two_cpu/00000123`: a TF1 graph whose
variables a=0.5, b=2, c=3 (and a2=0.5, c2=3 for a second path) compute y = a*x + b from
serialized tf.Examples. This module writes a SavedModel with the same graph and the same signatures,
so the fixture `half_plus_two` (tests/conftest.py) gives every test package the model TF Serving's
answers were measured on:

- "serving_default" (predict): {"x": float[None, 1]} -> {"y": float[None, 1]}
- "regress_x_to_y", "regress_x_to_y2" (regress): serialized tf.Examples -> y, y2 = a*x + c
- "regress_x2_to_y3" (regress): the float tensor x2 (not examples) -> y3 = a2*x2 + c2
- "classify_x_to_y" (classify): serialized tf.Examples -> scores y (no classes output)

Example features: "x" (one float, required) and "x2" (one float, default 0).
"""

from __future__ import annotations

from pathlib import Path

VERSION = 123  # TF Serving's test data directory is 00000123


def build(export_dir: Path) -> None:
    """Write the half_plus_two SavedModel to `export_dir` (which must not exist)."""
    import tensorflow as tf

    v1 = tf.compat.v1
    utils = v1.saved_model.utils
    constants = v1.saved_model.signature_constants

    def signature(inputs: dict[str, tf.Tensor], outputs: dict[str, tf.Tensor], method: str) -> object:
        return v1.saved_model.signature_def_utils.build_signature_def(
            {key: utils.build_tensor_info(t) for key, t in inputs.items()},
            {key: utils.build_tensor_info(t) for key, t in outputs.items()},
            method,
        )

    with tf.Graph().as_default(), v1.Session() as session:
        a = v1.Variable(0.5, name="a")
        b = v1.Variable(2.0, name="b")
        c = v1.Variable(3.0, name="c")
        a2 = v1.Variable(0.5, name="a2")
        c2 = v1.Variable(3.0, name="c2")
        examples = v1.placeholder(tf.string, shape=[None], name="tf_example")
        features = v1.io.parse_example(
            examples,
            {
                "x": v1.io.FixedLenFeature([1], tf.float32),
                "x2": v1.io.FixedLenFeature([1], tf.float32, default_value=[0.0]),
            },
        )
        x = tf.identity(features["x"], name="x")
        x2 = tf.identity(features["x2"], name="x2")
        y = tf.identity(a * x + b, name="y")
        y2 = tf.identity(a * x + c, name="y2")
        y3 = tf.identity(a2 * x2 + c2, name="y3")

        regress, classify = constants.REGRESS_METHOD_NAME, constants.CLASSIFY_METHOD_NAME
        signatures = {
            "regress_x_to_y": signature({"inputs": examples}, {"outputs": y}, regress),
            "regress_x_to_y2": signature({"inputs": examples}, {"outputs": y2}, regress),
            "regress_x2_to_y3": signature({"inputs": x2}, {"outputs": y3}, regress),
            "classify_x_to_y": signature({"inputs": examples}, {"scores": y}, classify),
            constants.DEFAULT_SERVING_SIGNATURE_DEF_KEY: signature(
                {"x": x}, {"y": y}, constants.PREDICT_METHOD_NAME
            ),
        }
        session.run(v1.global_variables_initializer())
        builder = v1.saved_model.Builder(str(export_dir))
        builder.add_meta_graph_and_variables(
            session, [v1.saved_model.tag_constants.SERVING], signature_def_map=signatures
        )
        builder.save()


def build_tf2(export_dir: Path) -> None:
    """Write half_plus_two as a TF2 SavedModel (`tf.saved_model.save` of a `tf.Module`) to `export_dir`.

    TF Serving's `saved_model_half_plus_two_tf2_cpu` test model, which its model server tests classify,
    regress and multi-infer (`testClassifyTf2`, `testRegressTf2`, `testMultiInferenceTf2` in
    tensorflow_serving/model_servers/tensorflow_model_server_test.py): the same values and signature
    keys as `build`, but every signature's method_name is `tensorflow/serving/predict`, as TF2 writes
    them. So TF Serving classifies it only because `--enable_signature_method_name_check` is off by
    default.
    """
    import tensorflow as tf

    examples = tf.TensorSpec([None], tf.string)
    features = {
        "x": tf.io.FixedLenFeature([1], tf.float32),
        "x2": tf.io.FixedLenFeature([1], tf.float32, default_value=[0.0]),
    }

    class HalfPlusTwo(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = tf.Variable(0.5, name="a")
            self.b = tf.Variable(2.0, name="b")
            self.c = tf.Variable(3.0, name="c")

        def parse(self, serialized: tf.Tensor) -> dict[str, tf.Tensor]:
            return tf.io.parse_example(serialized, features)  # type: ignore[no-any-return]

        @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32)])
        def predict(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"y": self.a * x + self.b}

        @tf.function(input_signature=[examples])
        def classify_x_to_y(self, inputs: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"scores": self.a * self.parse(inputs)["x"] + self.b}

        @tf.function(input_signature=[examples])
        def regress_x_to_y(self, inputs: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"outputs": self.a * self.parse(inputs)["x"] + self.b}

        @tf.function(input_signature=[examples])
        def regress_x_to_y2(self, inputs: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"outputs": self.a * self.parse(inputs)["x"] + self.c}

    module = HalfPlusTwo()
    tf.saved_model.save(
        module,
        str(export_dir),
        signatures={
            "serving_default": module.predict,
            "classify_x_to_y": module.classify_x_to_y,
            "regress_x_to_y": module.regress_x_to_y,
            "regress_x_to_y2": module.regress_x_to_y2,
        },
    )
