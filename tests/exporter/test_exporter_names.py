"""Layer and input names Keras accepts but TensorFlow's scopes refuse: `block 2`, `café_ü`, `层`.

Keys and aliases are derived from the names alone (stable across versions, injective, reversible);
the names stay in the manifest and the client's catalogue, and both names work everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from layertap.cli import EXIT_OK, main
from layertap.cli.framework import run_guarded
from layertap.names import is_tensorflow_name, original_name, tensorflow_name
from tests.fixtures.local_serving import serving

NAMES = ["block 2", "café_ü", "层"]


def test_keys_are_valid_stable_injective_and_reversible() -> None:
    names = [
        *NAMES,
        "block_2",
        "block.2",
        "_private",
        "-x",
        "a_u0020_b",
        "u层",
        "ublock",
        "conv_1",
        "outer/inner",
        "d@1",
        "x:0",
    ]
    keys = [tensorflow_name(name) for name in names]
    assert all(is_tensorflow_name(key) for key in keys)
    assert len(set(keys)) == len(keys)  # two names never share a key
    assert [original_name(key) for key in keys] == names
    # Names TensorFlow accepts (and layertap's own @ and : separators) keep their key.
    assert keys[names.index("conv_1")] == "conv_1"
    assert keys[names.index("outer/inner")] == "outer/inner"
    assert keys[names.index("d@1")] == "d@1"
    assert keys[names.index("block_2")] == "block_2"
    assert tensorflow_name("block 2") == "block_u0020_2"
    assert tensorflow_name("层") == "u_u5c42_"
    # Input aliases become tf.function parameters: escaped names are identifiers.
    assert tensorflow_name("the input").isidentifier()


@pytest.fixture(scope="module")
def named_model() -> Any:
    import keras

    keras.utils.set_random_seed(3)
    inputs = keras.Input((4,), name="the input")
    x = keras.layers.Dense(5, activation="relu", name="block 2")(inputs)
    x = keras.layers.Dense(4, name="café_ü")(x)
    outputs = keras.layers.Dense(2, name="层")(x)
    return keras.Model(inputs, outputs, name="named model")


@pytest.fixture(scope="module")
def named_export(named_model: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from layertap.exporter import export

    base = tmp_path_factory.mktemp("names")
    return export(named_model, NAMES, base_path=base, name="named", groups={"early pair": NAMES[:2]})


@pytest.fixture(scope="module")
def served(named_export: Any) -> Iterator[str]:
    with serving(named_export) as target:
        yield target


X = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)


def keras_layer(model: Any, name: str) -> np.ndarray:
    import keras

    return np.asarray(keras.Model(model.inputs, model.get_layer(name).output)([X], training=False))


def test_export_uses_derived_keys_and_keeps_names_in_the_manifest(named_export: Any) -> None:
    keys = [tensorflow_name(name) for name in NAMES]
    assert list(named_export.signatures) == ["serving_default", *keys, "early_u0020_pair"]
    assert named_export.signatures[keys[0]].inputs == {"the_u0020_input": ((None, 4), "float32")}
    assert named_export.signatures[keys[0]].layers == ("block 2",)
    manifest = json.loads((named_export.path / "assets.extra" / "layertap.json").read_text("utf-8"))
    assert manifest["layers"]["block 2"] == [keys[0], "early_u0020_pair"]
    assert manifest["names"]["the_u0020_input"] == "the input"
    assert manifest["names"]["u_u5c42_"] == "层"
    assert all(error <= 1e-5 for error in named_export.max_errors.values())


def test_client_and_cli_ask_by_either_name(
    served: str, named_model: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from layertap.client import LayerClient

    with LayerClient(served, "named") as client:
        client.wait_ready(timeout=60)
        catalogue = client.layers()
        assert sorted(layer.original_name for layer in catalogue.layers.values()) == sorted(NAMES)
        by_name = client.predict({"the input": X}, NAMES)
        by_key = client.predict(X, [tensorflow_name(name) for name in NAMES])
        group = client.predict(X, ["early pair"])
    assert list(by_name) == NAMES
    for name in NAMES:
        np.testing.assert_allclose(by_name[name], keras_layer(named_model, name), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(by_key[tensorflow_name(name)], by_name[name])
    assert sorted(group) == sorted(NAMES[:2])

    assert main(["layers", "--target", served, "--model", "named"]) == EXIT_OK
    table = capsys.readouterr().out
    assert any(line.split()[:3] == ["block", "2", "block_u0020_2"] for line in table.splitlines()), table
    np.save(tmp_path / "x.npy", X)
    argv = ["predict", "--target", served, "--model", "named", "--layer", "café_ü", "--json"]
    assert main([*argv, str(tmp_path / "x.npy")]) == EXIT_OK
    values = json.loads(capsys.readouterr().out)["café_ü"]["values"]
    np.testing.assert_allclose(values, keras_layer(named_model, "café_ü"), rtol=1e-5, atol=1e-6)


def test_error_lines_carry_no_terminal_escape_codes(capsys: pytest.CaptureFixture[str]) -> None:
    from layertap.errors import ExportError

    def fail() -> int:
        raise ExportError("\x1b[1m'block 2' is not a valid scope name\x1b[0m\nmore")

    assert run_guarded("layertap export", fail, json_errors=True, verbose=False) == 1
    captured = capsys.readouterr()
    assert captured.err == "layertap export: failed: 'block 2' is not a valid scope name more\n"
    assert "\x1b" not in captured.out
