"""`export(server=...)`, `layertap export --server`: what that TF Serving release cannot load is never
published."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from layertap.cli import EXIT_OK, EXIT_USAGE, main
from layertap.errors import ConfigError, RefusedVersionError
from layertap.exporter import export

# A 1x1 lossless WebP image (26 bytes of RIFF/VP8L), decoded by the model: DecodeWebP is an op TensorFlow
# added in 2.20 (see the profiles), so TF Serving before 2.20.0 cannot load the graph.
WEBP_1X1 = base64.b64decode("UklGRhoAAABXRUJQVlA4TA0AAAAvAAAAEAcQERGIiP4HAA==")


def _plus_decoded_pixel(t: Any) -> Any:
    import tensorflow as tf

    pixel = tf.reduce_mean(tf.cast(tf.io.decode_webp(WEBP_1X1), t.dtype))
    return t + 0.0 * pixel


@pytest.fixture(scope="module")
def new_op_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A .keras model whose layer `decode` runs DecodeWebP, an op TF Serving 2.19.1 does not have."""
    import keras

    inputs = keras.Input((3,), name="x")
    hidden = keras.layers.Dense(3, name="dense")(inputs)
    decoded = keras.layers.Lambda(_plus_decoded_pixel, output_shape=(3,), name="decode")(hidden)
    model = keras.Model(inputs, keras.layers.Dense(2, name="head")(decoded))
    path = tmp_path_factory.mktemp("new_op") / "model.keras"
    model.save(path)
    return path


def _entries(model_dir: Path) -> list[str]:
    """What the model folder holds besides the exporter's lock file (nothing when it was never created)."""
    if not model_dir.exists():
        return []
    return sorted(p.name for p in model_dir.iterdir() if p.name != ".layertap.lock")


def _load(path: Path) -> Any:
    import keras

    return keras.saving.load_model(
        path, safe_mode=False, custom_objects={"_plus_decoded_pixel": _plus_decoded_pixel}
    )


def test_a_server_that_cannot_load_the_export_gets_nothing(new_op_model: Path, tmp_path: Path) -> None:
    base = tmp_path / "models"
    for server in ("2.16.1", "2.19.1"):
        with pytest.raises(RefusedVersionError) as refused:
            export(_load(new_op_model), ["decode"], base_path=base, name="m", server=server)
        message = str(refused.value)
        assert message.startswith(f"TF Serving {server} (TensorFlow {server}) cannot load this export, so it")
        assert f"Op type not registered 'DecodeWebP' in TensorFlow {server}, the server's" in message
        assert _entries(base / "m") == []  # no version, no staging directory left behind
    # The same export is published for the first server whose TensorFlow has the op.
    result = export(_load(new_op_model), ["decode"], base_path=base, name="m", server="2.20.0")
    assert result.version == 1 and (base / "m" / "1" / "saved_model.pb").is_file()


def test_an_unknown_server_is_refused_before_any_work(tmp_path: Path, trained_tutorial_cnn: Any) -> None:
    with pytest.raises(ConfigError, match=r"unknown TF Serving release '2\.99\.0'"):
        export(trained_tutorial_cnn, ["conv_2"], base_path=tmp_path, name="m", server="2.99.0")
    assert not (tmp_path / "m").exists()


def test_cli_export_server(
    trained_tutorial_cnn_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = [
        "export",
        str(trained_tutorial_cnn_file),
        "--layer",
        "conv_2",
        "--base-path",
        str(tmp_path),
        "--name",
        "cnn",
    ]
    # The tutorial CNN written by TensorFlow 2.21 loads on the oldest supported server.
    assert main([*base, "--server", "2.16.1"]) == EXIT_OK
    assert "checking that TF Serving 2.16.1 can load it" in capsys.readouterr().err
    assert main([*base, "--server", "1.15.0"]) == EXIT_USAGE
    assert "unknown TF Serving release '1.15.0'" in capsys.readouterr().err
    assert _entries(tmp_path / "cnn") == ["1"]
    # --validate rehearses the staged version and keeps its report in the published one.
    assert main([*base, "--server", "2.17.1", "--validate", "--batch", "4"]) == EXIT_OK
    assert "replaying the warmup records" in capsys.readouterr().err
    report = json.loads((tmp_path / "cnn" / "2" / "assets.extra" / "layertap_validation.json").read_text())
    assert report["passed"] and report["server"] == "2.17.1" and report["batch"] == 4
