"""`layertap extract` on the command line: a JSON summary, no progress bar in pipes, argument
mistakes refused before TensorFlow is imported, and bounded memory on ten times the data."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from layertap.cli import EXIT_OK, EXIT_USAGE, main
from layertap.extract import Progress
from tests.fixtures.local_serving import version_dir

ROOT = Path(__file__).resolve().parents[2]


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}


def test_json_summary_and_quiet_in_pipes(tmp_path: Path, wide_export: Any, capsys: Any) -> None:
    np.save(tmp_path / "x.npy", np.arange(40, dtype=np.float32).reshape(5, 8))
    argv = ["extract", str(tmp_path / "x.npy"), "--layer", "wide", "--version-dir", version_dir(wide_export)]
    code = main([*argv, "-o", str(tmp_path / "out"), "--json"])
    captured = capsys.readouterr()
    assert code == EXIT_OK
    summary = json.loads(captured.out)
    assert {
        key: summary[key] for key in ("model", "version", "records", "rows", "rejected", "resumed_from")
    } == {
        "model": "wide",
        "version": 1,
        "records": 5,
        "rows": 5,
        "rejected": 0,
        "resumed_from": 0,
    }
    assert "records/s" not in captured.err  # stderr is no terminal here: no progress bar
    # The same command again resumes: everything is already there.
    assert main([*argv, "-o", str(tmp_path / "out"), "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["resumed_from"] == 5


def test_progress_line_has_rate_and_eta() -> None:
    stream = io.StringIO()
    progress = Progress(200, stream=stream, enabled=True)
    progress.skip(50)
    progress._started -= 2.0  # two seconds ago
    progress.update(50, 2)
    line = stream.getvalue()
    assert line.startswith("\r[############            ] 102/200  51% ")
    rate = float(line.split("% ")[1].split(" records/s")[0])
    assert 20 < rate <= 26  # 52 records in about 2 s (the 50 skipped are not in the rate)
    assert "ETA 0:00:0" in line and line.endswith(", 2 rejected\x1b[K")
    assert not Progress(10, stream=io.StringIO()).enabled  # not a terminal: quiet


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "127.0.0.1:1"], "--target needs --model"),
        (["--version-dir", "models/m/1", "--batch-size", "0"], "--batch-size: invalid value '0'"),
        (["--version-dir", "models/m/1", "--scale", "x"], "invalid number 'x'"),
        (["--version-dir", "models/m/1", "--format", "csv"], "csv input needs the column(s)"),
        (["--version-dir", "models/m/1", "--preprocess", "nocolon"], "named MODULE:NAME"),
    ],
)
def test_mistakes_exit_2_before_tensorflow(tmp_path: Path, args: list[str], message: str) -> None:
    np.save(tmp_path / "x.npy", np.zeros((2, 8), np.float32))
    # TensorFlow is blocked in the child: a mistake must be reported before anything imports it.
    argv = ["extract", str(tmp_path / "x.npy"), "--layer", "wide", "-o", str(tmp_path / "o"), *args]
    script = (
        "import sys; sys.modules['tensorflow'] = None; from layertap.cli import main; "
        f"sys.exit(main({argv!r}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=child_env(), capture_output=True, text=True, check=False
    )
    assert done.returncode == EXIT_USAGE, done.stderr
    assert message in done.stderr
    assert not (tmp_path / "o").exists()


PEAK = (
    "import resource, sys; from layertap.cli import main; code = main(sys.argv[1:]); "
    "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(code)"
)


@pytest.mark.slow
def test_memory_is_flat_over_ten_times_the_data(tmp_path: Path, wide_target: str) -> None:
    """1,000 then 10,000 records of 16 KiB features (16 MB, then 160 MB of output): the peak RSS of
    the job grows by far less than the tenfold data would need if anything were held."""
    peaks = {}
    for records in (1000, 10000):
        data = tmp_path / f"x{records}.npy"
        np.save(data, np.random.default_rng(records).normal(size=(records, 8)).astype(np.float32))
        argv = [
            "extract", str(data), "--layer", "wide", "--target", wide_target, "--model", "wide",
            "-o", str(tmp_path / f"out{records}"), "--shard-rows", "500", "--json",
        ]  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-c", PEAK, *argv], env=child_env(), capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr
        lines = done.stdout.strip().splitlines()
        assert json.loads("\n".join(lines[:-1]))["rows"] == records
        peaks[records] = int(lines[-1]) / 1024  # ru_maxrss is in KiB on Linux: MiB
    # Holding the features would add 144 MiB; streaming adds noise only.
    assert peaks[10000] - peaks[1000] < 30, peaks
