"""`layertap layers` and `layertap predict` against the peer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from layertap.cli import EXIT_OK, EXIT_SERVING, EXIT_USAGE, main
from tests.fixtures.client_peer import MODEL, Peer, dense_1, scores

X = np.array([[1.0, 2.0, 3.0, 4.0], [0.0, 1.0, 0.0, -1.0]], dtype=np.float32)


def test_layers_table_and_json(peer_target: str, peer: Peer, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["layers", "--target", peer_target, "--model", MODEL]) == EXIT_OK
    table = capsys.readouterr().out
    assert "model 'toy' version 1" in table
    assert any(line.split()[:3] == ["scores", "heads", "float64[?,"] for line in table.splitlines())
    assert "group features: dense_1, dense_2" in table
    assert main(["layers", "--target", peer_target, "--model", MODEL, "--json"]) == EXIT_OK
    listing = json.loads(capsys.readouterr().out)
    assert listing["layers"]["dense_1"] == {
        "signature": "dense_1",
        "inputs": {"image": "float32[?, 4]"},
        "output": {"alias": "dense_1", "type": "float32[?, 3]"},
        "space": None,  # the peer's SavedModel was not written by layertap's exporter
    }
    assert listing["groups"] == {
        "features": ["dense_1", "dense_2"],
        "heads": ["dense_1", "scores"],
        "split": ["split:0", "split:1"],
    }


def test_predict_npy_to_npz(
    peer_target: str, peer: Peer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    np.save(tmp_path / "x.npy", X)
    out = tmp_path / "out.npz"
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
    assert main([*argv, "-o", str(out)]) == EXIT_OK
    printed = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[:3] for line in printed] == [
        ["dense_1", "float32", "[2, 3]"],
        ["scores", "float64", "[2, 2]"],
    ]
    with np.load(out) as saved:
        np.testing.assert_allclose(saved["dense_1"], dense_1(X), rtol=1e-6)
        np.testing.assert_allclose(saved["scores"], scores(X), rtol=1e-6)


def test_predict_npz_inputs_json(
    peer_target: str, peer: Peer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    np.savez(tmp_path / "in.npz", a=np.ones((1, 2), np.float32), b=np.full((1, 2), 2, np.float32))
    argv = [
        "predict",
        "--target",
        peer_target,
        "--model",
        MODEL,
        "--layer",
        "pair",
        "--json",
        str(tmp_path / "in.npz"),
    ]
    assert main(argv) == EXIT_OK
    assert json.loads(capsys.readouterr().out) == {
        "pair": {"dtype": "float32", "shape": [1, 2], "values": [[3.0, 3.0]]}
    }


def test_exit_codes(peer_target: str, peer: Peer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    np.save(tmp_path / "x.npy", X)
    base = ["predict", "--target", peer_target, "--model", MODEL]
    assert main([*base, "--layer", "dense1", str(tmp_path / "x.npy")]) == EXIT_USAGE
    assert "Nearest: dense_1" in capsys.readouterr().err
    assert main([*base, "--layer", "dense_1", str(tmp_path / "missing.npy")]) == EXIT_USAGE
    assert main([*base, "--layer", "dense_1", str(tmp_path / "x.txt")]) == EXIT_USAGE
    assert main(["layers", "--target", peer_target, "--model", "other"]) == EXIT_SERVING
    assert "Servable not found" in capsys.readouterr().err


def test_entry_point_runs_without_tensorflow(peer_target: str, peer: Peer) -> None:
    code = (
        "import sys; sys.modules['tensorflow'] = None; from layertap.cli import main; "
        f"sys.exit(main(['layers', '--target', '{peer_target}', '--model', '{MODEL}', '--json']))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["version"] == 1
