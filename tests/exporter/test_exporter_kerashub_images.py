"""An image task's KerasHub preset with its image converter: `layertap export DIR --with-preprocessor` puts
the converter (resize, rescale) in front of the backbone, so signatures take images of any size; loaded by
the session loader, served by `layertap serve`, asked with `layertap.client` and the official stubs, equal
to KerasHub's own converter and backbone in process.
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
from tests.exporter.kerashub_presets import Preset, build_vit_preset, reference_image_features
from tests.fixtures.local_serving import serving

# Building and tracing a backbone takes a while on 2 cores, like the text presets.
pytestmark = pytest.mark.slow

LAYER = "vit_encoder"
# Not the preset's 32x32: the converter resizes (and crops to the aspect ratio) inside the signature.
IMAGES = np.random.default_rng(4).uniform(0.0, 255.0, size=(2, 40, 48, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def vit(tmp_path_factory: pytest.TempPathFactory) -> Preset:
    return build_vit_preset(tmp_path_factory.mktemp("vit_preset"))


@pytest.fixture(scope="module")
def exported(vit: Preset, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    argv = ["export", str(vit.path), "--with-preprocessor", "--layer", f"{vit.backbone}/{LAYER}"]
    argv += ["--base-path", str(tmp_path_factory.mktemp("vit_repo")), "--name", "vit", "--json"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(argv) == EXIT_OK
    return dict(json.loads(out.getvalue()))


@pytest.fixture(scope="module")
def served(exported: dict[str, Any]) -> Iterator[str]:
    with serving(SimpleNamespace(name="vit", path=Path(exported["path"]))) as target:
        yield target


def test_signatures_take_images_of_any_size(exported: dict[str, Any], vit: Preset) -> None:
    key = f"{vit.backbone}/{LAYER}"
    signature = exported["signatures"][key]
    assert signature["inputs"] == {"images": {"shape": [None, None, None, 3], "dtype": "float32"}}
    # 32x32 pixels in 8x8 patches: 16 tokens and the class token, 16 features each.
    assert signature["outputs"][key] == {"shape": [None, 17, 16], "dtype": "float32"}
    assert exported["verification"]["verified"]


def test_served_values_equal_kerashub_in_process(exported: dict[str, Any], served: str, vit: Preset) -> None:
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from layertap.client import LayerClient

    key = f"{vit.backbone}/{LAYER}"
    want = reference_image_features(vit, IMAGES, LAYER)
    with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
        definition = tf.compat.v1.saved_model.loader.load(session, ["serve"], exported["path"]).signature_def[
            key
        ]
        got = session.run(definition.outputs[key].name, {definition.inputs["images"].name: IMAGES})
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    with LayerClient(served, "vit") as client:
        client.wait_ready(timeout=60)
        np.testing.assert_allclose(client.predict_layer(IMAGES, key), want, rtol=1e-5, atol=1e-5)
    with grpc.insecure_channel(served) as channel:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "vit"
        request.model_spec.signature_name = key
        request.inputs["images"].CopyFrom(tf.make_tensor_proto(IMAGES))
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
    np.testing.assert_allclose(tf.make_ndarray(response.outputs[key]), want, rtol=1e-5, atol=1e-5)


def test_sequence_length_is_refused_for_an_image_preset(
    vit: Preset, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["export", str(vit.path), "--with-preprocessor", "--sequence-length", "8", "--layer", "0"]
    assert main([*argv, "--base-path", str(tmp_path), "--name", "vit"]) == EXIT_USAGE
    assert "--sequence-length applies to a text preprocessor" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_a_backbone_taking_images_and_text_is_refused_with_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """CLIP's backbone takes images and token ids: the converter alone cannot feed it (this was an internal
    error from Keras); the backbone alone exports."""
    import keras
    import keras_hub
    from keras_hub.src.models.clip.clip_text_encoder import CLIPTextEncoder
    from keras_hub.src.models.clip.clip_vision_encoder import CLIPVisionEncoder

    keras.utils.set_random_seed(5)
    size = {"hidden_dim": 8, "num_layers": 1, "num_heads": 2, "intermediate_dim": 16}
    vision = CLIPVisionEncoder(patch_size=8, image_shape=(16, 16, 3), **size)
    text = CLIPTextEncoder(vocabulary_size=10, embedding_dim=8, max_sequence_length=8, **size)
    preset = tmp_path / "clip"
    keras_hub.models.CLIPBackbone(vision, text, projection_dim=4).save_to_preset(str(preset))
    keras_hub.layers.CLIPImageConverter(image_size=(16, 16), scale=1 / 255.0).save_to_preset(str(preset))
    repo = tmp_path / "repo"
    argv = ["export", str(preset), "--layer", "vision_pooler", "--base-path", str(repo), "--name", "clip"]
    assert main([*argv, "--with-preprocessor"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "CLIPBackbone takes ['images', 'token_ids']" in err
    assert "export the backbone without --with-preprocessor" in err
    assert not repo.exists()
    assert main(argv) == EXIT_OK
    assert (repo / "clip" / "1" / "saved_model.pb").is_file()
