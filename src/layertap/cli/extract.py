"""`layertap extract`: a dataset in, layer features out (in-process from a version directory, or from
servers). It parses and checks the arguments, then calls `layertap.extract.extract`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

from layertap.cli.framework import positive_int, require_extras
from layertap.errors import UsageError

if TYPE_CHECKING:
    from layertap.extract.sources import ReadingKeywords

__all__ = ["add_arguments", "run"]


def _number(text: str) -> float:
    """argparse type: a number, or a fraction such as 1/255."""
    try:
        return float(Fraction(text))
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"invalid number {text!r}: expected e.g. 0.5 or 1/255") from None


def add_arguments(parser: argparse.ArgumentParser, command_name: str) -> None:
    """Flags of `layertap extract`."""
    from layertap.extract import FORMATS, OUTPUT_FORMATS

    parser.add_argument(
        "inputs",
        nargs="+",
        type=Path,
        metavar="INPUT",
        help="a folder of images, or .npy/.npz/.txt/.parquet/.csv/.tfrecord files (read in sorted order)",
    )
    parser.add_argument(
        "--layer",
        action="append",
        required=True,
        metavar="NAME",
        help="layer (or signature) to extract; repeat (or separate with commas) for several",
    )
    parser.add_argument("-o", "--output", type=Path, required=True, help="output directory")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--version-dir",
        metavar="PATH",
        help="run in this process from a SavedModel version directory (models/NAME/VERSION, local or gs://)",
    )
    where.add_argument(
        "--target",
        action="append",
        metavar="HOST:PORT",
        help="ask this server (repeat for several, or one dns:///NAME:PORT); needs --model",
    )
    parser.add_argument("--model", help="the served model's name (with --target)")
    reading = parser.add_argument_group("reading inputs")
    reading.add_argument("--format", choices=FORMATS, help="input format (default: from the suffixes)")
    reading.add_argument(
        "--column",
        action="append",
        default=[],
        metavar="NAME",
        help="Parquet/CSV column holding the input; repeat to join numeric columns into a vector",
    )
    reading.add_argument("--id-column", metavar="NAME", help="Parquet/CSV column naming each row")
    reading.add_argument("--feature", metavar="KEY", help="TFRecord: the tf.train.Example feature to read")
    reading.add_argument("--npz-key", metavar="KEY", help="the array to read from .npz files")
    images = parser.add_argument_group(
        "images",
        "decoded, converted to the input's channels, resized (bilinear) to its size, then "
        "x * scale + offset, or --preprocess",
    )
    images.add_argument("--scale", type=_number, default=1.0, help="multiply pixels (0-255), e.g. 1/255")
    images.add_argument("--offset", type=_number, default=0.0, help="then add this")
    images.add_argument(
        "--preprocess",
        metavar="MODULE:NAME",
        help="a function of one HxWxC float32 image, e.g. keras.applications.resnet50:preprocess_input",
    )
    parser.add_argument(
        "--output-format",
        choices=OUTPUT_FORMATS,
        default="parquet",
        help="parquet (sharded, resumable; default) or npy (one array per layer, for small jobs)",
    )
    parser.add_argument("--batch-size", type=positive_int, default=64, help="records per call (default 64)")
    parser.add_argument(
        "--shard-rows", type=positive_int, default=4096, help="records per Parquet shard (default 4096)"
    )
    parser.add_argument(
        "--max-batch-size",
        type=positive_int,
        help="with --target: the server's max_batch_size; larger batches are split to it",
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per call with --target")
    parser.add_argument("--strict", action="store_true", help="stop at the first bad record")
    parser.add_argument("--json", action="store_true", help="print a JSON summary at the end")


def run(args: argparse.Namespace) -> int:
    """Run the command; returns the exit code."""
    layers = [name.strip() for spec in args.layer for name in spec.split(",") if name.strip()]
    if args.target and not args.model:
        raise UsageError("--target needs --model, the served model's name")
    require_extras(["extract"] if args.output_format == "parquet" or args.format in ("parquet",) else [])
    from layertap.extract import ImagePreprocessing, Progress, extract, open_source

    preprocessing = ImagePreprocessing(scale=args.scale, offset=args.offset, function=args.preprocess)
    reading: ReadingKeywords = {
        "format": args.format,
        "columns": args.column,
        "id_column": args.id_column,
        "feature": args.feature,
        "npz_key": args.npz_key,
        "preprocessing": preprocessing,
    }
    # The inputs are checked (they exist, their format is known) before any model is loaded.
    source = open_source(args.inputs, **reading)
    if args.version_dir is not None or source.format == "tfrecord":
        require_extras(["tf"])  # the session loader, TensorFlow's TFRecord reader
        # Keras preprocessing functions and the loader run Keras/TensorFlow; quiet their start-up logs.
        os.environ["KERAS_BACKEND"] = "tensorflow"
        from layertap.cli.tflogs import quiet_tensorflow

        quiet_tensorflow(verbose=bool(getattr(args, "verbose", False)))
    client_options = {"timeout": args.timeout, "max_batch_size": args.max_batch_size}
    summary = extract(
        args.inputs,
        layers,
        args.output,
        version_dir=args.version_dir,
        targets=args.target or (),
        model=args.model,
        output_format=args.output_format,
        batch_size=args.batch_size,
        shard_rows=args.shard_rows,
        strict=args.strict,
        progress=Progress(source.count()),
        client_options=client_options,
        **reading,
    )
    if args.json:
        print(json.dumps(summary.as_json(), indent=2))
    else:
        rejected = (
            f", {summary.rejected} rejected (see {args.output / 'rejects.jsonl'})" if summary.rejected else ""
        )
        print(
            f"{summary.rows} rows of {summary.model} version {summary.version} in {args.output}{rejected}",
            file=sys.stderr if args.json else sys.stdout,
        )
    return 0
