"""Every layer at once: `--all-layers` / `--layers-matching`, each signature exact through the session
loader, and each computing only its own prefix when served."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from layertap.cli import EXIT_OK, EXIT_USAGE, main
from layertap.errors import LayerNotFoundError, UsageError
from layertap.exporter import export
from layertap.exporter.specs import every_spec
from tests.fixtures.local_serving import serving

# The residual net's layers, as `layertap inspect` lists them (the InputLayer left out).
RESIDUAL_SPECS = [
    "stem", "stem_bn", "stem_relu",
    "b0_conv", "b0_bn", "b0_relu", "b0_add",
    "b1_conv", "b1_bn", "b1_relu", "b1_add",
    "b2_conv", "b2_bn", "b2_relu", "b2_add",
    "gap", "logits",
]  # fmt: skip


def _randomize(model: Any, seed: int) -> None:
    """Random weights everywhere, positive variances: inference-mode BatchNorm is not the identity."""
    rng = np.random.default_rng(seed)
    model.set_weights([np.abs(rng.normal(size=w.shape)).astype(w.dtype) + 0.1 for w in model.get_weights()])


@pytest.fixture(scope="module")
def residual() -> Any:
    """A small residual CNN: convolutions, BatchNorm, skip connections, pooling, a dense head."""
    import keras

    inputs = keras.Input((8, 8, 3), name="pixels")
    h = keras.layers.Conv2D(4, 3, padding="same", name="stem")(inputs)
    h = keras.layers.BatchNormalization(name="stem_bn")(h)
    h = keras.layers.ReLU(name="stem_relu")(h)
    for block in range(3):
        y = keras.layers.Conv2D(4, 3, padding="same", name=f"b{block}_conv")(h)
        y = keras.layers.BatchNormalization(name=f"b{block}_bn")(y)
        y = keras.layers.ReLU(name=f"b{block}_relu")(y)
        h = keras.layers.Add(name=f"b{block}_add")([h, y])
    h = keras.layers.GlobalAveragePooling2D(name="gap")(h)
    model = keras.Model(inputs, keras.layers.Dense(3, name="logits")(h), name="residual")
    _randomize(model, seed=3)
    return model


@pytest.fixture(scope="module")
def residual_all(residual: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return export(residual, all_layers=True, base_path=tmp_path_factory.mktemp("all"), name="residual")


def _run_all(path: Path, keys: list[str], x: np.ndarray) -> dict[str, np.ndarray]:
    """Signatures of a version run through the TF1 session loader (TF Serving's path): key -> output."""
    import tensorflow as tf

    results = {}
    with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(path))
        assert set(keys) <= set(meta_graph.signature_def)
        for key in keys:
            definition = meta_graph.signature_def[key]
            (alias,) = definition.outputs
            feeds = {definition.inputs["pixels"].name: x}
            results[key] = session.run(definition.outputs[alias].name, feed_dict=feeds)
    return results


def _keras_outputs(residual: Any, x: np.ndarray) -> dict[str, np.ndarray]:
    """What Keras computes for each of RESIDUAL_SPECS on `x`: the reference every export is held to."""
    import keras

    reference = keras.Model(residual.inputs, [residual.get_layer(s).output for s in RESIDUAL_SPECS])
    return {
        key: np.asarray(value)
        for key, value in zip(RESIDUAL_SPECS, reference(x, training=False), strict=True)
    }


def _served(result: Any, x: np.ndarray) -> dict[str, np.ndarray]:
    """What `layertap serve`, serving the export `result`, answers the client for RESIDUAL_SPECS on `x`."""
    from layertap.client import LayerClient

    with serving(result) as target, LayerClient(target, "residual") as client:
        client.wait_ready(timeout=60)
        return dict(client.predict(x, RESIDUAL_SPECS))


def test_every_spec_lists_each_layer_output_once(residual: Any) -> None:
    assert every_spec(residual) == RESIDUAL_SPECS


def test_all_layers_exports_one_exact_signature_per_layer(residual: Any, residual_all: Any) -> None:
    assert list(residual_all.signatures) == ["serving_default", *RESIDUAL_SPECS]
    x = np.random.default_rng(0).normal(size=(4, 8, 8, 3)).astype(np.float32)
    expected = _keras_outputs(residual, x)
    served = _run_all(residual_all.path, RESIDUAL_SPECS, x)
    for key in RESIDUAL_SPECS:
        np.testing.assert_allclose(served[key], expected[key], rtol=1e-5, atol=1e-5)
    assert set(residual_all.max_errors) == {"serving_default", *RESIDUAL_SPECS}
    assert max(residual_all.max_errors.values()) <= 1e-5


