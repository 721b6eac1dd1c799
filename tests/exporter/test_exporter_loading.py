"""Loading model files: .keras and legacy .h5, safe mode for Lambda layers, bad paths."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from layertap.errors import UnsafeModelError, UsageError
from layertap.exporter import export, inspect_model
from layertap.exporter.loading import load_model


@pytest.fixture(scope="module")
def lambda_model() -> Any:
    import keras

    x = keras.Input((3,), name="x")
    return keras.Model(x, keras.layers.Lambda(lambda t: t * 2.0, name="double")(x))


def test_keras_file_round_trip(trained_tutorial_cnn: Any, tmp_path: Path) -> None:
    path = tmp_path / "cnn.keras"
    trained_tutorial_cnn.save(path)
    loaded = load_model(path)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in trained_tutorial_cnn.layers]
    result = export(path, ["conv_2"], base_path=tmp_path / "repo", name="cnn")
    assert result.signatures["conv_2"].outputs == {"conv_2": ((None, 11, 11, 64), "float32")}


def test_legacy_h5(trained_tutorial_cnn: Any, tmp_path: Path) -> None:
    path = tmp_path / "cnn.h5"
    trained_tutorial_cnn.save(path)
    rows = inspect_model(path)
    assert [row.spec for row in rows] == ["conv_1", "pool_1", "conv_2", "pool_2", "flatten", "output_layer"]
    loaded = load_model(path)
    np.testing.assert_array_equal(
        np.asarray(loaded.get_layer("conv_2").kernel),
        np.asarray(trained_tutorial_cnn.get_layer("conv_2").kernel),
    )


def test_lambda_in_keras_file_needs_opt_in(lambda_model: Any, tmp_path: Path) -> None:
    path = tmp_path / "lambda.keras"
    lambda_model.save(path)
    with pytest.raises(UnsafeModelError, match="--allow-unsafe"):
        export(path, ["double"], base_path=tmp_path / "repo", name="lam")
    assert not (tmp_path / "repo").exists()
    result = export(path, ["double"], base_path=tmp_path / "repo", name="lam", allow_unsafe=True)
    assert result.version == 1


def test_lambda_in_h5_is_refused_before_keras_reads_it(lambda_model: Any, tmp_path: Path) -> None:
    path = tmp_path / "lambda.h5"
    lambda_model.save(path)
    with pytest.raises(UnsafeModelError, match="contains a Lambda layer"):
        load_model(path)
    assert load_model(path, allow_unsafe=True).get_layer("double") is not None


def test_bad_paths(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        load_model(tmp_path / "missing.keras")
    other = tmp_path / "model.onnx"
    other.write_bytes(b"x")
    with pytest.raises(UsageError, match=r"suffix '\.onnx'; accepted: \.keras, \.h5, \.hdf5"):
        load_model(other)
