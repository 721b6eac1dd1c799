"""Where records come from: a folder of images, .npy/.npz arrays, text lines, Parquet/CSV columns, or
TFRecord files of tf.train.Example. Each source yields `Pending` records in a fixed order and names
each by an id that points back at it (`cat/0001.png`, `train.npy:17`, `notes.txt:3`, `rows.csv:42`).

`open_source` picks the reader from the files' suffixes (or `format`); files are read in sorted order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from layertap.errors import InvalidInputError, UsageError
from layertap.extract.images import IMAGE_SUFFIXES, ImagePreprocessing, decode_image
from layertap.extract.records import InputSpec, Pending

__all__ = ["FORMATS", "ReadingKeywords", "Source", "open_source"]

FORMATS = ("images", "npy", "npz", "text", "parquet", "csv", "tfrecord")
_SUFFIXES = {
    ".npy": "npy",
    ".npz": "npz",
    ".txt": "text",
    ".parquet": "parquet",
    ".csv": "csv",
    ".tfrecord": "tfrecord",
    ".tfrecords": "tfrecord",
    **dict.fromkeys(IMAGE_SUFFIXES, "images"),
}


@dataclass
class Source:
    """Records of one format from sorted files.

    Attributes:
        format: one of FORMATS.
        files: the files read, in order.
        columns: Parquet/CSV columns making one example (several numeric columns form a vector).
        id_column: Parquet/CSV column naming each row (default: `file:row`).
        feature: the tf.train.Example feature holding the input (TFRecord).
        npz_key: the array of an .npz file (default: its only array).
        preprocessing: how images become inputs.
    """

    format: str
    files: list[Path]
    columns: tuple[str, ...] = ()
    id_column: str | None = None
    feature: str | None = None
    npz_key: str | None = None
    preprocessing: ImagePreprocessing = field(default_factory=ImagePreprocessing)
    root: Path | None = None

    def describe(self) -> dict[str, Any]:
        """What identifies the input, recorded with the output so a resumed run reads the same."""
        return {
            "format": self.format,
            "files": [str(path) for path in self.files],
            "columns": list(self.columns),
            "id_column": self.id_column,
            "feature": self.feature,
            "npz_key": self.npz_key,
        }

    def count(self) -> int | None:
        """How many records there are, when it is cheap to know (for the progress bar's ETA)."""
        if self.format == "images":
            return len(self.files)
        if self.format in ("npy", "npz"):
            return sum(len(self._array(path)) for path in self.files)
        if self.format == "parquet":
            import pyarrow.parquet as pq

            return sum(int(pq.ParquetFile(path).metadata.num_rows) for path in self.files)
        return None

    def records(self) -> Iterator[Pending]:
        """Every record, in order."""
        reader: Callable[[Path], Iterator[Pending]] = getattr(self, f"_{self.format}")
        for path in self.files:
            yield from reader(path)

    def _images(self, path: Path) -> Iterator[Pending]:
        name = str(path.relative_to(self.root)) if self.root is not None else str(path)
        preprocessing = self.preprocessing
        resolved: list[Callable[[np.ndarray], Any] | None] = []

        def load(spec: InputSpec) -> Any:
            if not resolved:
                resolved.append(preprocessing.resolve())
            return decode_image(path, spec, preprocessing, resolved[0])

        yield Pending(name, load)

    def _array(self, path: Path) -> Any:
        if self.format == "npy":
            # Memory-mapped: rows are read as they are used, whatever the file's size.
            return np.load(path, mmap_mode="r", allow_pickle=False)
        with np.load(path, allow_pickle=False) as archive:
            keys = list(archive.keys())
            key = self.npz_key or (keys[0] if len(keys) == 1 else None)
            if key not in keys:
                raise UsageError(
                    f"{path}: choose the array with npz_key (--npz-key); it holds {', '.join(keys)}"
                    if key is None
                    else f"{path} has no array {key!r}; it holds {', '.join(keys)}"
                )
            return archive[key]

    def _npy(self, path: Path) -> Iterator[Pending]:
        array = self._array(path)
        for index in range(len(array)):
            yield Pending(f"{path.name}:{index}", _array_row(array, index))

    _npz = _npy

    def _text(self, path: Path) -> Iterator[Pending]:
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                yield Pending(f"{path.name}:{number}", _constant(line.rstrip("\n").rstrip("\r")))

    def _parquet(self, path: Path) -> Iterator[Pending]:
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(path)
        present = set(parquet.schema_arrow.names)
        missing = [name for name in (*self.columns, self.id_column) if name and name not in present]
        row = 0
        if missing:
            for row in range(parquet.metadata.num_rows):
                yield Pending(f"{path.name}:{row}", _missing(path, missing, sorted(present)))
            return
        wanted = list(dict.fromkeys([*self.columns, *([self.id_column] if self.id_column else [])]))
        for batch in parquet.iter_batches(batch_size=1024, columns=wanted):
            values = {name: batch.column(name).to_pylist() for name in wanted}
            for position in range(batch.num_rows):
                record = {name: values[name][position] for name in wanted}
                yield Pending(self._row_id(path, row, record), _row_loader(self.columns, record))
                row += 1

    def _csv(self, path: Path) -> Iterator[Pending]:
        import csv

        with path.open(newline="", encoding="utf-8") as handle:
            rows = csv.DictReader(handle)
            present = list(rows.fieldnames or [])
            missing = [name for name in (*self.columns, self.id_column) if name and name not in present]
            for row, record in enumerate(rows):
                if missing:
                    yield Pending(f"{path.name}:{row}", _missing(path, missing, present))
                    continue
                parsed = {name: _csv_value(record[name]) for name in self.columns}
                yield Pending(self._row_id(path, row, record), _row_loader(self.columns, parsed))

    def _row_id(self, path: Path, row: int, record: dict[str, Any]) -> str:
        if self.id_column is not None and record.get(self.id_column) not in (None, ""):
            return str(record[self.id_column])
        return f"{path.name}:{row}"

    def _tfrecord(self, path: Path) -> Iterator[Pending]:
        from layertap.extract.examples import example_loader, read_tfrecord

        feature = self.feature or ""
        for index, serialized in enumerate(read_tfrecord(path)):
            yield Pending(f"{path.name}:{index}", example_loader(serialized, feature, self.preprocessing))


def _array_row(array: Any, row: int) -> Callable[[InputSpec], Any]:
    # A copy: the source's array may be a memory map of the whole file.
    return lambda spec: np.array(array[row])


def _constant(value: Any) -> Callable[[InputSpec], Any]:
    return lambda spec: value


def _missing(path: Path, missing: list[str], present: list[str]) -> Callable[[InputSpec], Any]:
    def load(spec: InputSpec) -> Any:
        raise InvalidInputError(
            f"{path.name} has no column {', '.join(map(repr, missing))}; its columns: {', '.join(present)}"
        )

    return load


def _csv_value(text: str | None) -> Any:
    """A CSV field: None when empty, a number, a space-separated vector of numbers, or the text."""
    if text is None or text.strip() == "":
        return None
    parts = text.split()
    try:
        numbers = [float(part) for part in parts]
    except ValueError:
        return text
    return numbers[0] if len(numbers) == 1 else numbers


def _row_loader(columns: Sequence[str], record: dict[str, Any]) -> Callable[[InputSpec], Any]:
    def load(spec: InputSpec) -> Any:
        empty = [name for name in columns if record[name] is None]
        if empty:
            raise InvalidInputError(f"no value in column {', '.join(map(repr, empty))}")
        if len(columns) == 1:
            return record[columns[0]]
        return [record[name] for name in columns]

    return load


class ReadingKeywords(TypedDict, total=False):
    """`open_source`'s keywords (see there), as `extract()` takes and hands them on."""

    format: str | None
    columns: Sequence[str]
    id_column: str | None
    feature: str | None
    npz_key: str | None
    preprocessing: ImagePreprocessing | None


def open_source(
    inputs: Sequence[Path | str],
    *,
    format: str | None = None,
    columns: Sequence[str] = (),
    id_column: str | None = None,
    feature: str | None = None,
    npz_key: str | None = None,
    preprocessing: ImagePreprocessing | None = None,
) -> Source:
    """The source reading `inputs` (files, or one folder of images or of files of one format).

    Raises:
        UsageError: nothing to read, a mix of formats, an unknown suffix, or a format's setting
            missing (columns for Parquet/CSV, feature for TFRecord).
    """
    if format is not None and format not in FORMATS:
        raise UsageError(f"unknown input format {format!r}; accepted: {', '.join(FORMATS)}")
    paths = [Path(item) for item in inputs]
    if not paths:
        raise UsageError("no input given: name a folder of images or files (.npy, .npz, .txt, ...)")
    absent = [str(path) for path in paths if not path.exists()]
    if absent:
        raise UsageError(f"input not found: {', '.join(absent)}")
    root = paths[0] if len(paths) == 1 and paths[0].is_dir() else None
    files = sorted(
        (item for item in root.rglob("*") if item.is_file() and not item.name.startswith("."))
        if root is not None
        else paths
    )
    if root is not None:
        # A folder is read as a folder of images unless a format is given; other files are ignored.
        files = [item for item in files if _SUFFIXES.get(item.suffix.lower()) == (format or "images")]
    found = {_SUFFIXES.get(path.suffix.lower()) for path in files}
    if format is None:
        if None in found or len(found) != 1:
            names = sorted({path.suffix or path.name for path in files})
            raise UsageError(
                f"cannot tell the input format from {', '.join(names) or 'an empty folder'}; give "
                f"--format, one of {', '.join(FORMATS)}"
            )
        format = found.pop()
    assert format is not None
    if not files:
        raise UsageError(f"no {format} files in {', '.join(map(str, paths))}")
    if format in ("parquet", "csv") and not columns:
        raise UsageError(f"{format} input needs the column(s) holding the input: --column NAME")
    if format == "tfrecord" and not feature:
        raise UsageError("TFRecord input needs the tf.train.Example feature holding the input: --feature KEY")
    return Source(
        format,
        files,
        columns=tuple(columns),
        id_column=id_column,
        feature=feature,
        npz_key=npz_key,
        preprocessing=preprocessing or ImagePreprocessing(),
        root=root if format == "images" else None,
    )
