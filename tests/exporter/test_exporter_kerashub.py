"""KerasHub presets with their tokenizer: `layertap export DIR --with-preprocessor` from the CLI, loaded by
the session loader, served by `layertap serve`, asked with `layertap.client` and the official stubs,
equal to KerasHub in process. Two tokenizer families: BERT (WordPiece) and GPT-2 (byte-level BPE); and
ELECTRA, whose preset has a tokenizer but no preprocessor class in KerasHub (the generic one is built).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from layertap.cli import EXIT_OK, main
from layertap.errors import UsageError
from tests.cli_process import cli_command
from tests.exporter.kerashub_presets import SENTENCES, Preset, build_preset, reference_features
from tests.fixtures.local_serving import serving

# Tokenizers in the graph make these exports slower to trace than a plain model's (~45 s for both families
# on a quiet 2-core machine).
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["bert", "gpt2", "electra"])
def preset(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Preset:
    return build_preset(str(request.param), tmp_path_factory.mktemp(f"{request.param}_preset"))


@pytest.fixture(scope="module")
def exported(preset: Preset, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The CLI's --json result for a layer and two heads, exported with the preprocessor."""
    import contextlib
    import io

    base = tmp_path_factory.mktemp(f"{preset.family}_repo")
    out = io.StringIO()
    b = preset.backbone
    argv = ["export", str(preset.path), "--with-preprocessor", "--base-path", str(base), "--name", "text"]
    argv += ["--layer", f"{b}/transformer_layer_0", "--json"]
    argv += ["--head", f"pooled={b}/transformer_layer_1:mean=padding_mask"]
    if preset.family != "gpt2":  # a CLS token: a causal model's first token is its start token
        argv += ["--head", f"cls={b}/transformer_layer_1:first"]
    with contextlib.redirect_stdout(out):
        assert main(argv) == EXIT_OK
    return dict(json.loads(out.getvalue()))


@pytest.fixture(scope="module")
def expected(preset: Preset) -> dict[str, np.ndarray]:
    """What the signatures must return for SENTENCES, from KerasHub in process and numpy."""
    ref = reference_features(preset, SENTENCES, ["transformer_layer_0", "transformer_layer_1"])
    last = ref["transformer_layer_1"]
    mask = ref["padding_mask"].astype(np.float32)[:, :, None]
    layer0 = f"{preset.backbone}/transformer_layer_0"
    expected = {
        layer0: ref["transformer_layer_0"],
        "pooled": (last * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1.0),
    }
    return {**expected, "cls": last[:, 0]} if preset.family != "gpt2" else expected


@pytest.fixture(scope="module")
def served(exported: dict[str, Any]) -> Iterator[str]:
    with serving(SimpleNamespace(name=exported["name"], path=Path(exported["path"]))) as target:
        yield target


def _close(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_signatures_take_raw_text_and_verify(exported: dict[str, Any], preset: Preset) -> None:
    layer0 = f"{preset.backbone}/transformer_layer_0"
    signatures = exported["signatures"]
    heads = {"pooled", "cls"} if preset.family != "gpt2" else {"pooled"}
    assert set(signatures) == {"serving_default", layer0, *heads}
    for info in signatures.values():
        assert info["inputs"] == {"text": {"shape": [None], "dtype": "string"}}
    shape = [None, preset.sequence_length, 16]
    assert signatures[layer0]["outputs"][layer0] == {"shape": shape, "dtype": "float32"}
    assert signatures["pooled"]["heads"] == {"pooled": ["mean=padding_mask"]}
    assert exported["verification"]["verified"]
    assert max(exported["verification"]["max_errors"].values()) <= 1e-5


def test_session_loader_equals_kerashub(exported: dict[str, Any], expected: dict[str, np.ndarray]) -> None:
    import tensorflow as tf

    text = np.array([s.encode() for s in SENTENCES], dtype=object)
    # One load for every signature, the way TF Serving's C++ loader holds a version (TF1 session path).
    with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], exported["path"])
        for key, want in expected.items():
            definition = meta_graph.signature_def[key]
            assert list(definition.inputs) == ["text"]
            got = session.run(definition.outputs[key].name, {definition.inputs["text"].name: text})
            _close(got, want)


def test_layertap_serve_answers_the_client_and_the_official_stubs(
    served: str, expected: dict[str, np.ndarray]
) -> None:
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from layertap.client import LayerClient

    with LayerClient(served, "text") as client:
        client.wait_ready(timeout=60)
        outputs = client.predict({"text": np.array(SENTENCES)}, list(expected))
    for key, want in expected.items():
        _close(outputs[key], want)
    with grpc.insecure_channel(served) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "text"
        request.model_spec.signature_name = "pooled"
        request.inputs["text"].CopyFrom(tf.make_tensor_proto(np.array(SENTENCES, dtype=bytes)))
        response = stub.Predict(request, timeout=30)
    _close(tf.make_ndarray(response.outputs["pooled"]), expected["pooled"])


def test_tf_serving_2_21_links_every_op_the_export_uses(exported: dict[str, Any]) -> None:
    from layertap.config.compat import check_compat

    verdict = check_compat(Path(exported["path"]), "2.21.0")
    assert verdict.compatible
    assert [p for p in verdict.problems if p.kind in ("op", "custom_op")] == []


@pytest.fixture(scope="module")
def bert(tmp_path_factory: pytest.TempPathFactory) -> Preset:
    return build_preset("bert", tmp_path_factory.mktemp("bert_alone"))


def test_inspect_lists_the_backbone_layers_behind_the_preprocessor(
    bert: Preset, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["inspect", str(bert.path), "--with-preprocessor", "--json"]) == EXIT_OK
    rows = {row["spec"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows[f"{bert.backbone}/transformer_layer_1"]["output_shape"] == [[None, None, 16]]
    kinds = [row["kind"] for row in rows.values() if "/" not in row["spec"]]
    assert kinds == ["BertTextClassifierPreprocessor", "BertBackbone"]


def test_a_keras_file_calling_a_tokenizer_is_refused_with_its_cause(bert: Preset, tmp_path: Path) -> None:
    from layertap.errors import UnsupportedModelError
    from layertap.exporter.loading import load_model

    composed = load_model(bert.path, with_preprocessor=True)
    composed.save(tmp_path / "composed.keras")
    with pytest.raises(UnsupportedModelError) as raised:
        load_model(tmp_path / "composed.keras")
    message = str(raised.value)
    assert "calls the KerasHub BertTextClassifierPreprocessor, BertTokenizer on its input" in message
    assert "No vocabulary has been set" in message and "The file is not damaged" in message
    assert "layertap export DIR --with-preprocessor" in message
    assert "truncated" not in message
    with pytest.raises(UsageError, match=r"apply to a KerasHub preset directory; .* is a model file"):
        load_model(tmp_path / "composed.keras", with_preprocessor=True)


def test_layertap_validate_loads_tf_text_in_a_fresh_process(exported: dict[str, Any], preset: Preset) -> None:
    # A process that never imported keras_hub (as `layertap validate` on a server host): the tokenizer's
    # ops resolve only because validate loads TF Text first (`layertap.tftext`).
    import subprocess

    if preset.family != "bert":
        pytest.skip("one family shows it; the ops differ, the loading does not")
    argv = cli_command("validate", exported["path"], "--runs", "1", "--json")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["passed"] and set(report["signatures"]) == {*exported["signatures"]}
