"""A model on `Input((1,), dtype="string")` (one string an example, in a column) asked for from a text
file with `layertap predict`: each line is one example, shaped [batch, 1] as the signature takes it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from layertap.cli import EXIT_OK, EXIT_USAGE, main
from tests.fixtures.local_serving import serving

VOCABULARY = ["red", "green", "blue"]


@pytest.fixture(scope="module")
def column_model() -> Any:
    import keras

    text = keras.Input((1,), dtype="string", name="colour")
    ids = keras.layers.StringLookup(vocabulary=VOCABULARY, name="lookup")(text)
    hot = keras.layers.CategoryEncoding(num_tokens=len(VOCABULARY) + 1, output_mode="count", name="hot")(ids)
    return keras.Model(text, keras.layers.Dense(2, name="dense")(hot))


@pytest.fixture(scope="module")
def served(column_model: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from layertap.exporter import export

    result = export(column_model, ["lookup", "dense"], base_path=tmp_path_factory.mktemp("col"), name="col")
    with serving(result) as target:
        yield target


def test_predict_reads_a_text_file_into_a_string_column(
    served: str, column_model: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import keras

    words = ["green", "blue", "mauve", "red"]
    (tmp_path / "colours.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    reference = keras.Model(
        column_model.inputs, [column_model.get_layer("lookup").output, column_model.output]
    )
    expected = reference({"colour": np.array(words, dtype=object).reshape(-1, 1)})
    argv = ["predict", "--target", served, "--model", "col", "--layer", "lookup,dense", "--json"]
    assert main([*argv, str(tmp_path / "colours.txt")]) == EXIT_OK
    outputs = json.loads(capsys.readouterr().out)
    assert outputs["lookup"]["values"] == [[2], [3], [0], [1]]
    assert outputs["lookup"]["values"] == np.asarray(expected[0]).tolist()
    np.testing.assert_array_equal(np.array(outputs["dense"]["values"], np.float32), np.asarray(expected[1]))
    # An array of the wrong rank is still refused by name: only a text file's lines are reshaped.
    np.save(tmp_path / "flat.npy", np.array(words))
    assert main([*argv, str(tmp_path / "flat.npy")]) == EXIT_USAGE
    assert "expects rank 2 (string[?, 1]); got shape [4]" in capsys.readouterr().err
