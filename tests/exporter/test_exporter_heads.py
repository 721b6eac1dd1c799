"""Heads at export: refusals before anything is written, the manifest, the CLI and `inspect --head`.

The numeric end-to-end checks of every op (session loader, `layertap serve`, client and official
stubs) are in tests/server/test_heads_served.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from layertap.cli import EXIT_OK, EXIT_USAGE, main
from layertap.errors import LayerNotFoundError, UsageError
from layertap.exporter import export, inspect_model
from layertap.exporter.heads import apply_numpy, parse_head, parse_ops


@pytest.fixture(scope="module")
def masked_sequence() -> Any:
    """Embedding(mask_zero) -> LSTM(return_sequences) -> mean: padded tokens carry a Keras mask."""
    import keras

    keras.utils.set_random_seed(11)
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    embedded = keras.layers.Embedding(30, 6, mask_zero=True, name="embed")(tokens)
    states = keras.layers.LSTM(5, return_sequences=True, name="lstm")(embedded)
    return keras.Model(tokens, keras.layers.GlobalAveragePooling1D(name="pool")(states))


@pytest.mark.parametrize(
    ("heads", "message"),
    [
        (
            {"h": ("flatten", ["gap"])},
            r"op 'gap' does not fit 'flatten', whose output is \(batch, 1600\) float32",
        ),
        (
            {"h": ("conv_1", ["mean"])},
            r"mean needs \(batch, time, features\).*Ops that fit this output: gap, gmp",
        ),
        (
            {"h": ("conv_1", ["gap", "gap"])},
            r"'gap' does not fit 'conv_1' after gap, whose output is \(batch, 32\)",
        ),
        ({"h": ("conv_1", ["avgpool=27"])}, r"avgpool needs \(batch, H, W, C\) with H, W >= K"),
        ({"h": ("conv_1", ["dims=33"])}, r"rank >= 2 with at least N features"),
        (
            {"h": ("conv_1", ["median"])},
            r"unknown head op 'median'; known ops: gap, gmp, mean\[=MASK_INPUT\], first, "
            r"last\[=MASK_INPUT\], avgpool=K",
        ),
        ({"h": ("conv_1", ["avgpool"])}, r"needs a positive integer argument, e.g. avgpool=2"),
        ({"h": ("conv_1", [])}, r"a head needs at least one op"),
        ({"bad name": ("conv_1", ["gap"])}, r"invalid head name 'bad name'"),
        ({"conv_1": ("conv_1", ["gap"])}, r"head name 'conv_1' is already a signature key"),
    ],
)
def test_refused_heads_write_nothing(
    trained_tutorial_cnn: Any, tmp_path: Path, heads: dict[str, Any], message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        export(trained_tutorial_cnn, ["conv_1"], heads=heads, base_path=tmp_path, name="refused")
    assert list(tmp_path.iterdir()) == []


def test_head_on_unknown_layer_writes_nothing(trained_tutorial_cnn: Any, tmp_path: Path) -> None:
    with pytest.raises(LayerNotFoundError, match="no layer named 'conv_9'"):
        export(trained_tutorial_cnn, [], heads={"h": ("conv_9", ["gap"])}, base_path=tmp_path, name="refused")
    assert list(tmp_path.iterdir()) == []


def test_mask_aware_ops_read_the_layer_mask(masked_sequence: Any, tmp_path: Path) -> None:
    result = export(
        masked_sequence,
        [],
        heads={"mean": ("lstm", ["mean"]), "last": ("lstm", ["last"]), "plain": ("lstm", ["gap"])},
        groups={"both": ["mean", "lstm"]},
        base_path=tmp_path,
        name="seq",
    )
    assert result.signatures["mean"].outputs == {"mean": ((None, 5), "float32")}
    assert result.signatures["both"].outputs == {
        "mean": ((None, 5), "float32"),
        "lstm": ((None, None, 5), "float32"),
    }
    assert result.signatures["both"].heads == {"mean": ("mean",)}
    assert set(result.max_errors) == {"serving_default", "mean", "last", "plain", "both"}
    manifest = json.loads((result.path / "assets.extra" / "layertap.json").read_text())
    assert manifest["signatures"]["mean"]["heads"] == {"mean": ["mean"]}
    assert manifest["signatures"]["both"]["output_bytes_per_example"] == {
        "outputs": {"mean": 20, "lstm": None},
        "total": None,
    }
    assert manifest["layers"]["lstm"] == ["mean", "last", "plain", "both"]


def test_numpy_reference_of_masked_ops() -> None:
    values = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)
    mask = np.array([[True, True, False], [False, False, False]])
    np.testing.assert_allclose(apply_numpy(values, mask, parse_ops("mean")), [[1, 2], [0, 0]])
    np.testing.assert_allclose(apply_numpy(values, mask, parse_ops("last")), [[2, 3], [0, 0]])
    np.testing.assert_allclose(apply_numpy(values, None, parse_ops("last")), [[4, 5], [10, 11]])
    # The mask survives ops that keep the time axis, and is gone after a pooling op.
    np.testing.assert_allclose(apply_numpy(values, mask, parse_ops("dims=1,mean")), [[1], [0]])
    cast = apply_numpy(values, mask, parse_ops("float16"))
    assert cast.dtype == np.float16
    assert apply_numpy(values, None, parse_ops("bfloat16")).dtype.name == "bfloat16"


def test_parse_head_syntax() -> None:
    assert parse_head("pooled=backbone/block_1@1:gap,float16") == (
        "pooled",
        "backbone/block_1@1",
        parse_ops(["gap", "float16"]),
    )
    assert [str(op) for op in parse_ops("avgpool=2,l2")] == ["avgpool=2", "l2"]
    with pytest.raises(UsageError, match=r"expected NAME=SPEC:OP\[,OP...\]"):
        parse_head("pooled=conv_1")
    with pytest.raises(UsageError, match="takes no argument"):
        parse_ops("gap=2")


def test_cli_export_heads_and_inspect_preview(
    trained_tutorial_cnn: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model_file = tmp_path / "cnn.keras"
    trained_tutorial_cnn.save(model_file)
    base = tmp_path / "models"
    common = ["export", str(model_file), "--base-path", str(base), "--name", "cnn"]
    assert main([*common, "--head", "pooled=conv_2:gap,float16", "--json"]) == EXIT_OK
    out = json.loads(capsys.readouterr().out)
    assert out["signatures"]["pooled"]["outputs"] == {"pooled": {"shape": [None, 64], "dtype": "float16"}}
    assert out["signatures"]["pooled"]["heads"] == {"pooled": ["gap", "float16"]}
    assert main([*common, "--head", "bad=flatten:gap"]) == EXIT_USAGE
    assert "whose output is (batch, 1600) float32" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:  # refused while parsing the arguments
        main([*common, "--head", "bad=flatten:unknown"])
    assert exited.value.code == EXIT_USAGE
    assert "known ops: gap, gmp" in capsys.readouterr().err
    assert sorted(p.name for p in (base / "cnn").iterdir() if not p.name.startswith(".")) == ["1"]

    assert main(["inspect", str(model_file), "--head", "gap,float16", "--json"]) == EXIT_OK
    rows = {row["spec"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["conv_2"]["output_bytes_per_example"] == 11 * 11 * 64 * 4
    assert rows["conv_2"]["head"] == {"shape": [None, 64], "dtype": "float16", "bytes_per_example": 128}
    assert rows["flatten"]["head"] == {"shape": None, "dtype": None, "bytes_per_example": None}
    assert main(["inspect", str(model_file), "--head", "avgpool=2"]) == EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[-5:] == ["bytes/example", "head", "avgpool=2", "head", "bytes/example"]
    conv_2 = next(line for line in lines if " conv_2 " in line)
    assert conv_2.split()[-7:] == ["30,976", "(batch,", "2,", "2,", "64)", "float32", "1,024"]


def test_inspect_model_head_preview(masked_sequence: Any) -> None:
    rows = {row.spec: row for row in inspect_model(masked_sequence, head="mean,l2")}
    assert rows["lstm"].head_shape == (None, 5)
    assert rows["lstm"].head_bytes == 20
    assert rows["lstm"].output_bytes is None  # the time axis is open
    assert rows["pool"].head_shape is None


def test_mask_input_must_be_a_model_input(masked_sequence: Any, tmp_path: Path) -> None:
    with pytest.raises(
        UsageError, match=r"the mask input 'nope' is not an input of the model; inputs: \['tokens'\]"
    ):
        export(masked_sequence, [], heads={"h": ("lstm", ["mean=nope"])}, base_path=tmp_path, name="m")
    with pytest.raises(UsageError, match=r"mean=INPUT names the model input holding the mask"):
        export(masked_sequence, [], heads={"h": ("lstm", ["mean=3"])}, base_path=tmp_path, name="m")
    assert list(tmp_path.iterdir()) == []
