"""A job killed with SIGKILL at random points and re-run with the same command ends with every record
exactly once (as a row or a reject), and no reader ever sees a partial shard.

The job runs remotely (`layertap extract --target`, no TensorFlow in the child, so a restart costs
a fraction of a second) against `layertap serve` in this process; its input is a CSV whose every
97th row lacks a value, so rejects are resumed too.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from layertap.errors import UsageError
from layertap.extract import extract
from tests.fixtures.local_serving import version_dir

RECORDS = 3000  # 120 shards: room for 12 kills even on a fast, quiet machine
KILLS = 12


def write_csv(path: Path, records: int) -> tuple[list[str], list[str]]:
    """Rows of 8 numbers; returns (ids of good rows, ids of rows with a missing value)."""
    rng = np.random.default_rng(0)
    good, bad = [], []
    lines = ["name,x"]
    for index in range(records):
        values = " ".join(format(float(v), ".9g") for v in rng.normal(size=8).astype(np.float32))
        if index % 97 == 5:
            lines.append(f"r{index},")
            bad.append(f"r{index}")
        else:
            lines.append(f"r{index},{values}")
            good.append(f"r{index}")
    path.write_text("\n".join(lines) + "\n")
    return good, bad


def command(data: Path, output: Path, target: str) -> list[str]:
    return [
        sys.executable, "-m", "layertap.cli", "extract", str(data), "--layer", "wide", "--target", target,
        "--model", "wide", "--column", "x", "--id-column", "name", "-o", str(output),
        "--batch-size", "5", "--shard-rows", "25",
    ]  # fmt: skip


def child_env() -> dict[str, str]:
    root = Path(__file__).resolve().parents[2]
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "src"), str(root)])}


def shards(output: Path) -> list[Path]:
    return sorted(output.glob("part-*.parquet"))


def check_whole(output: Path) -> list[str]:
    """Every visible shard reads completely and shards cover consecutive records; returns the ids."""
    import pyarrow.parquet as pq

    ids: list[str] = []
    position = 0
    for path in shards(output):
        table = pq.read_table(path)  # raises on a partial file
        covered = json.loads(table.schema.metadata[b"layertap"])
        assert covered["start"] == position, path.name
        assert covered["end"] - covered["start"] == len(table) + len(covered["rejects"])
        position = covered["end"]
        ids += table.column("id").to_pylist() + [item["id"] for item in covered["rejects"]]
    return ids


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume(tmp_path: Path, wide_target: str) -> None:
    import pyarrow.parquet as pq

    good, bad = write_csv(tmp_path / "rows.csv", RECORDS)
    output = tmp_path / "out"
    chance = random.Random(20)
    kills = 0
    while kills < KILLS:
        before = len(shards(output)) if output.exists() else 0
        wait_for = before + chance.randint(1, 3)
        child = subprocess.Popen(
            command(tmp_path / "rows.csv", output, wide_target), env=child_env(), stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 120
        while child.poll() is None and time.monotonic() < deadline:
            if output.exists() and len(shards(output)) >= wait_for:
                # Then a random instant up to about one shard's time later: often mid-write.
                time.sleep(chance.uniform(0, 0.1))
                break
            time.sleep(0.005)
        if child.poll() is not None:
            break  # finished before this kill: the job is shorter than planned
        child.send_signal(signal.SIGKILL)
        child.wait()
        kills += 1
        ids = check_whole(output)
        assert len(ids) == len(set(ids))
    assert kills == KILLS, f"the job finished after {kills} kills; make it longer"
    finished = subprocess.run(
        command(tmp_path / "rows.csv", output, wide_target),
        env=child_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    ids = check_whole(output)
    assert sorted(ids) == sorted(good + bad) and len(ids) == RECORDS
    assert not list(output.glob(".part-*"))
    rejects = [json.loads(line) for line in (output / "_rejects.jsonl").read_text().splitlines()]
    assert [item["id"] for item in rejects] == bad
    assert all(item["reason"] == "no value in column 'x'" for item in rejects)
    # The features equal those of one uninterrupted run.
    clean = extract(
        tmp_path / "rows.csv", ["wide"], tmp_path / "clean", targets=[wide_target], model="wide",
        columns=["x"], id_column="name", batch_size=5, shard_rows=25,
    )  # fmt: skip
    assert clean.rows == len(good)
    resumed, once = pq.read_table(output), pq.read_table(tmp_path / "clean")
    assert resumed.column("id").to_pylist() == good
    assert resumed.column("wide").equals(once.column("wide"))


def test_another_version_is_refused_not_mixed(tmp_path: Path, wide_export: Any) -> None:
    import shutil

    np.save(tmp_path / "x.npy", np.ones((5, 8), np.float32))
    first = extract(tmp_path / "x.npy", ["wide"], tmp_path / "out", version_dir=version_dir(wide_export))
    assert (first.version, first.rows) == (1, 5)
    second = Path(version_dir(wide_export)).parent / "2"
    shutil.copytree(version_dir(wide_export), second)
    try:
        before = sorted(path.name for path in (tmp_path / "out").iterdir())
        with pytest.raises(UsageError, match=r"version: was 1, now 2\); refusing to mix"):
            extract(tmp_path / "x.npy", ["wide"], tmp_path / "out", version_dir=str(second))
        assert sorted(path.name for path in (tmp_path / "out").iterdir()) == before
    finally:
        shutil.rmtree(second)
    # Another input into the same output is refused too.
    np.save(tmp_path / "y.npy", np.ones((5, 8), np.float32))
    with pytest.raises(UsageError, match=r"input: was"):
        extract(tmp_path / "y.npy", ["wide"], tmp_path / "out", version_dir=version_dir(wide_export))
