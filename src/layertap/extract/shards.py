"""Parquet output in shards, each written whole or not at all, and the resume that relies on it.

Layout of an output directory:

    extract.json          what produced it: model, version, space identities, columns, input
    part-00000.parquet    one row per input record: `id`, then one column per layer
    part-00001.parquet    ...
    rejects.jsonl         records left out, one JSON object a line: {"id": ..., "reason": ...}

A shard is written to a hidden temporary name (its rows streamed as row groups while the job runs),
closed, flushed to disk, then renamed into place (a rename within one directory is atomic on POSIX
filesystems), so a reader or a resumed job sees whole shards only. Records are consumed in the
source's fixed order and shards are committed in that order, so the committed shards always cover a
prefix of the records: each shard's metadata records the position range it covers (`start`, `end`)
and the rejects among them. A resumed job skips the first
`end` records of the last shard and carries on: every record ends up in exactly one shard (or one
reject), however often the job was killed.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from layertap._atomic import sync_directory, write_atomically
from layertap.errors import UsageError
from layertap.extract.records import Reject
from layertap.extract.runners import OutputSpec

__all__ = ["STATE_FILE", "ParquetShards", "read_state", "write_state"]

STATE_FILE = "_extract.json"
REJECTS_FILE = "_rejects.jsonl"
METADATA_KEY = b"layertap"
_SHARD = re.compile(r"^part-(\d{5,})\.parquet$")


def read_state(output: Path) -> dict[str, Any] | None:
    """The state a previous run left in `output`, or None."""
    path = output / STATE_FILE
    if not path.exists():
        return None
    loaded = json.loads(path.read_text(encoding="utf-8"))
    return loaded if isinstance(loaded, dict) else None


def write_state(output: Path, state: Mapping[str, Any]) -> None:
    write_atomically(output / STATE_FILE, (json.dumps(state, indent=2) + "\n").encode("utf-8"))


def _arrow_type(spec: OutputSpec) -> Any:
    import pyarrow as pa

    element = pa.string() if spec.dtype == np.dtype(object) else pa.from_numpy_dtype(spec.dtype)
    if None in spec.shape:
        return pa.list_(element)  # an open dimension: rows differ in length
    return pa.list_(element, math.prod(d or 0 for d in spec.shape))


class ParquetShards:
    """Writes rows and rejects as numbered shards, streaming each shard's rows as row groups.

    Rows are buffered up to `row_group_bytes` of features and then written as one row group of the
    shard's hidden temporary file, so memory holds one row group, never a shard; the shard is closed,
    synced and renamed into place once it covers `shard_rows` records (or `shard_bytes` of features).
    Not thread-safe: one thread calls `add`, `commit`, `finish` and `abort` (the job's writer thread).

    Args:
        output: the output directory (created by the caller).
        outputs: the feature columns.
        metadata: key/values stored in every shard's metadata (model, version, spaces...).
        shard_rows: commit a shard after this many records (rows and rejects).
        shard_bytes: ... or once its features reach this many bytes (bounds a shard's size).
        row_group_bytes: features buffered before they are written as one row group.
    """

    def __init__(
        self,
        output: Path,
        outputs: Mapping[str, OutputSpec],
        metadata: Mapping[str, Any],
        *,
        shard_rows: int = 4096,
        shard_bytes: int = 64 << 20,
        row_group_bytes: int = 16 << 20,
    ) -> None:
        import pyarrow as pa

        self.output = output
        self.outputs = dict(outputs)
        self.shard_rows = shard_rows
        self.shard_bytes = shard_bytes
        self.row_group_bytes = row_group_bytes
        self._schema = pa.schema(
            [pa.field("id", pa.string(), nullable=False)]
            + [pa.field(name, _arrow_type(spec), nullable=False) for name, spec in self.outputs.items()]
        )
        self._metadata = dict(metadata)
        self._ids: list[str] = []
        self._columns: dict[str, list[np.ndarray]] = {name: [] for name in self.outputs}
        self._buffered = 0  # feature bytes buffered for the next row group
        self._written = 0  # feature bytes of the open shard (written and buffered)
        self._rejects: list[Reject] = []
        self._file: BinaryIO | None = None
        self._writer: Any = None
        self.next_index, self.position = self._resume_point()
        self._start = self.position

    def _resume_point(self) -> tuple[int, int]:
        """(next shard number, records covered) from the committed shards; clears leftovers."""
        import pyarrow.parquet as pq

        for leftover in self.output.glob(".part-*"):
            leftover.unlink()  # a shard being written when the job was killed: never committed
        index, position = 0, 0
        for path in sorted(self.shards()):
            number = int(_SHARD.match(path.name).group(1))  # type: ignore[union-attr]
            covered = json.loads(pq.read_schema(path).metadata[METADATA_KEY])
            if number != index or covered["start"] != position:
                raise UsageError(
                    f"{self.output}: shard {path.name} covers records from {covered['start']}, expected "
                    f"part-{index:05d} from {position}; the directory was changed by hand: use a new output"
                )
            index, position = number + 1, covered["end"]
        return index, position

    def shards(self) -> list[Path]:
        return sorted(path for path in self.output.iterdir() if _SHARD.match(path.name))

    def _path(self) -> Path:
        return self.output / f"part-{self.next_index:05d}.parquet"

    def _temporary(self) -> Path:
        return self.output / f".{self._path().name}.tmp-{os.getpid()}"

    def add(self, ids: Sequence[str], features: Mapping[str, np.ndarray], rejects: Sequence[Reject]) -> None:
        """Buffer one batch's rows (and rejects); writes a row group, or commits a shard, when full."""
        self._ids.extend(ids)
        for name in self.outputs:
            array = features[name]
            self._columns[name].append(array)
            self._buffered += array.nbytes
            self._written += array.nbytes
        self._rejects.extend(rejects)
        self.position += len(ids) + len(rejects)
        if self.position - self._start >= self.shard_rows or self._written >= self.shard_bytes:
            self.commit()
        elif self._buffered >= self.row_group_bytes:
            self._flush()

    def _open(self) -> None:
        import pyarrow.parquet as pq

        self._file = self._temporary().open("wb")
        # Features are written plain: dictionary-encoding and compressing float lists cost more than
        # they save (1,024 rows of 7,744 float32: 7.0 s with pyarrow's defaults, 1.5 s without), and
        # min/max statistics of a feature column serve no reader.
        self._writer = pq.ParquetWriter(
            self._file,
            self._schema,
            use_dictionary=["id"],
            compression={"id": "snappy", **dict.fromkeys(self.outputs, "none")},
            write_statistics=["id"],
        )

    def _flush(self) -> None:
        """Write the buffered rows as one row group of the open shard."""
        import pyarrow as pa

        if not self._ids:
            return
        if self._writer is None:
            self._open()
        columns = [pa.array(self._ids, type=pa.string())]
        for name, spec in self.outputs.items():
            columns.append(_column(self._columns[name], spec, self._schema.field(name).type))
        table = pa.Table.from_arrays(columns, schema=self._schema)
        self._writer.write_table(table, row_group_size=len(self._ids))
        self._ids = []
        self._columns = {name: [] for name in self.outputs}
        self._buffered = 0

    def commit(self) -> None:
        """Close the open shard with what is buffered and rename it into place (nothing when it covers
        no record)."""
        if self.position == self._start:
            return
        self._flush()
        if self._writer is None:
            self._open()  # a shard of rejects only: no row, but its range is committed all the same
        covered = {
            **self._metadata,
            "start": self._start,
            "end": self.position,
            "rejects": [{"id": r.id, "reason": r.reason} for r in self._rejects],
        }
        self._writer.add_key_value_metadata(_schema_metadata(self._schema, covered))
        self._writer.close()
        assert self._file is not None
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._writer = self._file = None
        self._temporary().replace(self._path())
        sync_directory(self.output)
        self.next_index += 1
        self._start = self.position
        self._rejects = []
        self._written = 0

    def abort(self) -> None:
        """Drop the shard being written (its records are written again when the job is resumed)."""
        # Called after an error, possibly this writer's own (a full disk): closing may fail the same way.
        with contextlib.suppress(Exception):
            if self._writer is not None:
                self._writer.close()
        with contextlib.suppress(Exception):
            if self._file is not None:
                self._file.close()
        self._writer = self._file = None
        self._temporary().unlink(missing_ok=True)

    def finish(self) -> tuple[int, list[Reject]]:
        """Commit what is buffered and write rejects.jsonl from every shard; (rows, rejects)."""
        import pyarrow.parquet as pq

        self.commit()
        rows, rejects = 0, list[Reject]()
        for path in self.shards():
            metadata = pq.read_metadata(path)
            rows += metadata.num_rows
            covered = json.loads(metadata.schema.to_arrow_schema().metadata[METADATA_KEY])
            rejects.extend(Reject(item["id"], item["reason"]) for item in covered["rejects"])
        text = "".join(json.dumps({"id": r.id, "reason": r.reason}) + "\n" for r in rejects)
        write_atomically(self.output / REJECTS_FILE, text.encode("utf-8"))
        return rows, rejects


def _schema_metadata(schema: Any, covered: Mapping[str, Any]) -> dict[str, str]:
    """The footer key/values that give a shard its `layertap` metadata once its range is known.

    A ParquetWriter takes its schema, metadata included, when it opens, but the records a shard covers
    are known only when it closes. Arrow keeps a file's Arrow schema, metadata included, in the footer
    under `ARROW:schema` (base64 of the IPC-serialized schema: apache/arrow
    cpp/src/parquet/arrow/writer.cc, GetSchemaMetadata), which readers such as `pq.read_table` use;
    the same value, computed here from the final schema (byte-identical to what `pq.write_table`
    stores), replaces the one written at open. The plain key is for readers of Parquet's own footer.
    """
    text = json.dumps(covered)
    final = schema.with_metadata({METADATA_KEY: text.encode("utf-8")})
    return {
        "ARROW:schema": base64.b64encode(final.serialize().to_pybytes()).decode("ascii"),
        METADATA_KEY.decode("ascii"): text,
    }


def _column(arrays: list[np.ndarray], spec: OutputSpec, arrow_type: Any) -> Any:
    """One feature column of a row group: each batch's array becomes a chunk viewing its buffer (no copy
    and no Python object per row), except for strings and open dimensions, which go row by row."""
    import pyarrow as pa

    if spec.dtype == np.dtype(object) or None in spec.shape:
        values = [row.reshape(-1).tolist() for array in arrays for row in array]
        return pa.array(values, type=arrow_type)
    size = arrow_type.list_size
    chunks = [
        pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(array).reshape(-1)), size)
        for array in arrays
    ]
    return pa.chunked_array(chunks, type=arrow_type)
