"""The writer side of a job without TensorFlow: shards streamed as row groups keep the metadata a resumed
job relies on, an aborted shard leaves nothing behind, and the writer thread hands its errors back."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

from layertap.extract.pipeline import Behind
from layertap.extract.records import Reject
from layertap.extract.runners import OutputSpec
from layertap.extract.shards import ParquetShards

OUTPUTS = {"f": OutputSpec("f", "sig", (2, 3), np.dtype(np.float32))}


def rows(start: int, count: int) -> np.ndarray:
    return np.arange(start * 6, (start + count) * 6, dtype=np.float32).reshape(count, 2, 3)


def test_a_shard_streamed_in_row_groups_reads_whole_with_its_range(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    # Rows of 24 bytes: a row group once 48 bytes are buffered, a shard every 7 records.
    shards = ParquetShards(tmp_path, OUTPUTS, {"model": "m"}, shard_rows=7, row_group_bytes=48)
    for start in range(0, 9, 3):  # records 0..8 in batches of 3, record 5 rejected
        kept = [i for i in range(start, start + 3) if i != 5]
        rejects = [Reject("r5", "bad")] if 5 in range(start, start + 3) else []
        shards.add([f"r{i}" for i in kept], {"f": np.concatenate([rows(i, 1) for i in kept])}, rejects)
        if start < 6:  # each batch went to the hidden file as a row group; nothing committed yet
            assert len(list(tmp_path.glob(".part-*"))) == 1 and not list(tmp_path.glob("part-*"))
    shards.add(["r9", "r10"], {"f": rows(9, 2)}, [])  # the second shard's start
    assert shards.finish() == (10, [Reject("r5", "bad")])
    assert not list(tmp_path.glob(".part-*"))
    first, second = sorted(tmp_path.glob("part-*.parquet"))
    assert pq.ParquetFile(first).metadata.num_row_groups == 3  # 3 + 2 + 3 rows
    table = pq.read_table(first)
    assert json.loads(table.schema.metadata[b"layertap"]) == {
        "model": "m", "start": 0, "end": 9, "rejects": [{"id": "r5", "reason": "bad"}],
    }  # fmt: skip
    assert table.column("id").to_pylist() == ["r0", "r1", "r2", "r3", "r4", "r6", "r7", "r8"]
    flat = table.column("f").combine_chunks().flatten().to_numpy()
    np.testing.assert_array_equal(flat.reshape(8, 2, 3), np.delete(rows(0, 9), 5, axis=0))
    assert str(table.schema.field("f").type) == "fixed_size_list<element: float>[6]"
    tail = pq.read_table(second)
    covered = json.loads(tail.schema.metadata[b"layertap"])
    assert (covered["start"], covered["end"], tail.column("id").to_pylist()) == (9, 11, ["r9", "r10"])


def test_an_aborted_shard_leaves_nothing_and_is_written_again(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    shards = ParquetShards(tmp_path, OUTPUTS, {}, shard_rows=4, row_group_bytes=24)
    shards.add(["a", "b", "c", "d"], {"f": rows(0, 4)}, [])  # one whole shard
    shards.add(["e", "f"], {"f": rows(4, 2)}, [])  # written as a row group, never committed
    assert len(list(tmp_path.glob(".part-*"))) == 1
    shards.abort()
    assert not list(tmp_path.glob(".part-*"))
    again = ParquetShards(tmp_path, OUTPUTS, {}, shard_rows=4)
    assert (again.next_index, again.position) == (1, 4)
    again.add(["e", "f"], {"f": rows(4, 2)}, [])
    again.finish()
    assert pq.read_table(tmp_path).column("id").to_pylist() == ["a", "b", "c", "d", "e", "f"]


def test_behind_consumes_in_order_in_another_thread() -> None:
    seen: list[tuple[int, str]] = []
    with Behind(lambda item: seen.append((item, threading.current_thread().name)), depth=2) as writer:
        for item in range(20):
            writer.put(item)
    assert [item for item, _ in seen] == list(range(20))
    assert {name for _, name in seen} == {"layertap-behind"}


def test_behind_raises_the_consumers_error_and_consumes_nothing_after_it() -> None:
    seen: list[int] = []

    def consume(item: int) -> None:
        if item == 3:
            raise OSError(28, "No space left on device")
        seen.append(item)

    with pytest.raises(OSError, match="No space left"), Behind(consume, depth=1) as writer:
        for item in range(50):
            writer.put(item)
    assert seen == [0, 1, 2]


def test_behind_drops_what_is_queued_when_the_caller_fails() -> None:
    started, release = threading.Event(), threading.Event()
    seen: list[int] = []

    def consume(item: int) -> None:
        started.set()
        release.wait(10)
        seen.append(item)

    with pytest.raises(KeyError), Behind(consume, depth=4) as writer:
        for item in range(4):
            writer.put(item)
        started.wait(10)
        release.set()
        raise KeyError("inference failed")
    assert seen == [0]
