"""`layertap export` and `layertap inspect`: output contract and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from layertap.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, main


def test_export_json_stdout_is_only_json(trained_tutorial_cnn_file: Path, tmp_path: Path) -> None:
    command = [
        sys.executable, "-m", "layertap.cli", "export", str(trained_tutorial_cnn_file),
        "--layer", "conv_2", "--layer", "0", "--group", "both=conv_1,flatten",
        "--base-path", str(tmp_path), "--name", "mnist", "--json",
    ]  # fmt: skip
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0"}  # even with TensorFlow's logging on
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert done.returncode == EXIT_OK, done.stderr
    result = json.loads(done.stdout)
    assert result["version"] == 1
    assert result["path"] == str(tmp_path / "mnist" / "1")
    assert list(result["signatures"]) == ["serving_default", "conv_2", "conv_1", "both"]
    assert result["signatures"]["conv_2"]["outputs"] == {
        "conv_2": {"shape": [None, 11, 11, 64], "dtype": "float32"}
    }
    assert result["signatures"]["both"]["layers"] == ["conv_1", "flatten"]
    assert set(result["verification"]["max_errors"]) == set(result["signatures"])
    assert result["verification"]["verified"] is True
    assert result["sizes"]["parameter_bytes"] == 139304
    assert result["sizes"]["ratio"] <= 1.01
    assert {"load", "plan", "trace_and_save", "verify", "publish", "total"} <= set(result["timings"])
    # progress went to stderr
    assert "layertap export: tracing signature 2/4: conv_2" in done.stderr
    assert "layertap export: publishing version 1" in done.stderr


def test_export_text_summary(
    trained_tutorial_cnn_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "export",
            str(trained_tutorial_cnn_file),
            "--layer",
            "conv_2",
            "--base-path",
            str(tmp_path),
            "--name",
            "m",
        ]
    )
    out = capsys.readouterr().out
    assert code == EXIT_OK
    assert f"exported m version 1 to {tmp_path / 'm' / '1'}" in out
    assert "  conv_2: conv_2 (batch, 11, 11, 64) float32  (max error 0.0e+00)" in out


def test_unknown_layer_is_bad_input(
    trained_tutorial_cnn_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "export",
            str(trained_tutorial_cnn_file),
            "--layer",
            "conv_3",
            "--base-path",
            str(tmp_path),
            "--name",
            "m",
        ]
    )
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert "layertap export: error: layer spec 'conv_3': the model has no layer named 'conv_3'" in err
    assert "Nearest: conv_2, conv_1" in err
    assert not (tmp_path / "m").exists()


def test_existing_version_is_a_failure_not_overwritten(
    trained_tutorial_cnn_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "m" / "4").mkdir(parents=True)
    (tmp_path / "m" / "4" / "keep").write_text("old")
    args = [
        "export",
        str(trained_tutorial_cnn_file),
        "--layer",
        "conv_1",
        "--base-path",
        str(tmp_path),
        "--name",
        "m",
    ]
    assert main([*args, "--version", "4"]) == EXIT_FAILURE
    assert "version 4 of 'm' already exists" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "m" / "4").iterdir()] == ["keep"]


def test_bad_flags_are_bad_input(
    trained_tutorial_cnn_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["export", str(trained_tutorial_cnn_file), "--base-path", str(tmp_path), "--name", "m"]
    assert main(base) == EXIT_USAGE
    assert "nothing to export" in capsys.readouterr().err
    with pytest.raises(SystemExit) as caught:
        main([*base, "--group", "nolayers"])
    assert caught.value.code == EXIT_USAGE
    assert "expected NAME=SPEC,SPEC" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*base, "--layer", "conv_1", "--input-shape", "28,x"])
    assert "invalid shape '28,x'" in capsys.readouterr().err


def test_inspect_table_and_json(trained_tutorial_cnn_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(trained_tutorial_cnn_file)]) == EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "index",
        "layer",
        "spec",
        "kind",
        "output",
        "shape",
        "params",
        "FLOPs",
        "share",
    ]
    assert lines[3].split() == [
        "2",
        "conv_2",
        "Conv2D",
        "(batch,",
        "11,",
        "11,",
        "64)",
        "18,496",
        "4,884,704",
        "99.3%",
    ]
    assert lines[-1].startswith("FLOPs: per sample, cumulative from the model inputs to this layer")
    assert main(["inspect", str(trained_tutorial_cnn_file), "--json"]) == EXIT_OK
    rows = json.loads(capsys.readouterr().out)
    assert [row["spec"] for row in rows] == [
        "conv_1",
        "pool_1",
        "conv_2",
        "pool_2",
        "flatten",
        "output_layer",
    ]
    assert rows[0] == {
        "index": 0,
        "spec": "conv_1",
        "kind": "Conv2D",
        "output_shape": [[None, 26, 26, 32]],
        "parameters": 320,
        "flops": 411008,
        "flops_share": round(411008 / 4918314, 6),
    }


@pytest.mark.filterwarnings("ignore:You are saving a model that has not yet been built")
def test_inspect_sequential_without_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import keras

    path = tmp_path / "seq.keras"
    keras.Sequential([keras.layers.Dense(3, name="d")]).save(path)
    assert main(["inspect", str(path)]) == EXIT_USAGE
    assert "--input-shape" in capsys.readouterr().err
    assert main(["inspect", str(path), "--input-shape", "5", "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)[0]["output_shape"] == [[None, 3]]