def _ops_run(path: Path, key: str, x: np.ndarray) -> list[tuple[str, str]]:
    """(op, node name) of every node the session runs for signature `key`, after its optimisations."""
    import tensorflow as tf

    with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(path))
        definition = meta_graph.signature_def[key]
        metadata = tf.compat.v1.RunMetadata()
        session.run(
            [tensor.name for tensor in definition.outputs.values()],
            feed_dict={definition.inputs["pixels"].name: x},
            options=tf.compat.v1.RunOptions(output_partition_graphs=True),
            run_metadata=metadata,
        )
    return [(node.op, node.name) for part in metadata.partition_graphs for node in part.node]


def test_a_shallow_signature_runs_only_its_ancestors(residual_all: Any) -> None:
    """What the session runs for a shallow signature (after inlining and pruning): its layers only."""
    x = np.zeros((2, 8, 8, 3), np.float32)
    ran = _ops_run(residual_all.path, "b0_relu", x)
    convolutions = [name for op, name in ran if "Conv2D" in op]
    assert len(convolutions) == 2, convolutions  # stem and b0_conv, nothing later
    # Ops are named by the scope of the layer that made them: `.../stem_bn_1/batchnorm/mul`.
    parts = {re.sub(r"_\d+$", "", part) for _, name in ran for part in name.split("/")}
    assert [layer for layer in RESIDUAL_SPECS if layer in parts] == [
        "stem", "stem_bn", "stem_relu", "b0_conv", "b0_bn", "b0_relu",
    ]  # fmt: skip
    assert not [op for op, _ in ran if "PartitionedCall" in op]  # inlined, so pruned
    everything = _ops_run(residual_all.path, "logits", x)
    assert len([op for op, _ in everything if "Conv2D" in op]) == 4
    assert len([op for op, _ in everything if "MatMul" in op]) == 1


def test_layers_matching_selects_by_regex(residual: Any, tmp_path: Path) -> None:
    result = export(residual, ["gap"], layers_matching=r"_(relu|add)$", base_path=tmp_path, name="m")
    assert list(result.signatures) == [
        "serving_default", "gap",
        "stem_relu", "b0_relu", "b0_add", "b1_relu", "b1_add", "b2_relu", "b2_add",
    ]  # fmt: skip


def test_layers_matching_nothing_names_the_paths(residual: Any, tmp_path: Path) -> None:
    with pytest.raises(
        LayerNotFoundError,
        match=re.escape("'^conv' (--layers-matching) matches none of the model's 17 layer paths"),
    ):
        export(residual, layers_matching="^conv", base_path=tmp_path, name="m")
    assert not (tmp_path / "m").exists() or not any((tmp_path / "m").iterdir())


