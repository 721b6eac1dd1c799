"""A saved model whose graph holds a `keras.ops.not_equal` of its own and an `Embedding(mask_zero=True)`,
exported from the CLI with a masked `mean` head.

Loaded from the file, the saved op gets its name back ("not_equal") without Keras' name counter seeing
it, and the Embedding's mask op, created by Keras while loading, is auto-named "not_equal" too: a
sub-model returning the mask held both and Keras refused it ("The name "not_equal" is used 2 times").
In memory both names came from the counter, so the same model exported fine.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from layertap.cli import EXIT_OK
from tests.cli_process import cli_command

SessionRunner = Callable[[Path, str, dict[str, np.ndarray]], dict[str, np.ndarray]]


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import keras
    from keras import ops

    ids = keras.Input((6,), dtype="int32", name="ids")
    # The op is created before the Embedding, so in memory it is "not_equal" and the mask "not_equal_1".
    padding = ops.not_equal(ids, 0)
    pairs = ops.logical_and(ops.expand_dims(padding, 1), ops.expand_dims(padding, 2))
    tokens = keras.layers.Embedding(30, 8, mask_zero=True, name="embed")(ids)
    attended = keras.layers.MultiHeadAttention(2, 4, name="attn")(tokens, tokens, attention_mask=pairs)
    model = keras.Model(ids, keras.layers.LayerNormalization(name="norm")(attended))
    path = tmp_path_factory.mktemp("saved_masks") / "masked.keras"
    model.save(path)
    return path


def test_masked_mean_head_of_a_saved_model_exports_from_the_cli(
    saved: Path, tmp_path: Path, run_in_session: SessionRunner
) -> None:
    import keras

    # A fresh process, as a user's: in this one, Keras' name counter has seen the names of the fixture.
    argv = ["export", str(saved), "--layer", "norm", "--head", "pooled=norm:mean"]
    done = subprocess.run(
        cli_command(*argv, "--base-path", str(tmp_path), "--name", "masked"),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == EXIT_OK, done.stderr
    ids = np.array([[4, 9, 2, 0, 0, 0], [7, 1, 3, 5, 8, 2], [6, 0, 0, 0, 0, 0]], dtype=np.int32)
    model = keras.saving.load_model(saved)
    norm = np.asarray(model(ids))
    real = (ids != 0)[..., None]
    expected = (norm * real).sum(axis=1) / real.sum(axis=1)
    version = tmp_path / "masked" / "1"
    np.testing.assert_array_equal(run_in_session(version, "norm", {"ids": ids})["norm"], norm)
    pooled = run_in_session(version, "pooled", {"ids": ids})["pooled"]
    np.testing.assert_allclose(pooled, expected, rtol=1e-6, atol=1e-6)
    # The padded positions do count in an unmasked mean: the head is not one.
    assert np.abs(pooled - norm.mean(axis=1)).max() > 1e-3
