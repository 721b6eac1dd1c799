"""One extraction job: records from a source, features from a runner, rows into an output directory.

Three stages overlap, each bounded: a thread reads and decodes the next batches into one input array
while the current one runs (`ahead`); runners keep a few batches in flight (`ordered_map`: two
in-process, two per server remotely); a writer thread streams the features into the open Parquet
shard as row groups and commits shards as they fill (`Behind`). Memory depends on the batch size and
the queue depths, never on the dataset, and the job runs at the pace of its slowest stage.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from layertap._atomic import write_atomically
from layertap.errors import InvalidInputError, UsageError
from layertap.extract.pipeline import Behind, ahead, ordered_map
from layertap.extract.progress import Progress
from layertap.extract.records import InputSpec, Pending, Reject, conform
from layertap.extract.runners import OutputSpec, Runner
from layertap.extract.shards import REJECTS_FILE, ParquetShards, read_state, write_state
from layertap.extract.sources import Source

__all__ = ["OUTPUT_FORMATS", "ExtractSummary", "run_job"]

logger = logging.getLogger(__name__)

OUTPUT_FORMATS = ("parquet", "npy")
STATE_FORMAT = 1
# What must be equal for a run to continue a previous one's output.
_SAME = ("model", "version", "outputs", "input", "output_format", "spaces")


@dataclass(frozen=True)
class ExtractSummary:
    """What a job did. `records` counts every record of the input (skipped ones included).

    `seconds` is the job itself: from `run_job`'s start to the last shard and the state file written,
    so reading, decoding, inference, writing, fsyncs and the final listing of the shards are in it.
    `setup_seconds` is what came before, set by `extract`: creating the runner (loading the version
    and its warm-up run in-process; the metadata call and one warm-up call per server remotely). A
    signature called in a loop on decoded arrays excludes the same set-up, so `rate` compares with it.
    """

    output: Path
    model: str
    version: int
    records: int
    rows: int
    rejected: int
    resumed_from: int
    seconds: float
    rejects: list[Reject] = field(default_factory=list)
    setup_seconds: float = 0.0

    @property
    def rate(self) -> float:
        """Records per second processed by this run (records a previous run wrote excluded), over
        `seconds` (set-up excluded)."""
        return (self.records - self.resumed_from) / self.seconds if self.seconds > 0 else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "output": str(self.output),
            "model": self.model,
            "version": self.version,
            "records": self.records,
            "rows": self.rows,
            "rejected": self.rejected,
            "resumed_from": self.resumed_from,
            "seconds": round(self.seconds, 3),
            "setup_seconds": round(self.setup_seconds, 3),
            "records_per_second": round(self.rate, 1),
            "rejects": [{"id": r.id, "reason": r.reason} for r in self.rejects[:100]],
        }


@dataclass
class _Batch:
    ids: list[str]
    values: list[Any]
    rejects: list[Reject]
    array: np.ndarray | None = None  # the values stacked into one input (by the reader thread)


def _state(runner: Runner, source: Source, output_format: str) -> dict[str, Any]:
    return {
        "format": STATE_FORMAT,
        "model": runner.model,
        "version": runner.version,
        "spaces": runner.spaces,
        "outputs": {
            name: {"signature": spec.signature, "shape": list(spec.shape), "dtype": spec.dtype.name}
            for name, spec in runner.outputs.items()
        },
        "input": {**source.describe(), "alias": runner.input.alias, "spec": runner.input.describe()},
        "output_format": output_format,
    }


def _check_same(output: Path, previous: Mapping[str, Any], state: Mapping[str, Any]) -> None:
    """Refuse to continue an output written from another model, version, layer set or input."""
    changed = [key for key in _SAME if previous.get(key) != state.get(key)]
    if changed:
        details = "; ".join(f"{key}: was {previous.get(key)!r}, now {state.get(key)!r}" for key in changed)
        raise UsageError(
            f"{output} holds the output of another job ({details}); refusing to mix them. Write to a new "
            "output directory (or delete this one to start over)"
        )


def _load(record: Pending, spec: InputSpec) -> Any:
    try:
        return conform(record.load(spec), spec)
    except InvalidInputError:
        raise
    except UsageError:
        raise  # a setting is wrong (a preprocessing function that does not import): every record would fail
    except Exception as error:  # anything a decoder raises on one bad record rejects that record
        raise InvalidInputError(f"{type(error).__name__}: {error}") from error


def _decode(records: Sequence[Pending], spec: InputSpec, strict: bool) -> _Batch:
    batch = _Batch([], [], [])
    for record in records:
        try:
            value = _load(record, spec)
        except InvalidInputError as error:
            if strict:
                raise InvalidInputError(f"record {record.id!r}: {error} (stopped: --strict)") from error
            batch.rejects.append(Reject(record.id, str(error)))
            continue
        batch.ids.append(record.id)
        batch.values.append(value)
    if batch.values:
        batch.array = _stack(batch.values, spec)
        batch.values = []
    return batch


def _until_stopped(batches: Iterator[_Batch], stopped: list[InvalidInputError]) -> Iterator[_Batch]:
    """`batches` up to a --strict stop, whose error is put in `stopped` instead of raised here.

    Raised here, it would leave the job while earlier batches are still running or queued for the
    writer, and how many whole shards got committed would depend on thread timing. Ending the stream
    instead lets every batch before the bad record be run and written; the job raises it after that.
    """
    try:
        yield from batches
    except InvalidInputError as error:  # only --strict raises it from decoding (else a record is rejected)
        stopped.append(error)


def _raise_first(stopped: list[InvalidInputError]) -> None:
    if stopped:
        raise stopped[0]


def _stack(values: list[Any], spec: InputSpec) -> np.ndarray:
    if spec.is_string:
        array = np.empty(len(values), dtype=object)
        array[:] = values
        return array
    return np.stack(values)


def _batches(records: Iterable[Pending], size: int) -> Iterator[list[Pending]]:
    iterator = iter(records)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def run_job(
    source: Source,
    runner: Runner,
    output: Path,
    *,
    output_format: str = "parquet",
    batch_size: int = 64,
    shard_rows: int = 4096,
    strict: bool = False,
    progress: Progress | None = None,
) -> ExtractSummary:
    """Run every record of `source` through `runner` into `output` (see `layertap.extract.extract`)."""
    if output_format not in OUTPUT_FORMATS:
        raise UsageError(f"unknown output format {output_format!r}; accepted: {', '.join(OUTPUT_FORMATS)}")
    if batch_size < 1 or shard_rows < 1:
        raise UsageError(f"batch size and shard rows must be positive, got {batch_size} and {shard_rows}")
    started = time.monotonic()
    output.mkdir(parents=True, exist_ok=True)
    state = _state(runner, source, output_format)
    previous = read_state(output)
    if previous is not None:
        _check_same(output, previous, state)
    write_state(output, {**state, "complete": False})
    metadata = {key: state[key] for key in ("model", "version", "spaces", "outputs")}
    shards = (
        ParquetShards(output, runner.outputs, metadata, shard_rows=shard_rows)
        if output_format == "parquet"
        else None
    )
    skip = shards.position if shards is not None else 0
    progress = progress or Progress(source.count(), enabled=False)
    progress.skip(skip)
    spec = runner.input
    stopped: list[InvalidInputError] = []
    decoded = _until_stopped(
        ahead(
            _decode(chunk, spec, strict)
            for chunk in _batches(itertools.islice(source.records(), skip, None), batch_size)
        ),
        stopped,
    )

    def compute(batch: _Batch) -> dict[str, np.ndarray]:
        if batch.array is None:
            return {name: _empty(out) for name, out in runner.outputs.items()}
        return runner.run(batch.array)

    collected: list[tuple[list[str], dict[str, np.ndarray]]] = []
    rejects: list[Reject] = []
    if shards is not None:
        try:
            with Behind(_write_into(shards), depth=4, name="layertap-extract-write") as writer:
                for batch, features in ordered_map(compute, decoded, runner.parallelism):
                    writer.put((batch.ids, features, batch.rejects))
                    progress.update(len(batch.ids), len(batch.rejects))
            _raise_first(stopped)  # the writer has committed every whole shard before the bad record
        except BaseException:
            shards.abort()  # the open shard's records are written again on resume
            raise
        rows, rejects = shards.finish()
        records = shards.position
    else:
        for batch, features in ordered_map(compute, decoded, runner.parallelism):
            collected.append((batch.ids, features))
            rejects.extend(batch.rejects)
            progress.update(len(batch.ids), len(batch.rejects))
        _raise_first(stopped)
        rows = _write_arrays(output, runner.outputs, collected, rejects)
        records = rows + len(rejects)
    progress.close()
    write_state(
        output, {**state, "complete": True, "records": records, "rows": rows, "rejected": len(rejects)}
    )
    return ExtractSummary(
        output,
        runner.model,
        runner.version,
        records,
        rows,
        len(rejects),
        skip,
        time.monotonic() - started,
        rejects,
    )


def _write_into(
    shards: ParquetShards,
) -> Callable[[tuple[list[str], dict[str, np.ndarray], list[Reject]]], None]:
    def write(item: tuple[list[str], dict[str, np.ndarray], list[Reject]]) -> None:
        shards.add(*item)

    return write


def _empty(spec: OutputSpec) -> np.ndarray:
    return np.empty((0, *(d or 0 for d in spec.shape)), dtype=spec.dtype)


def npy_name(name: str) -> str:
    """The .npy file of a layer (a nested layer's path `outer/inner` becomes `outer.inner.npy`)."""
    return name.replace("/", ".") + ".npy"


def _write_arrays(
    output: Path,
    outputs: Mapping[str, OutputSpec],
    collected: list[tuple[list[str], dict[str, np.ndarray]]],
    rejects: list[Reject],
) -> int:
    """The small-job output: one .npy per layer (rows in input order), ids.txt, rejects.jsonl."""
    import io
    import json

    ids = [item for batch_ids, _ in collected for item in batch_ids]
    for name, spec in outputs.items():
        arrays = [features[name] for _, features in collected] or [_empty(spec)]
        buffer = io.BytesIO()
        np.save(buffer, np.concatenate(arrays), allow_pickle=False)
        write_atomically(output / npy_name(name), buffer.getvalue())
    write_atomically(output / "ids.txt", "".join(f"{item}\n" for item in ids).encode("utf-8"))
    text = "".join(json.dumps({"id": r.id, "reason": r.reason}) + "\n" for r in rejects)
    write_atomically(output / REJECTS_FILE, text.encode("utf-8"))
    return len(ids)