def test_bad_regex_is_refused_before_loading(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(
        UsageError, match=re.escape("'conv(' (--layers-matching) is not a regular expression: missing )")
    ):
        export(tmp_path / "absent.keras", layers_matching="conv(", base_path=tmp_path, name="m")
    code = main(["export", str(tmp_path / "absent.keras"), "--layers-matching", "conv(",
                 "--base-path", str(tmp_path), "--name", "m"])  # fmt: skip
    assert code == EXIT_USAGE
    assert "is not a regular expression" in capsys.readouterr().err


def test_cli_all_layers(residual: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "residual.keras"
    residual.save(path)
    code = main(["export", str(path), "--all-layers", "--base-path", str(tmp_path), "--name", "r", "--json"])
    assert code == EXIT_OK
    result = json.loads(capsys.readouterr().out)
    assert list(result["signatures"]) == ["serving_default", *RESIDUAL_SPECS]
    assert result["signatures"]["b1_add"]["outputs"] == {
        "b1_add": {"shape": [None, 8, 8, 4], "dtype": "float32"}
    }
    assert result["verification"]["verified"] is True


def test_layer_signatures_share_segments_traced_once(residual_all: Any) -> None:
    """The 17 layer signatures are built on shared segments (`layertap.exporter.chain`): the stored
    graphs hold 15 convolutions (serving_default's 4, each segment's, and the few a signature applies
    itself inside its segment), where a Keras sub-model traced per signature stores 51 (each signature
    its whole prefix)."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel.FromString((residual_all.path / "saved_model.pb").read_bytes())
    library = saved.meta_graphs[0].graph_def.library.function
    assert sum(node.op == "Conv2D" for function in library for node in function.node_def) == 15


def test_every_layer_is_exact_through_layertap_serve(residual: Any, residual_all: Any) -> None:
    x = np.random.default_rng(5).normal(size=(2, 8, 8, 3)).astype(np.float32)
    expected = _keras_outputs(residual, x)
    served = _served(residual_all, x)
    assert list(served) == RESIDUAL_SPECS
    for key in RESIDUAL_SPECS:
        np.testing.assert_allclose(served[key], expected[key], rtol=1e-5, atol=1e-6)


def test_masked_and_two_input_models_keep_one_sub_model_per_signature() -> None:
    """The segments cannot carry Keras masks, nor leave out an input a signature does not need."""
    import keras

    from layertap.exporter.chain import chain_functions
    from layertap.exporter.specs import resolve
    from layertap.exporter.truncate import plan_signatures

    tokens = keras.Input((5,), dtype="int32", name="tokens")
    h = keras.layers.Embedding(10, 4, mask_zero=True, name="embed")(tokens)
    h = keras.layers.Dense(4, name="d1")(h)
    h = keras.layers.Dense(4, name="d2")(h)
    h = keras.layers.Dense(4, name="d3")(h)
    masked = keras.Model(tokens, keras.layers.GlobalAveragePooling1D(name="pool")(h))
    left, right = keras.Input((3,), name="left"), keras.Input((3,), name="right")
    a = keras.layers.Dense(2, name="a1")(left)
    a = keras.layers.Dense(2, name="a2")(a)
    b = keras.layers.Dense(2, name="b1")(right)
    b = keras.layers.Dense(2, name="b2")(b)
    two = keras.Model([left, right], keras.layers.Concatenate(name="both")([a, b]))
    for model in (masked, two):
        specs = [layer.name for layer in model.layers if type(layer).__name__ != "InputLayer"]
        signatures = plan_signatures(model, [resolve(model, spec) for spec in specs], {})
        assert len(signatures) == 6
        assert chain_functions(model, signatures, progress=lambda _: None) == {}


def test_a_sequential_built_on_one_sample_chains_with_a_free_batch(tmp_path: Path) -> None:
    """Segments keep the batch free, as signatures do, when Keras recorded a batch of 1."""
    import keras

    keras.utils.set_random_seed(6)
    model = keras.Sequential([keras.layers.Dense(3, activation="relu", name=f"d{i}") for i in range(5)])
    model(np.zeros((1, 4), np.float32))
    result = export(model, all_layers=True, base_path=tmp_path, name="seq")
    assert list(result.signatures) == ["serving_default", "d0", "d1", "d2", "d3", "d4"]
    assert result.signatures["d2"].outputs == {"d2": ((None, 3), "float32")}
    assert max(result.max_errors.values()) <= 1e-5  # verified on a batch of 3


def _ops_run_with_calls(path: Path, key: str, x: np.ndarray) -> tuple[list[str], list[str], int]:
    """(ops, node names) the session runs for signature `key`, the bodies of the functions it
    keeps as calls included (as saved: the session may prune a call's unused outputs further), and
    the number of such calls."""
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(path))
        definition = meta_graph.signature_def[key]
        metadata = tf.compat.v1.RunMetadata()
        session.run(
            [tensor.name for tensor in definition.outputs.values()],
            feed_dict={definition.inputs["pixels"].name: x},
            options=tf.compat.v1.RunOptions(output_partition_graphs=True),
            run_metadata=metadata,
        )
    saved = saved_model_pb2.SavedModel.FromString((path / "saved_model.pb").read_bytes())
    library = {
        function.signature.name: function for function in saved.meta_graphs[0].graph_def.library.function
    }
    pending = [node for part in metadata.partition_graphs for node in part.node]
    ran, calls = [], 0
    while pending:
        node = pending.pop()
        ran.append(node)
        if "PartitionedCall" in node.op:
            calls += 1
            # Grappler renames a call it prunes: `<function>_specialized_for_<caller>_at_<graph>`.
            pending.extend(library[node.attr["f"].func.name.split("_specialized_for_")[0]].node_def)
    return [node.op for node in ran], [node.name for node in ran], calls


@pytest.fixture(scope="module")
def residual_calls(residual: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The residual net exported as a deep chain (segments kept as calls, weights packed), forced
    from 4 layer calls on instead of NOINLINE_FROM."""
    from layertap.exporter import chain

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(chain, "NOINLINE_FROM", 4)
        return export(residual, all_layers=True, base_path=tmp_path_factory.mktemp("calls"), name="residual")


def test_deep_chains_keep_segments_as_calls_that_run_only_earlier_layers(
    residual: Any, residual_calls: Any
) -> None:
    """From NOINLINE_FROM layer calls on, a signature calls the segments before its own as
    functions the session does not inline (so it optimises each segment once, not every prefix
    again): here forced on the 17-call residual net. Still exact, and a served signature runs
    its own segment's ancestors and the earlier segments, never a later layer."""
    from tensorflow.core.protobuf import saved_model_pb2

    result = residual_calls
    saved = saved_model_pb2.SavedModel.FromString((result.path / "saved_model.pb").read_bytes())
    library = saved.meta_graphs[0].graph_def.library.function
    # 17 calls in segments of 4: the first four segments are called by later signatures.
    assert sum(function.attr["_noinline"].b for function in library) == 4
    x = np.random.default_rng(1).normal(size=(2, 8, 8, 3)).astype(np.float32)
    expected = _keras_outputs(residual, x)
    served = _run_all(result.path, RESIDUAL_SPECS, x)
    for key in RESIDUAL_SPECS:
        np.testing.assert_allclose(served[key], expected[key], rtol=1e-5, atol=1e-5)
    assert max(result.max_errors.values()) <= 1e-5
    # b1_relu (call 9) calls segments 0 and 1 (stem .. b1_conv), then applies b1_bn, b1_relu.
    ops, names, calls = _ops_run_with_calls(result.path, "b1_relu", x)
    assert calls == 2  # segments 0 and 1
    assert len([op for op in ops if "Conv2D" in op]) == 3, ops  # stem, b0_conv, b1_conv
    parts = {re.sub(r"_\d+$", "", part) for name in names for part in name.split("/")}
    assert [layer for layer in RESIDUAL_SPECS if layer in parts] == RESIDUAL_SPECS[:10]


def test_deep_chains_read_the_weights_packed_in_one_variable(residual: Any, residual_calls: Any) -> None:
    """A deep chain's functions read the float weights as slices of one flat variable
    (`layertap.exporter.packing`), so each captures one variable, not every weight of its prefix;
    the checkpoint holds that variable alone, TF Serving's ops read it, and every signature is
    still exactly Keras' (through the session loader, and through `layertap serve` after its
    warmup)."""
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    from layertap.config.compat import check_compat

    stored = tf.train.list_variables(str(residual_calls.path / "variables" / "variables"))
    shapes = [shape for name, shape in stored if name != "_CHECKPOINTABLE_OBJECT_GRAPH"]
    # 2,540 parameter bytes (635 floats), each weight rounded up to 16 floats (64 bytes).
    assert shapes == [[896]]
    saved = saved_model_pb2.SavedModel.FromString((residual_calls.path / "saved_model.pb").read_bytes())
    library = saved.meta_graphs[0].graph_def.library.function
    resources = [
        sum(argument.type == tf.resource.as_datatype_enum for argument in function.signature.input_arg)
        for function in library
    ]
    assert max(resources) == 1 and len(library) > 18  # serving_default, 17 signatures, their segments
    assert check_compat(residual_calls.path).compatible
    assert residual_calls.max_errors == dict.fromkeys(["serving_default", *RESIDUAL_SPECS], 0.0)
    x = np.random.default_rng(7).normal(size=(3, 8, 8, 3)).astype(np.float32)
    expected = _keras_outputs(residual, x)
    served = _served(residual_calls, x)
    for key in RESIDUAL_SPECS:
        np.testing.assert_array_equal(served[key], expected[key])


def test_a_layer_assigning_a_weight_while_serving_is_refused_when_packed(tmp_path: Path) -> None:
    """Packed weights are read in a stateless scope, which would drop a layer's assignment: refused,
    naming the variable, and nothing is published."""
    import keras

    from layertap.errors import ExportError
    from layertap.exporter import chain

    class Counting(keras.layers.Layer):
        def build(self, input_shape: Any) -> None:
            self.seen = self.add_weight(shape=(), initializer="zeros", trainable=False, name="seen")

        def call(self, inputs: Any) -> Any:
            self.seen.assign(self.seen + 1.0)
            return inputs * 2.0

    model = keras.Sequential(
        [keras.Input((3,)), *(keras.layers.Dense(3, name=f"d{i}") for i in range(4)), Counting(name="count")],
        name="counting",
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(chain, "NOINLINE_FROM", 4)
        with pytest.raises(
            ExportError, match=re.escape("the layer owning 'counting/count/seen' assigns it during inference")
        ):
            export(model, all_layers=True, base_path=tmp_path, name="m")
    assert not (tmp_path / "m").exists() or not any((tmp_path / "m").iterdir())
