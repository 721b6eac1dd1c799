"""`layertap compare OLD NEW`: are two versions' outputs in the same space? Exit 1 when one has changed.

OLD and NEW are version directories (run here by TensorFlow), or, with `--target` and `--model`, version
numbers a server serves (asked over gRPC, no TensorFlow).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from layertap.cli.framework import EXIT_FAILURE, EXIT_OK, non_negative_int, positive_int, require_extras
from layertap.errors import UsageError

__all__ = ["DESCRIPTION", "add_arguments", "run"]

#: What `layertap compare --help` says under the usage line.
DESCRIPTION = (
    "Run the same rows through every signature two versions share and say, with the numbers, whether "
    "each is identical, compatible (same space, moved a little) or changed. Exit 0 when no shared "
    "signature changed, 1 when one did, 2 on a usage error."
)


def add_arguments(parser: argparse.ArgumentParser, command_name: str) -> None:
    """Arguments of `layertap compare`."""
    parser.add_argument("old", metavar="OLD", help="version directory (or, with --target, version number)")
    parser.add_argument("new", metavar="NEW", help="version directory (or, with --target, version number)")
    parser.add_argument("--target", metavar="HOST:PORT", help="compare versions this server serves")
    parser.add_argument("--model", help="with --target: the served model's name")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per served call (default 60)")
    parser.add_argument(
        "--inputs",
        type=Path,
        metavar="FILE",
        help="the rows: INPUT.npy, INPUT.npz (by input alias) or INPUT.txt (as `layertap predict` reads); "
        "default: random rows for the NEW version's inputs, as the exporter's verification draws them",
    )
    parser.add_argument("--rows", type=positive_int, default=None, help="random rows without --inputs (256)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random rows")
    parser.add_argument(
        "--min-cosine", type=float, default=0.99, help="compatible needs a mean cosine >= this (0.99)"
    )
    parser.add_argument(
        "--min-neighbours",
        type=float,
        default=0.9,
        help="compatible needs a mean nearest-neighbour overlap >= this (0.9)",
    )
    parser.add_argument(
        "--neighbours", type=positive_int, default=10, metavar="K", help="neighbours per row (10)"
    )
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON on stdout")


def run(args: argparse.Namespace) -> int:
    """Compare, print, and return 0 (no shared signature changed) or 1."""
    from layertap.compare import DEFAULT_ROWS, Thresholds, compare_versions

    thresholds = Thresholds(cosine=args.min_cosine, neighbours=args.min_neighbours, k=args.neighbours)
    if args.inputs is not None and args.rows is not None:
        raise UsageError("--rows draws random rows; it cannot be combined with --inputs")
    inputs = _inputs(args.inputs) if args.inputs is not None else None
    old, new = _versions(args)
    comparison = compare_versions(
        old, new, inputs=inputs, rows=args.rows or DEFAULT_ROWS, seed=args.seed, thresholds=thresholds
    )
    for warning in comparison.warnings:
        print(f"layertap compare: warning: {warning}", file=sys.stderr)
    if args.json:
        print(json.dumps(comparison.to_json(), indent=2))
    else:
        print(_table(comparison))
    return EXIT_FAILURE if comparison.changed else EXIT_OK


def _inputs(path: Path) -> Any:
    from layertap.cli.query import load_inputs

    return load_inputs(path)


def _versions(args: argparse.Namespace) -> tuple[Any, Any]:
    """Check the arguments, then open the two versions (TensorFlow is imported only for directories)."""
    if args.target is not None:
        if not args.model:
            raise UsageError("--target needs --model, the served model's name")
        numbers = []
        for text in (args.old, args.new):
            try:
                numbers.append(non_negative_int(text))
            except argparse.ArgumentTypeError:
                raise UsageError(
                    f"with --target, OLD and NEW are version numbers (integers >= 0); got {text!r}"
                ) from None
        from layertap.compare import ServedVersion

        old, new = (ServedVersion(args.target, args.model, n, timeout=args.timeout) for n in numbers)
        return old, new
    if args.model:
        raise UsageError("--model names a served model; give --target HOST:PORT with it")
    from layertap.compare import open_version

    versions = (open_version(args.old), open_version(args.new))  # checks both before TensorFlow loads
    require_extras(["tf"])
    from layertap.cli.tflogs import quiet_tensorflow

    quiet_tensorflow(verbose=bool(getattr(args, "verbose", False)))
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    return versions


def _number(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _table(comparison: Any) -> str:
    lines = [
        f"{comparison.old} -> {comparison.new}: {comparison.rows} rows, compatible = mean cosine >= "
        f"{comparison.thresholds.cosine:g} and {comparison.thresholds.k}-neighbour overlap >= "
        f"{comparison.thresholds.neighbours:g}"
    ]
    rows = [("SIGNATURE", "VERDICT", "COSINE", "NEIGHBOURS", "CKA", "MAX DIFF", "REASON")]
    for key, signature in comparison.signatures.items():
        first = signature.outputs[0] if len(signature.outputs) == 1 else None
        rows.append(
            (
                key,
                signature.verdict,
                _number(first.mean_cosine if first else None),
                _number(first.neighbour_overlap if first else None),
                _number(first.cka if first else None),
                "-"
                if first is None or first.max_abs_difference is None
                else f"{first.max_abs_difference:.3g}",
                signature.reason,
            )
        )
        if first is None:
            for output in signature.outputs:
                rows.append(
                    (
                        f"  {output.alias}",
                        output.verdict,
                        _number(output.mean_cosine),
                        _number(output.neighbour_overlap),
                        _number(output.cka),
                        "-" if output.max_abs_difference is None else f"{output.max_abs_difference:.3g}",
                        output.reason,
                    )
                )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines += [
        "  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[-1]]) for row in rows
    ]
    changed = comparison.changed
    lines.append(
        f"changed: {', '.join(changed)}" if changed else "no shared signature changed: the space is kept"
    )
    return "\n".join(lines)
