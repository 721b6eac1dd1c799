"""`export(server=...)`, `layertap export --server`: what that TF Serving release cannot load is never
published."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from layertap.cli import EXIT_OK, EXIT_USAGE, main
from layertap.errors import ConfigError, RefusedVersionError
from layertap.exporter import export


@pytest.fixture(scope="module")
def cnn_file(cnn: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("server") / "cnn.keras"
    cnn.save(path)
    return path


def _gather_first(t: Any) -> Any:
    import tensorflow as tf

    rows = tf.range(tf.shape(t)[0])
    indices = tf.stack([rows, tf.zeros_like(rows)], axis=1)
    # A non-default `bad_indices_policy`: an attr TensorFlow added to GatherNd after 2.16 (see the profiles).
    return tf.raw_ops.GatherNd(params=t, indices=indices, bad_indices_policy="ERROR")[:, None]


@pytest.fixture(scope="module")
def new_attr_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A .keras model whose layer `pick` runs GatherNd with an attr TF Serving 2.16.1 does not know."""
    import keras

    inputs = keras.Input((3,), name="x")
    hidden = keras.layers.Dense(3, name="dense")(inputs)
    picked = keras.layers.Lambda(_gather_first, output_shape=(1,), name="pick")(hidden)
    model = keras.Model(inputs, keras.layers.Dense(2, name="head")(picked))
    path = tmp_path_factory.mktemp("new_attr") / "model.keras"
    model.save(path)
    return path


def _entries(model_dir: Path) -> list[str]:
    """What the model folder holds besides the exporter's lock file."""
    return sorted(p.name for p in model_dir.iterdir() if p.name != ".layertap.lock")


def _load(path: Path) -> Any:
    import keras

    return keras.saving.load_model(path, safe_mode=False, custom_objects={"_gather_first": _gather_first})


def test_a_server_that_cannot_load_the_export_gets_nothing(new_attr_model: Path, tmp_path: Path) -> None:
    base = tmp_path / "models"
    with pytest.raises(RefusedVersionError) as refused:
        export(_load(new_attr_model), ["pick"], base_path=base, name="m", server="2.16.1")
    message = str(refused.value)
    assert message.startswith("TF Serving 2.16.1 (TensorFlow 2.16.1) cannot load this export, so it was not")
    assert "NodeDef mentions attr 'bad_indices_policy' not in Op 'GatherNd' of TensorFlow 2.16.1" in message
    assert _entries(base / "m") == []  # no version, no staging directory left behind
    # The same export is published for the pinned server, whose TensorFlow has the attr.
    result = export(_load(new_attr_model), ["pick"], base_path=base, name="m", server="2.21.0")
    assert result.version == 1 and (base / "m" / "1" / "saved_model.pb").is_file()


def test_an_unknown_server_is_refused_before_any_work(tmp_path: Path, cnn: Any) -> None:
    with pytest.raises(ConfigError, match=r"unknown TF Serving release '2\.99\.0'"):
        export(cnn, ["conv_2"], base_path=tmp_path, name="m", server="2.99.0")
    assert not (tmp_path / "m").exists()


def test_cli_export_server(cnn_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["export", str(cnn_file), "--layer", "conv_2", "--base-path", str(tmp_path), "--name", "cnn"]
    # The tutorial CNN written by TensorFlow 2.21 loads on the oldest supported server.
    assert main([*base, "--server", "2.16.1"]) == EXIT_OK
    assert "checking that TF Serving 2.16.1 can load it" in capsys.readouterr().err
    assert main([*base, "--server", "1.15.0"]) == EXIT_USAGE
    assert "unknown TF Serving release '1.15.0'" in capsys.readouterr().err
    assert _entries(tmp_path / "cnn") == ["1"]
