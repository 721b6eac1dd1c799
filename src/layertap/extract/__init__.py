"""Bulk extraction: a dataset in, layer features out.

    from layertap.extract import extract

    # in-process, from a version directory (local or gs://), through TF Serving's session loader
    summary = extract("digits/", ["conv_2", "flatten"], "features/", version_dir="models/mnist/1",
                      preprocessing=ImagePreprocessing(scale=1 / 255))
    # or remotely, from TF Serving / `layertap serve` (repeat targets to spread batches over servers)
    summary = extract("train.npy", ["conv_2"], "features/", targets=["localhost:8500"], model="mnist")

The output directory holds Parquet shards (`id`, one fixed-size list column per layer; model name,
version and space identities in each file's metadata), `rejects.jsonl` and `extract.json`; running
the same call again after a crash resumes where the last whole shard ended (see `shards`).

Importing this package is cheap: TensorFlow is imported only by the in-process runner and the
TFRecord reader, pyarrow only when Parquet is read or written.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Unpack

from layertap.errors import UsageError
from layertap.extract.images import ImagePreprocessing
from layertap.extract.job import OUTPUT_FORMATS, ExtractSummary, run_job
from layertap.extract.progress import Progress
from layertap.extract.records import InputSpec, Pending, Reject
from layertap.extract.runners import InProcessRunner, OutputSpec, RemoteRunner, Runner
from layertap.extract.sources import FORMATS, ReadingKeywords, Source, open_source

__all__ = [
    "FORMATS",
    "OUTPUT_FORMATS",
    "ExtractSummary",
    "ImagePreprocessing",
    "InProcessRunner",
    "InputSpec",
    "OutputSpec",
    "Pending",
    "Progress",
    "Reject",
    "RemoteRunner",
    "Runner",
    "Source",
    "extract",
    "open_source",
    "run_job",
]


def extract(
    inputs: Path | str | Sequence[Path | str],
    layers: Sequence[str],
    output: Path | str,
    *,
    version_dir: str | Path | None = None,
    targets: Sequence[str] = (),
    model: str | None = None,
    output_format: str = "parquet",
    batch_size: int = 64,
    shard_rows: int = 4096,
    strict: bool = False,
    progress: Progress | None = None,
    client_options: Mapping[str, Any] | None = None,
    **reading: Unpack[ReadingKeywords],
) -> ExtractSummary:
    """Extract `layers` for every record of `inputs` into `output`.

    Args:
        inputs: a folder of images, or files (.npy, .npz, .txt, .parquet, .csv, .tfrecord).
        layers: layer names (or signature keys) of one model version; they must share one input.
        output: the output directory; an existing one written by the same job is resumed.
        version_dir: compute in this process from this SavedModel version directory...
        targets: ... or ask these servers ("host:port", or one "dns:///name:port") for `model`.
        model: the served model's name (remote); overrides the manifest's name (in-process).
        format, columns, id_column, feature, npz_key, preprocessing: how to read inputs (`open_source`;
            `ReadingKeywords`).
        output_format: "parquet" (sharded, resumable) or "npy" (one array per layer, small jobs).
        batch_size: records per call (the server's max_batch_size, remotely).
        shard_rows: records per Parquet shard.
        strict: stop at the first bad record instead of rejecting it.
        progress: a Progress to report to (none drawn by default).
        client_options: more LayerClient arguments for remote runs (timeout, retry, tls...).

    Raises:
        UsageError: bad arguments, or an output of another model/version/input.
        InvalidInputError: (strict) a bad record; every whole shard before it is committed.
        ServingError: a server refused or could not be reached (after the client's retries).
    """
    if (version_dir is None) == (not targets):
        raise UsageError(
            "give either a version directory to run in-process (version_dir) or servers to ask "
            f"(targets), not {'both' if targets else 'neither'}"
        )
    source = open_source([inputs] if isinstance(inputs, str | Path) else list(inputs), **reading)
    if targets and not model:
        raise UsageError("remote extraction needs the served model's name (model=..., --model)")
    started = time.monotonic()
    runner: Runner = (
        RemoteRunner(list(targets), model or "", layers, client_options=client_options)
        if targets
        else InProcessRunner(str(version_dir), layers, model=model)
    )
    setup = time.monotonic() - started
    try:
        summary = run_job(
            source,
            runner,
            Path(output),
            output_format=output_format,
            batch_size=batch_size,
            shard_rows=shard_rows,
            strict=strict,
            progress=progress,
        )
    finally:
        runner.close()
    return dataclasses.replace(summary, setup_seconds=setup)
