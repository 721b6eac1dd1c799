"""`layertap predict ... --plot out.png`: one panel per layer, matplotlib imported only when asked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from layertap.cli import EXIT_OK, EXIT_USAGE, main
from layertap.plot import plot_outputs
from tests.fixtures.client_peer import MODEL, Peer

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_every_kind_of_output_is_drawn(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    outputs = {
        "conv": rng.random((2, 9, 9, 20), dtype=np.float32),  # feature maps (first 16 drawn)
        "flatten": rng.random((2, 50), dtype=np.float32),  # a vector: heat strip
        "tokens": rng.random((2, 7, 4), dtype=np.float32),  # a sequence: heat map
        "ids": np.arange(12, dtype=np.int64).reshape(2, 6),
        "words": np.array([b"a", b"b"], dtype=object),  # not numeric: said, not drawn
    }
    path = plot_outputs(outputs, tmp_path / "layers.png")
    assert path.read_bytes().startswith(PNG_MAGIC)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layers.png"]


def test_predict_plot_and_its_mistakes(
    peer_target: str, peer: Peer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    np.save(tmp_path / "x.npy", np.ones((2, 4), np.float32))
    argv = [
        "predict",
        "--target",
        peer_target,
        "--model",
        MODEL,
        "--layer",
        "dense_1,scores",
        str(tmp_path / "x.npy"),
    ]
    assert main([*argv, "--plot", str(tmp_path / "out.png")]) == EXIT_OK
    assert (tmp_path / "out.png").read_bytes().startswith(PNG_MAGIC)
    assert f"drew {tmp_path / 'out.png'}" in capsys.readouterr().err
    calls = peer.count("Predict")
    for bad, expected in [
        ("out.jpg", "expected a file name ending in .png"),
        ("no/out.png", "does not exist"),
    ]:
        assert main([*argv, "--plot", str(tmp_path / bad)]) == EXIT_USAGE
        assert expected in capsys.readouterr().err
    assert peer.count("Predict") == calls  # refused before asking the server


def test_matplotlib_is_imported_only_for_plot() -> None:
    code = "import sys, layertap.cli.query, layertap.plot; print('matplotlib' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
