"""`layertap inspect`: list a model's layers so a user can choose what to export."""

from __future__ import annotations

import argparse
import json

from layertap.cli.export import add_model_arguments, quiet_tensorflow_logs

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser, command_name: str) -> None:
    """Arguments of `layertap inspect`."""
    add_model_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the table as JSON")


def run(args: argparse.Namespace) -> int:
    """Print one row per layer: index, spec, kind, output shape, parameters, FLOPs share."""
    from layertap.exporter import inspect_model

    quiet_tensorflow_logs()
    rows = inspect_model(args.model, input_shape=args.input_shape, allow_unsafe=args.allow_unsafe)
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "index": row.index,
                        "spec": row.spec,
                        "kind": row.kind,
                        "output_shape": [list(shape) for shape in row.output_shape],
                        "parameters": row.parameters,
                        "flops": row.flops,
                        "flops_share": round(row.share, 6),
                    }
                    for row in rows
                ],
                indent=2,
            )
        )
        return 0
    table = [("index", "layer spec", "kind", "output shape", "params", "FLOPs", "share")]
    for row in rows:
        shape = " ".join(str(tuple("batch" if d is None else d for d in s)) for s in row.output_shape)
        table.append(
            (
                "" if row.index is None else str(row.index),
                row.spec,
                row.kind,
                shape.replace("'", ""),
                f"{row.parameters:,}",
                f"{row.flops:,}",
                f"{100 * row.share:.1f}%",
            )
        )
    widths = [max(len(line[column]) for line in table) for column in range(len(table[0]))]
    for line in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
    return 0
