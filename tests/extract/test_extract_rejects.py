"""Bad records are counted and reported with their ids and why, without stopping the job; --strict
stops at the first one, and what was written before stays whole."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from layertap.errors import InvalidInputError
from layertap.extract import ImagePreprocessing, extract
from tests.extract.conftest import column, keras_features
from tests.fixtures.local_serving import version_dir


def rejects(output: Path) -> dict[str, str]:
    lines = (output / "_rejects.jsonl").read_text().splitlines()
    return {item["id"]: item["reason"] for item in map(json.loads, lines)}


def test_bad_images_are_rejected_by_id(
    tmp_path: Path, untrained_tutorial_cnn: Any, cnn_export: Any, digits: np.ndarray
) -> None:
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    for index in range(3):
        Image.fromarray(np.round(digits[index, :, :, 0] * 255).astype(np.uint8)).save(folder / f"{index}.png")
    (folder / "1b-broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (folder / "1c-empty.jpg").write_bytes(b"")
    summary = extract(
        folder, ["flatten"], tmp_path / "out", version_dir=version_dir(cnn_export),
        preprocessing=ImagePreprocessing(scale=1 / 255), batch_size=2,
    )  # fmt: skip
    assert (summary.records, summary.rows, summary.rejected) == (5, 3, 2)
    found = rejects(tmp_path / "out")
    assert sorted(found) == ["1b-broken.png", "1c-empty.jpg"]
    assert found["1b-broken.png"] == "not a decodable image: Truncated File Read"
    assert found["1c-empty.jpg"].startswith("not a decodable image: cannot identify image file")
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "out")
    assert table.column("id").to_pylist() == ["0.png", "1.png", "2.png"]
    expected = keras_features(untrained_tutorial_cnn, np.round(digits[:3] * 255) / 255, ["flatten"])[
        "flatten"
    ]
    np.testing.assert_allclose(column(table, "flatten", (1600,)), expected, atol=2e-5)


def test_wrong_shapes_missing_values_and_columns(tmp_path: Path, wide_export: Any) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    lines = ["name,x", "ok1,1 2 3 4 5 6 7 8", "short,1 2 3", "empty,", "word,hello", "ok2,8 7 6 5 4 3 2 1"]
    (tmp_path / "a.csv").write_text("\n".join(lines) + "\n")
    pq.write_table(pa.table({"name": ["p0", "p1"], "y": [[1.0] * 8, [2.0] * 8]}), tmp_path / "b.parquet")
    pq.write_table(pa.table({"name": ["q0", "q1"], "x": [[3.0] * 8, None]}), tmp_path / "c.parquet")
    runner = {"version_dir": version_dir(wide_export), "columns": ["x"], "id_column": "name"}
    csv = extract(tmp_path / "a.csv", ["wide"], tmp_path / "csv", **runner)
    assert (csv.rows, csv.rejected) == (2, 3)
    assert rejects(tmp_path / "csv") == {
        "short": "input 'x' takes float32[8], got shape (3,) (3 values)",
        "empty": "no value in column 'x'",
        "word": "expected numbers for input 'x' (float32[8]), got str 'hello'",
    }
    parquet = extract([tmp_path / "b.parquet", tmp_path / "c.parquet"], ["wide"], tmp_path / "pq", **runner)
    assert (parquet.rows, parquet.rejected) == (1, 3)
    assert rejects(tmp_path / "pq") == {
        # A file without the column: each of its rows is reported (file:row, as no id can be read).
        "b.parquet:0": "b.parquet has no column 'x'; its columns: name, y",
        "b.parquet:1": "b.parquet has no column 'x'; its columns: name, y",
        "q1": "no value in column 'x'",
    }


@pytest.mark.parametrize("writer", ["as fast as it can", "slow"])
def test_strict_stops_at_the_first_bad_record(
    tmp_path: Path, wide_export: Any, writer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if writer == "slow":
        # The writer lags behind the runs, so the bad record is decoded while earlier batches still wait
        # to be written: those are written all the same.
        from layertap.extract.shards import ParquetShards

        add = ParquetShards.add

        def slow_add(self: ParquetShards, *args: Any) -> None:
            time.sleep(0.3)
            add(self, *args)

        monkeypatch.setattr(ParquetShards, "add", slow_add)
    rows = ["name,x"] + [f"r{i},{' '.join(['1'] * 8)}" for i in range(10)] + ["bad,1 2"]
    (tmp_path / "a.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(InvalidInputError, match=r"record 'bad': input 'x' takes float32\[8\].*--strict"):
        extract(
            tmp_path / "a.csv", ["wide"], tmp_path / "out", version_dir=version_dir(wide_export),
            columns=["x"], id_column="name", strict=True, batch_size=4, shard_rows=4,
        )  # fmt: skip
    import pyarrow.parquet as pq

    # Every whole shard before the bad record was committed (r0-r7), however the batches in flight were
    # timed; the open shard (r8, r9) was dropped: nothing partial is visible.
    names = [path.name for path in sorted((tmp_path / "out").iterdir())]
    assert names == ["_extract.json", "part-00000.parquet", "part-00001.parquet"]
    ids = pq.read_table(tmp_path / "out").column("id").to_pylist()
    assert ids == [f"r{i}" for i in range(8)]
    # Run again without --strict: it resumes after those shards and rejects the bad record.
    resumed = extract(
        tmp_path / "a.csv", ["wide"], tmp_path / "out", version_dir=version_dir(wide_export),
        columns=["x"], id_column="name", batch_size=4, shard_rows=4,
    )  # fmt: skip
    assert (resumed.resumed_from, resumed.rows, resumed.rejected) == (8, 10, 1)
    assert pq.read_table(tmp_path / "out").column("id").to_pylist() == [f"r{i}" for i in range(10)]
