"""Text and lookup preprocessing inside the model: exported, loaded by the session loader, served,
asked for with `layertap.client`, the official stubs and `layertap predict`, equal to Keras.

The lookup tables (StringLookup, IntegerLookup, TextVectorization) are resources the traced functions
capture; the exporter tracks them so that the SavedModel's init op fills them in TF Serving's loader.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from layertap.cli import EXIT_OK, main
from tests.exporter.lookup_models import TEXT_LAYERS, build_text_model, text_inputs
from tests.fixtures.local_serving import serving

SessionRunner = Callable[[Path, str, dict[str, np.ndarray]], dict[str, np.ndarray]]


@pytest.fixture(scope="module")
def text_model() -> Any:
    return build_text_model()


@pytest.fixture(scope="module")
def text_export(text_model: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from layertap.exporter import export

    return export(text_model, TEXT_LAYERS, base_path=tmp_path_factory.mktemp("text_repo"), name="text")


@pytest.fixture(scope="module")
def served(text_export: Any) -> Iterator[str]:
    with serving(text_export) as target:
        yield target


def keras_outputs(model: Any, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    import keras

    outputs = [model.get_layer(name).output for name in TEXT_LAYERS]
    values = keras.Model(model.inputs, outputs)(inputs, training=False)
    return {name: np.asarray(value) for name, value in zip(TEXT_LAYERS, values, strict=True)}


def test_every_lookup_layer_exports_and_verifies(text_export: Any, text_model: Any) -> None:
    import tensorflow as tf

    assert set(text_export.max_errors) == {"serving_default", *TEXT_LAYERS}
    assert all(error <= 1e-5 for error in text_export.max_errors.values())
    assert text_export.signatures["lookup"].inputs == {"tokens": ((None, None), "string")}
    assert text_export.signatures["vectorize"].inputs == {"text": ((None,), "string")}
    # Tracking the tables stores nothing twice: the checkpoint holds each model variable once.
    stored = [
        int(np.prod(shape))
        for name, shape in tf.train.list_variables(str(text_export.path / "variables" / "variables"))
        if "OBJECT_GRAPH" not in name
    ]
    assert sum(stored) == sum(int(np.prod(v.shape)) for v in text_model.variables)


def test_session_loader_initialises_the_tables(
    text_export: Any, text_model: Any, run_in_session: SessionRunner
) -> None:
    inputs = text_inputs()
    expected = keras_outputs(text_model, inputs)
    for layer, needs in (("lookup", ["tokens"]), ("vectorize", ["text"]), ("int_lookup", ["ids"])):
        got = run_in_session(text_export.path, layer, {alias: inputs[alias] for alias in needs})
        np.testing.assert_array_equal(got[layer], expected[layer])
    # Known tokens map to their index (1-based after the OOV index 0), unknown ones to 0.
    assert expected["lookup"][0].tolist() == [1, 2, 3, 0]


def test_layertap_client_sends_str_and_bytes_arrays(served: str, text_model: Any) -> None:
    from layertap.client import LayerClient

    inputs = text_inputs()
    expected = keras_outputs(text_model, inputs)
    with LayerClient(served, "text") as client:
        client.wait_ready(timeout=60)
        as_str = {**inputs, "text": inputs["text"].astype(str), "tokens": inputs["tokens"].astype(str)}
        outputs = client.predict(as_str, TEXT_LAYERS)
        as_bytes = client.predict(
            {"tokens": np.char.encode(inputs["tokens"].astype(str), "utf-8")}, ["token_embedding"]
        )
        full = client.predict(inputs)
    for layer in TEXT_LAYERS:
        np.testing.assert_allclose(outputs[layer], expected[layer], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(as_bytes["token_embedding"], expected["token_embedding"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(full["head"], np.asarray(text_model(inputs)), rtol=1e-5, atol=1e-6)


def test_official_stubs_send_dt_string(served: str, text_model: Any) -> None:
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    inputs = text_inputs()
    expected = keras_outputs(text_model, inputs)
    with grpc.insecure_channel(served) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for layer, alias in (("token_embedding", "tokens"), ("bigrams", "text")):
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "text"
            request.model_spec.signature_name = layer
            proto = tf.make_tensor_proto(inputs[alias].astype(bytes))
            assert proto.dtype == tf.string.as_datatype_enum
            request.inputs[alias].CopyFrom(proto)
            response = stub.Predict(request, timeout=30)
            np.testing.assert_allclose(
                tf.make_ndarray(response.outputs[layer]), expected[layer], rtol=1e-5, atol=1e-6
            )


def test_predict_reads_strings_from_a_text_file_and_npy(
    served: str, text_model: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sentences = ["the cat sat", "a dog ate the mat", "café ünïcode words"]
    (tmp_path / "sentences.txt").write_text("\n".join(sentences) + "\n", encoding="utf-8")
    np.save(tmp_path / "sentences.npy", np.array(sentences))
    expected = keras_outputs(text_model, {**text_inputs(), "text": np.array(sentences, dtype=object)})
    for name in ("sentences.txt", "sentences.npy"):
        argv = ["predict", "--target", served, "--model", "text", "--layer", "vectorize,bigrams", "--json"]
        assert main([*argv, str(tmp_path / name)]) == EXIT_OK
        outputs = json.loads(capsys.readouterr().out)
        assert outputs["vectorize"]["values"] == expected["vectorize"].tolist()
        assert outputs["bigrams"]["values"] == expected["bigrams"].tolist()
