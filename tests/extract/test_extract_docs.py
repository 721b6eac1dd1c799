"""docs/extract.md runs: every bash and python block, in order, in a folder holding what it names."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.exporter.local_serving import serving
from tests.test_readme import readme_blocks

DOCS = Path(__file__).resolve().parents[2] / "docs" / "extract.md"
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_every_block_of_the_extract_guide_runs(tmp_path: Path, cnn_export: Any, digits: np.ndarray) -> None:
    from PIL import Image

    shutil.copytree(cnn_export.path, tmp_path / "models" / "digits" / "1")
    (tmp_path / "digits").mkdir()
    for index, image in enumerate(np.round(digits[:20, :, :, 0] * 255).astype(np.uint8)):
        Image.fromarray(image).save(tmp_path / "digits" / f"{index:03d}.png")
    np.save(tmp_path / "digits.npy", digits[:20])
    blocks = [b for b in readme_blocks(DOCS.read_text("utf-8")) if b.language in ("bash", "python")]
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
    }
    ran = 0
    with serving(cnn_export) as target:
        port = target.rsplit(":", 1)[1]
        for block in blocks:
            if block.skipped:
                continue
            code = block.code.replace("localhost:8500", f"127.0.0.1:{port}")
            command = (
                ["bash", "-euo", "pipefail", "-c", code]
                if block.language == "bash"
                else [sys.executable, "-c", code]
            )
            done = subprocess.run(
                command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False
            )
            assert done.returncode == 0, (
                f"docs/extract.md line {block.line}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
            )
            ran += 1
    assert ran >= 2
    import pyarrow.parquet as pq

    local, remote = pq.read_table(tmp_path / "features"), pq.read_table(tmp_path / "features-remote")
    assert len(local) == len(remote) == 20
    assert local.column("id").to_pylist() == [f"{i:03d}.png" for i in range(20)]
    # PNG pixels / 255 and the float digits differ by rounding only; npy features equal Keras' elsewhere.
    assert remote.column("id").to_pylist() == [f"digits.npy:{i}" for i in range(20)]
    # The Beam pipeline's rows: the same images, the same features as `layertap extract` from files.
    beam = pq.read_table(tmp_path / "features-beam").sort_by("id")
    assert [Path(path).name for path in beam.column("id").to_pylist()] == [f"{i:03d}.png" for i in range(20)]
    for name in ("conv_2", "flatten"):
        got, expected = (table.column(name).combine_chunks().flatten().to_numpy() for table in (beam, local))
        np.testing.assert_allclose(got, expected, atol=1e-5)  # batched differently: last bits may differ
