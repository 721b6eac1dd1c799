"""SavedModels without Keras (TF1 builder graph, TF2 tf.Module, Keras 3 `model.export()`): `layertap inspect`
lists their inner tensors, `layertap export DIR --layer TENSOR` adds a signature per tensor; the result loads
through the session loader, serves on `layertap serve` (asked with `layertap.client` and the official stubs)
and equals the original's values, with the original signatures kept and the weights stored once.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from layertap.cli import EXIT_OK, EXIT_USAGE, main
from tests.exporter.graph_savedmodels import INNER_OP, INPUT, ORIGINAL, build, inner, lookup
from tests.fixtures.local_serving import serving

X = np.linspace(-2.0, 2.0, 20, dtype=np.float32).reshape(5, 4)


def _cli(argv: list[str]) -> tuple[int, Any]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(argv)
    return code, json.loads(out.getvalue()) if out.getvalue().strip() else None


@pytest.fixture(scope="module", params=["tf1", "tf2", "keras_export"])
def source(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    kind = str(request.param)
    path = tmp_path_factory.mktemp(kind) / "saved"
    built = build(kind, path)
    code, rows = _cli(["inspect", str(path), "--json"])
    assert code == EXIT_OK
    (tensor,) = [row for row in rows if row["op"] == INNER_OP]
    return SimpleNamespace(kind=kind, path=path, built=built, rows=rows, tensor=tensor)


@pytest.fixture(scope="module")
def exported(source: SimpleNamespace, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp(f"{source.kind}_repo")
    argv = ["export", str(source.path), "--layer", source.tensor["name"], "--base-path", str(base)]
    code, result = _cli([*argv, "--name", "graph", "--json"])
    assert code == EXIT_OK
    return dict(result)


@pytest.fixture(scope="module")
def served(exported: dict[str, Any]) -> Iterator[str]:
    with serving(SimpleNamespace(name="graph", path=Path(exported["path"]))) as target:
        yield target


def _session_run(path: Path, key: str, x: np.ndarray) -> dict[str, np.ndarray]:
    import tensorflow as tf

    with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
        definition = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(path)).signature_def[key]
        (alias,) = definition.inputs
        fetches = {name: info.name for name, info in definition.outputs.items()}
        return dict(session.run(fetches, {definition.inputs[alias].name: x}))


def test_inspect_names_the_inner_tensors(source: SimpleNamespace) -> None:
    assert source.tensor["shape"] == [None, 6] and source.tensor["dtype"] == "float32"
    if source.kind != "keras_export":  # Keras' op names carry the model's auto-generated name
        assert source.tensor["name"] == "hidden"
    assert all(row["op"] not in ("Const", "ReadVariableOp", "Placeholder") for row in source.rows)


def test_export_adds_a_signature_and_keeps_the_others(
    source: SimpleNamespace, exported: dict[str, Any]
) -> None:
    key = source.tensor["name"]
    original, alias = ORIGINAL[source.kind]
    assert {original, key} <= set(exported["signatures"])
    assert exported["signatures"][key]["outputs"] == {key: {"shape": [None, 6], "dtype": "float32"}}
    assert exported["verification"]["max_errors"] == dict.fromkeys(exported["signatures"], 0.0)
    # Every original signature answers as before, exactly, through the session loader.
    assert np.array_equal(
        _session_run(Path(exported["path"]), original, X)[alias],
        _session_run(source.path, original, X)[alias],
    )


def test_the_new_signature_equals_the_inner_tensor(source: SimpleNamespace, exported: dict[str, Any]) -> None:
    key = source.tensor["name"]
    got = _session_run(Path(exported["path"]), key, X)[key]
    np.testing.assert_allclose(got, inner(source.kind, source.built, X), rtol=1e-6, atol=1e-6)


def test_weights_are_stored_once(source: SimpleNamespace, exported: dict[str, Any]) -> None:
    import tensorflow as tf

    written = Path(exported["path"]) / "variables"
    if source.kind == "tf1":  # the original graph with a SignatureDef more: the files are the same bytes
        for item in (source.path / "variables").iterdir():
            assert (written / item.name).read_bytes() == item.read_bytes()
        return
    stored = [
        int(np.prod(shape))
        for name, shape in tf.train.list_variables(str(written / "variables"))
        if "OBJECT_GRAPH" not in name and name != "global_step"
    ]
    assert (
        sorted(stored) == [6 * 3, 4 * 6] if source.kind == "tf2" else sorted(stored) == [3, 6, 6 * 3, 4 * 6]
    )
    assert exported["sizes"]["parameter_bytes"] == 4 * sum(stored)


def test_layertap_serve_answers_the_client_and_the_official_stubs(
    source: SimpleNamespace, served: str
) -> None:
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from layertap.client import LayerClient

    key = source.tensor["name"]
    want = inner(source.kind, source.built, X)
    with LayerClient(served, "graph") as client:
        client.wait_ready(timeout=60)
        alias = INPUT[source.kind]
        got = client.predict({alias: X}, [key])[key]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    with grpc.insecure_channel(served) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "graph"
        request.model_spec.signature_name = key
        request.inputs[alias].CopyFrom(tf.make_tensor_proto(X))
        response = stub.Predict(request, timeout=30)
    np.testing.assert_allclose(tf.make_ndarray(response.outputs[key]), want, rtol=1e-6, atol=1e-6)


def test_unknown_tensors_and_keras_only_options_are_refused(
    source: SimpleNamespace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["export", str(source.path), "--base-path", str(tmp_path), "--name", "graph"]
    assert main([*argv, "--layer", "hiden"]) == EXIT_USAGE
    assert "tensor 'hiden' is not computed by any signature of the SavedModel" in capsys.readouterr().err
    assert main([*argv, "--layer", source.tensor["name"], "--head", "p=hidden:l2"]) == EXIT_USAGE
    assert "not supported for it: heads" in capsys.readouterr().err
    assert not (tmp_path / "graph").exists() or not any((tmp_path / "graph").iterdir())


def test_an_estimator_style_graph_on_serialized_examples(tmp_path: Path) -> None:
    # Estimator exports take serialized tf.Example strings: random strings do not parse, so verification
    # cannot compare on them and leaves those signatures out instead of failing; real examples match.
    import tensorflow as tf

    from layertap.exporter import export

    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        serialized = tf.compat.v1.placeholder(tf.string, (None,), name="input_example_tensor")
        parsed = tf.io.parse_example(serialized, {"x": tf.io.FixedLenFeature((4,), tf.float32)})
        weights = tf.compat.v1.get_variable("w", initializer=np.eye(4, 2, dtype=np.float32))
        hidden = tf.nn.relu(tf.matmul(parsed["x"], weights), name="dense/Relu")
        scores = tf.identity(2.0 * hidden, name="scores")
        session.run(tf.compat.v1.global_variables_initializer())
        builder = tf.compat.v1.saved_model.Builder(str(tmp_path / "estimator"))
        signature = tf.compat.v1.saved_model.predict_signature_def(
            {"examples": serialized}, {"scores": scores}
        )
        builder.add_meta_graph_and_variables(
            session, ["serve"], signature_def_map={"serving_default": signature}
        )
        builder.save()
    result = export(str(tmp_path / "estimator"), ["dense/Relu"], base_path=tmp_path / "repo", name="est")
    assert set(result.signatures) == {"serving_default", "dense/Relu"}
    assert result.max_errors == {}
    examples = np.array(
        [
            tf.train.Example(
                features=tf.train.Features(
                    feature={"x": tf.train.Feature(float_list=tf.train.FloatList(value=row))}
                )
            ).SerializeToString()
            for row in X
        ],
        dtype=object,
    )
    got = _session_run(result.path, "dense/Relu", examples)["dense/Relu"]
    np.testing.assert_array_equal(got, np.maximum(X @ np.eye(4, 2, dtype=np.float32), 0.0))


WORDS = ["cat", "zebra", "the", "sat"]


@pytest.mark.parametrize("source", ["tf2"], indirect=True)
def test_a_tf2_lookup_table_is_rebuilt_and_serves_exactly(
    source: SimpleNamespace, exported: dict[str, Any], served: str
) -> None:
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from layertap.client import LayerClient

    (found,) = [row for row in source.rows if row["op"] == "LookupTableFindV2"]
    assert (found["signature"], found["dtype"]) == ("lookup", "int64")
    want = lookup(WORDS)
    words = np.array(WORDS, dtype=object)
    # The session loader runs the table's filling op when it loads, as TF Serving's C++ loader does.
    with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
        definition = tf.compat.v1.saved_model.loader.load(session, ["serve"], exported["path"]).signature_def
        fetches = {alias: info.name for alias, info in definition["lookup"].outputs.items()}
        got = session.run(fetches, {definition["lookup"].inputs["words"].name: words})
    assert got["ids"].tolist() == want["ids"].tolist()
    assert np.array_equal(got["rows"], want["rows"])
    with grpc.insecure_channel(served) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "graph"
        request.model_spec.signature_name = "lookup"
        request.inputs["words"].CopyFrom(tf.make_tensor_proto(np.array(WORDS, dtype=bytes)))
        response = stub.Predict(request, timeout=30)
    assert tf.make_ndarray(response.outputs["ids"]).tolist() == [1, -1, 0, 4]
    assert np.array_equal(tf.make_ndarray(response.outputs["rows"]), want["rows"])
    with LayerClient(served, "graph") as client:
        client.wait_ready(timeout=60)
        assert np.array_equal(client.predict({"words": np.array(WORDS)}, ["rows"])["rows"], want["rows"])


def test_a_table_the_signature_writes_is_refused_naming_the_op(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import tensorflow as tf

    class Counter(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.seen = tf.lookup.experimental.MutableHashTable(tf.string, tf.int64, default_value=0)

        @tf.function(input_signature=[tf.TensorSpec((None,), tf.string, name="words")])
        def count(self, words: Any) -> Any:
            self.seen.insert(words, self.seen.lookup(words) + 1)
            return {"counts": self.seen.lookup(words)}

    module = Counter()
    tf.saved_model.save(module, str(tmp_path / "saved"), signatures={"serving_default": module.count})
    assert main(["inspect", str(tmp_path / "saved")]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "captures a resource used by LookupTableInsertV2" in err
    assert "rebuilds the variables and the hash tables a signature only reads" in err
