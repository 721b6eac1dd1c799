"""The demo's serving half: config files as committed, a background server that never outlives its block."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from layertap.demo.serving import compare_layers, running_server, write_serving_configs

ROOT = Path(__file__).resolve().parents[2]


def test_production_config_is_the_committed_file_and_local_config_points_here(tmp_path: Path) -> None:
    from layertap.config import read_model_server_config

    production, local = write_serving_configs(
        "tutorial_cnn",
        tmp_path / "demo_models" / "tutorial_cnn",
        serving_config_dir=tmp_path / "serving_config",
        local_config=tmp_path / "demo_models" / "models.config",
    )
    assert production.read_text() == (ROOT / "serving_config" / "models.config").read_text()
    (entry,) = read_model_server_config(local).model_config_list.config
    assert (entry.name, entry.base_path) == ("tutorial_cnn", str(tmp_path / "demo_models" / "tutorial_cnn"))


def test_background_server_answers_like_keras_and_is_stopped_even_on_error(
    exported: tuple[Path, Any], small_cnn: Any, tmp_path: Path
) -> None:
    base, _ = exported
    config = tmp_path / "models.config"
    config.write_text(
        f'model_config_list {{ config {{ name: "cnn" base_path: "{base}" model_platform: "tensorflow" }} }}'
    )
    lines: list[str] = []
    images = np.random.default_rng(1).random((4, 12, 12, 1), dtype=np.float32)
    with pytest.raises(RuntimeError, match="boom"), running_server(config, log=lines.append) as port:
        differences = compare_layers(small_cnn, "cnn", port, ["conv_1", "flatten"], images, log=lines.append)
        assert differences["conv_1"] < 1e-5 and differences["flatten"] < 1e-5
        pid = int(lines[0].split("pid ")[1].split(")")[0])
        raise RuntimeError("boom")
    assert lines[-1] == "layertap serve stopped (exit code 0)"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    table = [line for line in lines if line.lstrip().startswith(("conv_1", "flatten"))]
    assert [line.split()[1] for line in table] == ["(4,", "(4,"]


@pytest.mark.slow
def test_the_whole_demo_runs_and_leaves_nothing_running(tmp_path: Path) -> None:
    import subprocess
    import sys

    import psutil

    before = {p.pid for p in psutil.Process().children(recursive=True)}
    result = subprocess.run(
        [sys.executable, "-m", "layertap.demo"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout.splitlines()
    assert "published version 1 at demo_models/tutorial_cnn/1" in out
    table = {
        line.split()[0]: line.split() for line in out if line.startswith("  conv_") or "(32, 1600)" in line
    }
    assert table["conv_1"][1:5] == ["(32,", "26,", "26,", "32)"]
    assert table["conv_2"][1:5] == ["(32,", "11,", "11,", "64)"]
    assert table["flatten"][1:3] == ["(32,", "1600)"]
    assert all(float(row[-1]) < 1e-4 for row in table.values())  # served == Keras
    assert "layertap serve stopped (exit code 0)" in out
    assert (tmp_path / "serving_config" / "models.config").read_text() == (
        ROOT / "serving_config" / "models.config"
    ).read_text()
    assert {p.pid for p in psutil.Process().children(recursive=True)} == before
