"""`layertap validate VERSION_DIR`: rehearse loading and serving a version the way TF Serving would."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from layertap.cli.compat import add_server_argument
from layertap.cli.framework import positive_int

if TYPE_CHECKING:
    from layertap.exporter.validate import ValidationReport

__all__ = ["DESCRIPTION", "EXTRAS", "add_arguments", "add_batch_argument", "batch_from_args", "run"]

EXTRAS = ("tf",)

#: What `layertap validate --help` says under the usage line.
DESCRIPTION = (
    "Load a SavedModel version through TF Serving's session loader, replay its warmup records, run every "
    "signature on inputs built from its metadata, measure latency, memory and reply sizes, and check it "
    "against a TF Serving release's op registry. Exit 0 when every check passes, 2 when one fails."
)


def add_batch_argument(parser: argparse.ArgumentParser) -> None:
    """`--batch N` and `--batching FILE`: the batch size to rehearse (shared with `layertap export`)."""
    from layertap.exporter.validate import DEFAULT_BATCH

    parser.add_argument(
        "--batch",
        type=positive_int,
        default=None,
        metavar="N",
        help=f"batch size clients send (default: --batching's max_batch_size, else {DEFAULT_BATCH})",
    )
    parser.add_argument(
        "--batching",
        type=Path,
        default=None,
        metavar="FILE",
        help="a batching.config: rehearse its max_batch_size",
    )


def batch_from_args(args: argparse.Namespace) -> int:
    """The batch `--batch` or `--batching` asks for."""
    from layertap.config import read_batching_config
    from layertap.exporter.validate import DEFAULT_BATCH

    if args.batch is not None:
        return int(args.batch)
    if args.batching is not None:
        configured = read_batching_config(args.batching).max_batch_size
        if configured:
            return int(configured)
    return DEFAULT_BATCH


def add_arguments(parser: argparse.ArgumentParser, command_name: str) -> None:
    """Arguments of `layertap validate`."""
    parser.add_argument("version_dir", metavar="VERSION_DIR", help="a SavedModel version directory")
    add_server_argument(parser, "the TF Serving release to check against")
    add_batch_argument(parser)
    parser.add_argument(
        "--runs", type=int, default=20, help="timed runs per signature and batch (default 20)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    parser.add_argument(
        "--report", type=Path, default=None, metavar="FILE", help="also write the JSON report here"
    )
    parser.add_argument("--json", action="store_true", help="print the JSON report on stdout")


def run(args: argparse.Namespace) -> int:
    """Validate, print the report, exit 2 on any failure."""
    from layertap.exporter.validate import validate_version

    report = validate_version(
        args.version_dir,
        server=args.server,
        batch=batch_from_args(args),
        runs=args.runs,
        seed=args.seed,
        progress=lambda message: print(f"layertap validate: {message}", file=sys.stderr, flush=True),
    )
    body = json.dumps(report.to_json(), indent=2)
    if args.report is not None:
        args.report.write_text(body + "\n", encoding="utf-8")
    if args.json:
        print(body)
    else:
        print_summary(report)
    return 0 if report.passed else 2


def print_summary(report: ValidationReport) -> None:
    """The report in a few lines: failures, warnings, per-signature latency and reply sizes."""
    for failure in report.failures:
        print(f"FAIL {failure}")
    for warning in report.warnings:
        print(f"warn {warning}")
    for key, result in report.signatures.items():
        latency = ", ".join(
            f"batch {name.removeprefix('batch_')} p50 {entry['p50_ms']} ms p99 {entry['p99_ms']} ms"
            for name, entry in result.items()
            if name.startswith("batch_")
        )
        sizes = result.get("reply_bytes", {})
        per_example = (
            f"; reply {sizes['typed_per_example']} B/example typed, {sizes['tensor_content_per_example']} B "
            "tensor_content"
            if "typed_per_example" in sizes
            else ""
        )
        print(f"  {key}: {latency}{per_example}")
    if report.memory:
        print(
            f"  memory: the loaded version adds {report.memory['loaded_version_rss_bytes']} bytes RSS, peak "
            f"{report.memory['peak_rss_bytes']} bytes"
        )
    verdict = "passed" if report.passed else "FAILED"
    print(
        f"{report.path}: {verdict} on TF Serving {report.server} at batch {report.batch}: "
        f"{len(report.failures)} failure(s), {len(report.warnings)} warning(s)"
    )
