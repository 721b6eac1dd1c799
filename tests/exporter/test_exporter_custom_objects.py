"""`--custom-objects MODULE_OR_FILE.py`: registered custom classes resolve, safe mode stays on.

The model file is loaded in fresh processes, where the custom class is registered only if the flag
imports it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from layertap.cli import EXIT_OK, EXIT_USAGE

CUSTOM_LAYERS = Path(__file__).with_name("custom_layers.py")


@pytest.fixture(scope="module")
def custom_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import keras

    from layertap.exporter.loading import import_custom_objects

    import_custom_objects([CUSTOM_LAYERS])  # registers layertap_tests>Scale in this process
    scale = keras.saving.get_registered_object("layertap_tests>Scale")
    inputs = keras.Input((3,), name="x")
    outputs = keras.layers.Dense(2, name="head")(scale(initial=3.0, name="scale")(inputs))
    path = tmp_path_factory.mktemp("custom") / "custom.keras"
    keras.Model(inputs, outputs).save(path)
    return path


def layertap(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(CUSTOM_LAYERS.parent), *sys.path])}
    return subprocess.run(
        [sys.executable, "-m", "layertap.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def test_unknown_class_is_one_line_naming_it_and_the_flag(custom_file: Path, tmp_path: Path) -> None:
    done = layertap(
        "export", str(custom_file), "--layer", "scale", "--base-path", str(tmp_path), "--name", "c"
    )
    assert done.returncode == EXIT_USAGE, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("layertap export: error:")]
    assert len(errors) == 1, done.stderr
    assert "Scale" in errors[0] and "--custom-objects" in errors[0]
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_custom_objects_by_file_and_by_module(custom_file: Path, tmp_path: Path) -> None:
    by_file = layertap("inspect", str(custom_file), "--custom-objects", str(CUSTOM_LAYERS), "--json")
    assert by_file.returncode == EXIT_OK, by_file.stderr
    assert [row["kind"] for row in json.loads(by_file.stdout)] == ["Scale", "Dense"]
    exported = layertap(
        "export", str(custom_file), "--custom-objects", "custom_layers", "--layer", "scale",
        "--base-path", str(tmp_path), "--name", "c", "--json",
    )  # fmt: skip
    assert exported.returncode == EXIT_OK, exported.stderr
    result = json.loads(exported.stdout)
    assert result["verification"]["verified"] is True
    assert result["signatures"]["scale"]["outputs"] == {"scale": {"shape": [None, 3], "dtype": "float32"}}


def test_bad_custom_objects_are_one_line(
    custom_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from layertap.cli import main

    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('boom')\n")
    for source, expected in [
        (str(tmp_path / "missing.py"), "no such file"),
        ("no_such_module_xyz", "no module named 'no_such_module_xyz'"),
        (str(broken), "failed to import: RuntimeError: boom"),
    ]:
        assert main(["inspect", str(custom_file), "--custom-objects", source]) == EXIT_USAGE
        err = capsys.readouterr().err
        assert expected in err.strip().splitlines()[-1], err


def test_the_python_api_takes_custom_objects(custom_file: Path, tmp_path: Path, run_in_session: Any) -> None:
    from layertap.exporter import export

    result = export(custom_file, ["scale"], base_path=tmp_path, name="c", custom_objects=[CUSTOM_LAYERS])
    x = np.ones((2, 3), np.float32)
    np.testing.assert_allclose(run_in_session(result.path, "scale", {"x": x})["scale"], 3 * x)
