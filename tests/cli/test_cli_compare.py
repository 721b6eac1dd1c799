"""`layertap compare` as a command: its table, JSON report, exit codes and refusals, on the versions of
`gate_repo` (tests/fixtures/gate_repo.py). What the comparison finds is tested in tests/compare."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from layertap.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, main
from tests.fixtures.gate_repo import ROWS, SIGNATURES, Repo


def test_cli_exit_codes_json_and_inputs(
    gate_repo: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new, other = (str(gate_repo.version(n)) for n in (1, 3, 4))
    assert main(["compare", old, new, "--rows", str(ROWS)]) == EXIT_OK
    table = capsys.readouterr().out
    assert "no shared signature changed" in table
    assert any(line.split()[:2] == ["vec", "compatible"] for line in table.splitlines())

    assert main(["compare", old, other, "--json", "--rows", str(ROWS)]) == EXIT_FAILURE
    report = json.loads(capsys.readouterr().out)
    assert report["changed"] == SIGNATURES
    assert report["rows"] == ROWS
    assert report["signatures"]["b"]["outputs"]["b"]["new"] == {"shape": [ROWS, 16], "dtype": "float32"}

    rows = np.random.default_rng(3).standard_normal((12, 8)).astype(np.float32)
    np.save(tmp_path / "rows.npy", rows)
    assert main(["compare", old, new, "--inputs", str(tmp_path / "rows.npy"), "--json"]) == EXIT_OK
    captured = capsys.readouterr()
    assert json.loads(captured.out)["rows"] == 12
    assert "give at least 101 rows" in captured.err
    assert "share 91% of them by chance" in captured.err  # 10 / (12 - 1)


def test_cli_usage_errors_exit_2(gate_repo: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = str(gate_repo.version(1))
    assert main(["compare", old, str(tmp_path)]) == EXIT_USAGE
    assert "is not a version directory" in capsys.readouterr().err
    assert main(["compare", old, "s3://bucket/emb/2"]) == EXIT_USAGE
    assert "s3:// is not readable here" in capsys.readouterr().err
    assert main(["compare", "--target", "127.0.0.1:1", "1", "two", "--model", "emb"]) == EXIT_USAGE
    assert "version numbers" in capsys.readouterr().err
    assert main(["compare", "--target", "127.0.0.1:1", "1", "2"]) == EXIT_USAGE
    assert "--target needs --model" in capsys.readouterr().err
    np.save(tmp_path / "wide.npy", np.zeros((4, 9), np.float32))
    assert main(["compare", old, old, "--inputs", str(tmp_path / "wide.npy")]) == EXIT_USAGE
    assert "could not run the probe rows" in capsys.readouterr().err
